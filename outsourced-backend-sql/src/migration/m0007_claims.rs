//! Indexes for the hot path: a reserve index led by the queue, so that a worker of one queue
//! never walks past other queues' backlog; and fewer index writes per job change.
//!
//! Every index on a column a job change sets is rewritten by that change, so each one costs
//! on every reserve and every completion. The owner index drops `state` (an owner's jobs are
//! few; counting them by state reads those rows), and on SQLite and PostgreSQL it holds only
//! jobs that have an owner, as the lease-expiry index holds only running jobs (MySQL has no
//! partial indexes). The index of lease holders goes: only `release_all` used it, at a
//! worker's exit, and it finds the running jobs through `(state, id)` as fast.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct Claims;

impl MigrationName for Claims {
    fn name(&self) -> &str {
        "m0007_claims"
    }
}

const JOBS: &str = "outsourced_jobs";

fn drop(name: &str) -> IndexDropStatement {
    Index::drop().name(name).table(JOBS).to_owned()
}

fn create(name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(JOBS);
    for col in cols {
        index.col(*col);
    }
    index.to_owned()
}

/// `index` holding only the rows where `column` is not null, where the database can do that.
fn partial(
    backend: DbBackend,
    mut index: IndexCreateStatement,
    column: &'static str,
) -> IndexCreateStatement {
    if backend != DbBackend::MySql {
        index.and_where(Expr::col(column).is_not_null());
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Claims {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_index(create(
                "outsourced_jobs_queue_reserve",
                &["queue", "waiting", "priority", "run_at", "id"],
            ))
            .await?;
        manager
            .drop_index(drop("outsourced_jobs_lease_holder"))
            .await?;
        manager.drop_index(drop("outsourced_jobs_owner")).await?;
        let owner = create("outsourced_jobs_owner", &["owner_type", "owner_id"]);
        manager
            .create_index(partial(backend, owner, "owner_type"))
            .await?;
        if backend != DbBackend::MySql {
            manager
                .drop_index(drop("outsourced_jobs_lease_expiry"))
                .await?;
            let expiry = create("outsourced_jobs_lease_expiry", &["lease_expires_at"]);
            manager
                .create_index(partial(backend, expiry, "lease_expires_at"))
                .await?;
        }
        Ok(())
    }
}
