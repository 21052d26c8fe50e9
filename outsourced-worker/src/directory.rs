//! Next to the database there is no server to decide for the worker: it applies the
//! directory itself, as the server would (only with the `sql` feature).

use std::sync::Arc;

use async_trait::async_trait;
use outsourced_backend_sql::{Directory, Role, SqlBackend};
use outsourced_core::error::refusal;
use outsourced_core::{Actor, Backend, Error, Result, workable_queues};

use crate::Assignment;
use crate::config::WorkerConfig;
use crate::connect::warn_of_queues;

/// Next to the database, the worker applies what the server would: a locked worker does not
/// start; it works the queues it is hired for (those of them its config names), asked at each
/// reserve. A worker not in the directory starts only when its config names its queues.
pub(crate) async fn from_directory(
    config: &WorkerConfig,
    backend: &SqlBackend,
) -> std::result::Result<Option<Arc<dyn Assignment>>, String> {
    let directory = Directory::new(backend.clone());
    let worker = match directory.get(Role::Worker, &config.worker).await {
        Ok(worker) => worker,
        Err(Error::Unknown { .. }) if !config.queues.is_empty() => {
            tracing::warn!(worker = %config.worker, queues = ?config.queues, "not in the directory: working the queues its config names");
            let existing = queue_names(backend).await?;
            warn_of_queues(config, &config.queues, Some(&existing));
            return Ok(None);
        }
        Err(Error::Unknown { .. }) => {
            return Err(format!(
                "worker {0:?} is not in the directory of this database: create it with \
                 `outsourcer worker create {0}` (and hire it with `outsourcer queue hire QUEUE {0}`), \
                 or name its queues in the config's `queues:`",
                config.worker
            ));
        }
        Err(error) => return Err(error.to_string()),
    };
    if worker.locked {
        return Err(format!(
            "worker {0} is locked out: `outsourcer worker unlock {0}` lets it in again",
            worker.name
        ));
    }
    let existing = queue_names(backend).await?;
    warn_of_queues(config, &worker.queues, Some(&existing));
    Ok(Some(Arc::new(Hired {
        directory,
        worker: worker.name,
        asked: config.queues.clone(),
    })))
}

/// The names of the database's queues.
async fn queue_names(backend: &SqlBackend) -> std::result::Result<Vec<String>, String> {
    let admin = Actor::Admin("outsourced-worker".into());
    let queues = backend.queues(&admin).await.map_err(|e| e.to_string())?;
    Ok(queues.into_iter().map(|q| q.name).collect())
}

/// The directory's answer, at each reserve: hired queues (those of them the config names).
struct Hired {
    directory: Directory,
    worker: String,
    asked: Vec<String>,
}

#[async_trait]
impl Assignment for Hired {
    async fn queues(&self) -> Result<Vec<String>> {
        // The codes the server would send, so that the worker's loop treats both alike.
        let refused = |code: &str, message: String| Error::Unauthorized {
            code: code.to_owned(),
            message,
        };
        match self.directory.get(Role::Worker, &self.worker).await {
            Ok(worker) if worker.locked => Err(refused(
                refusal::LOCKED,
                format!("worker {} is locked out", self.worker),
            )),
            Ok(worker) => Ok(workable_queues(&worker.queues, &self.asked)),
            Err(Error::Unknown { .. }) => Err(refused(
                refusal::UNKNOWN_WORKER,
                format!("worker {} is no longer in the directory", self.worker),
            )),
            Err(error) => Err(error),
        }
    }
}
