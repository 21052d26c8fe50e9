//! The role table, once, as data: every handler asks it whether the caller's role may use its
//! route ([`permit`]), the OpenAPI description and `docs/http-api.md` print it
//! ([`authorization`]), and `tests/it/http_authz.rs` checks every 403 against it.

use outsourced_backend_sql::Role;

use crate::auth::Caller;
use crate::error::ApiError;

/// A group of routes that one row of the table governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/jobs`, `POST /v1/jobs/batch`.
    Enqueue,
    /// Reading one job, its history or its attachment.
    ReadJob,
    /// `PUT /v1/jobs/{id}/attachment`.
    Attach,
    /// `GET /v1/jobs`, `GET /v1/counts`.
    ListJobs,
    /// `POST /v1/jobs/{id}/cancel`.
    Cancel,
    /// Retry, reclaim and prune.
    Maintain,
    /// `POST /v1/reserve`, `POST /v1/reserve/due`.
    Reserve,
    /// Reports on one lease, and the batch of completions.
    Lease,
    /// `POST /v1/release-all`.
    ReleaseAll,
    /// `GET /v1/queues`.
    ListQueues,
    /// Creating, updating and deleting queues.
    ManageQueues,
    /// Opening, reading, closing and cancelling batches.
    Batches,
}

/// What one role may do on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Nothing: the route answers 403.
    Refused,
    /// Everything the route does.
    All,
    /// Only what is said (the rest is 404, as if absent).
    Only(&'static str),
}

/// One row of the table.
#[derive(Debug)]
pub struct Rule {
    /// The routes of the row.
    pub route: Route,
    /// How the docs name them.
    pub paths: &'static str,
    /// What a worker, a producer and an admin may do, in that order.
    pub grants: [Grant; 3],
}

use Grant::{All, Only, Refused};

/// Who may do what, by role: the one table the server enforces.
pub const ROLES: &[Rule] = &[
    Rule {
        route: Route::Enqueue,
        paths: "`POST /v1/jobs`, `POST /v1/jobs/batch` (enqueue)",
        grants: [
            Refused,
            Only(
                "queues it was granted (others: 404), waiting only for its own jobs and \
                 joining only its own batches",
            ),
            Only("any queue"),
        ],
    },
    Rule {
        route: Route::ReadJob,
        paths: "`GET /v1/jobs/{id}`, `GET /v1/jobs/{id}/history`, `GET /v1/jobs/{id}/attachment`",
        grants: [
            Only("jobs whose lease it holds"),
            Only("jobs it enqueued"),
            Only("any job"),
        ],
    },
    Rule {
        route: Route::Attach,
        paths: "`PUT /v1/jobs/{id}/attachment`",
        grants: [Refused, Only("jobs it enqueued"), Only("any job")],
    },
    Rule {
        route: Route::ListJobs,
        paths: "`GET /v1/jobs`, `GET /v1/counts`",
        grants: [Refused, Only("its own jobs"), Only("all jobs")],
    },
    Rule {
        route: Route::Cancel,
        paths: "`POST /v1/jobs/{id}/cancel`",
        grants: [Refused, Only("jobs it enqueued"), Only("any job")],
    },
    Rule {
        route: Route::Maintain,
        paths: "`POST /v1/jobs/{id}/retry`, `POST /v1/reclaim`, `POST /v1/prune`",
        grants: [Refused, Refused, All],
    },
    Rule {
        route: Route::Reserve,
        paths: "`POST /v1/reserve`, `POST /v1/reserve/due`",
        grants: [Only("queues it is hired for"), Refused, Refused],
    },
    Rule {
        route: Route::Lease,
        paths: "`POST /v1/jobs/{id}/heartbeat`, `complete`, `fail`, `release`; `POST /v1/complete`",
        grants: [
            Only(
                "jobs of its queues, with the lease token (other jobs: 404; a stale token: 409); \
                 a success's follow-ups into the queues the job's producer may enqueue into \
                 (an admin's job: any; others: 404), waiting only for that producer's jobs and \
                 joining only its batches",
            ),
            Refused,
            Refused,
        ],
    },
    Rule {
        route: Route::ReleaseAll,
        paths: "`POST /v1/release-all`",
        grants: [Only("its own instance's leases"), Refused, Refused],
    },
    Rule {
        route: Route::ListQueues,
        paths: "`GET /v1/queues`",
        grants: [
            Only("queues it is hired for"),
            Only("queues it was granted"),
            Only("all"),
        ],
    },
    Rule {
        route: Route::ManageQueues,
        paths: "`POST /v1/queues`, `PATCH` and `DELETE /v1/queues/{name}`",
        grants: [Refused, Refused, All],
    },
    Rule {
        route: Route::Batches,
        paths: "`POST /v1/batches`, `GET /v1/batches/{id}`, `POST /v1/batches/{id}/close`, `POST /v1/batches/{id}/cancel`",
        grants: [
            Refused,
            Only("batches it opened, with callbacks into queues it was granted (others: 404)"),
            Only("any batch"),
        ],
    },
];

