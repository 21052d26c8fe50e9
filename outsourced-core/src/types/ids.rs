//! Who and what: job ids, the actors that call a backend, worker instances and job owners.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A job's id, assigned by the backend at enqueue. Ids grow with enqueue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(JobId)
            .map_err(|_| Error::invalid(format!("{s:?} is not a job id")))
    }
}

/// One running worker process: the worker's name (its credentials) plus an id of its own,
/// so that several processes started from one config never release each other's leases.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkerInstance {
    /// The worker's name, as created by the admin.
    pub worker: String,
    /// This process's id, unique among the worker's running processes.
    pub instance: String,
}

impl WorkerInstance {
    /// A worker instance from its two parts.
    pub fn new(worker: impl Into<String>, instance: impl Into<String>) -> Self {
        WorkerInstance {
            worker: worker.into(),
            instance: instance.into(),
        }
    }
}

impl fmt::Display for WorkerInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.worker, self.instance)
    }
}

/// Who makes a backend call. History rows name it, and the HTTP server authorizes by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// An application or client that enqueues jobs.
    Producer(String),
    /// A worker process.
    Worker(WorkerInstance),
    /// An administrator (the CLI, the dashboard, an admin client).
    Admin(String),
    /// The system's own reclaimer of expired leases.
    Reaper,
}

impl Actor {
    /// The producer used when an application enqueues without naming itself.
    pub fn application() -> Self {
        Actor::Producer("application".to_owned())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Producer(name) => write!(f, "producer:{name}"),
            Actor::Worker(instance) => write!(f, "worker:{instance}"),
            Actor::Admin(name) => write!(f, "admin:{name}"),
            Actor::Reaper => f.write_str("reaper"),
        }
    }
}

impl FromStr for Actor {
    type Err = Error;

    /// Parses the form [`Display`](fmt::Display) writes: `producer:NAME`, `worker:NAME/INSTANCE`,
    /// `admin:NAME` or `reaper`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::invalid(format!("{s:?} is not an actor"));
        if s == "reaper" {
            return Ok(Actor::Reaper);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "producer" => Ok(Actor::Producer(name.to_owned())),
            "admin" => Ok(Actor::Admin(name.to_owned())),
            "worker" => {
                let (worker, instance) = name.rsplit_once('/').ok_or_else(bad)?;
                Ok(Actor::Worker(WorkerInstance::new(worker, instance)))
            }
            _ => Err(bad()),
        }
    }
}

/// The generic owner of a job (`User/42`), so that a thing can ask how many jobs it has.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The owner's type, e.g. `User`.
    pub kind: String,
    /// The owner's id within its type, e.g. `42`.
    pub id: String,
}

impl Owner {
    /// An owner from its type and id.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Owner {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

impl FromStr for Owner {
    type Err = Error;

    /// Parses `TYPE/ID`; the type may not contain `/`, the id may.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((kind, id)) if !kind.is_empty() && !id.is_empty() => Ok(Owner::new(kind, id)),
            _ => Err(Error::invalid(format!(
                "{s:?} is not an owner: expected TYPE/ID, e.g. User/42"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_through_text() {
        let actors = [
            Actor::Producer("shop".into()),
            Actor::Admin("root".into()),
            Actor::Worker(WorkerInstance::new("w.1", "ab12")),
            Actor::Reaper,
        ];
        for actor in actors {
            assert_eq!(actor.to_string().parse::<Actor>().ok(), Some(actor));
        }
        assert!("nobody".parse::<Actor>().is_err());
        assert!("worker:no-instance".parse::<Actor>().is_err());
    }

    #[test]
    fn owners_parse_type_slash_id() {
        assert_eq!(
            "User/42".parse::<Owner>().ok(),
            Some(Owner::new("User", "42"))
        );
        assert_eq!(
            "Doc/a/b".parse::<Owner>().ok(),
            Some(Owner::new("Doc", "a/b"))
        );
        assert!("User".parse::<Owner>().is_err());
        assert!("/42".parse::<Owner>().is_err());
    }
}