/// The roles in the table's column order.
pub const COLUMNS: [Role; 3] = [Role::Worker, Role::Producer, Role::Admin];

impl Route {
    /// Every route group, in the table's order.
    pub const ALL: [Route; 12] = [
        Route::Enqueue,
        Route::ReadJob,
        Route::Attach,
        Route::ListJobs,
        Route::Cancel,
        Route::Maintain,
        Route::Reserve,
        Route::Lease,
        Route::ReleaseAll,
        Route::ListQueues,
        Route::ManageQueues,
        Route::Batches,
    ];

    /// This route's row.
    pub fn rule(self) -> &'static Rule {
        ROLES
            .iter()
            .find(|rule| rule.route == self)
            .expect("every route has a row in ROLES")
    }

    /// What `role` may do here.
    pub fn grant(self, role: Role) -> Grant {
        let column = COLUMNS.iter().position(|r| *r == role).unwrap_or(0);
        self.rule().grants[column]
    }
}

/// The caller's role may use `route`, or 403 naming the roles that may.
pub(crate) fn permit(caller: &Caller, route: Route) -> Result<(), ApiError> {
    let role = caller.principal.role;
    if route.grant(role) != Refused {
        return Ok(());
    }
    let allowed: Vec<&str> = COLUMNS
        .iter()
        .filter(|r| route.grant(**r) != Refused)
        .map(|r| r.as_str())
        .collect();
    Err(ApiError::forbidden(format!(
        "a {role} may not use this route (it is for: {})",
        allowed.join(", ")
    )))
}

/// The table as Markdown: the OpenAPI description's and `docs/http-api.md`'s.
pub fn authorization() -> String {
    let mut table = String::from("| route | worker | producer | admin |\n|---|---|---|---|\n");
    for rule in ROLES {
        let cells: Vec<&str> = rule
            .grants
            .iter()
            .map(|grant| match grant {
                Refused => "403",
                All => "yes",
                Only(what) => what,
            })
            .collect();
        table.push_str(&format!("| {} | {} |\n", rule.paths, cells.join(" | ")));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_one_row() {
        let routes: Vec<Route> = ROLES.iter().map(|rule| rule.route).collect();
        assert_eq!(routes, Route::ALL, "one row per route, in order");
    }

    #[test]
    fn the_http_docs_print_the_table_the_server_enforces() {
        let docs = include_str!("../../../docs/http-api.md");
        let section = docs
            .split("## Authorization by role\n\n")
            .nth(1)
            .expect("docs/http-api.md has the section");
        // The table: the section's lines up to the first that is not a row.
        let rows: Vec<&str> = section.lines().take_while(|l| l.starts_with('|')).collect();
        let table = authorization();
        assert_eq!(
            rows,
            table.lines().collect::<Vec<_>>(),
            "docs/http-api.md's role table differs from ROLES; it should read:\n{table}"
        );
    }
}
