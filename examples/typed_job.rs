//! A job implemented for your own struct, enqueued and worked off by an in-process worker on
//! a SQLite file.
//!
//! `cargo run -p outsourced-examples --example typed_job`

use std::sync::Arc;

use async_trait::async_trait;
use outsourced_backend_sql::SqlBackend;
use outsourced_core::{Actor, Backend, Job, JobContext, JobError, JobExt, QueueLimit, Registry};
use outsourced_worker::Worker;
use serde::{Deserialize, Serialize};

/// Your job: a serde struct. Its fields are the job's arguments.
#[derive(Debug, Serialize, Deserialize)]
struct SendWelcomeEmail {
    user_id: u64,
    address: String,
}

#[async_trait]
impl Job for SendWelcomeEmail {
    /// The name it is stored and registered under; keep it stable.
    const CLASS: &'static str = "SendWelcomeEmail";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        if !self.address.contains('@') {
            // A permanent error: retrying will not fix the address.
            return Err(JobError::msg(format!("{:?} is not an address", self.address)).permanent());
        }
        println!(
            "attempt {}: welcome mail to {} (user {})",
            ctx.attempt, self.address, self.user_id
        );
        Ok(())
    }

    fn queue(&self) -> Option<String> {
        Some("mail".into())
    }

    fn max_attempts(&self) -> Option<u32> {
        Some(5)
    }
}

#[tokio::main]
async fn main() -> outsourced_core::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| outsourced_core::Error::invalid(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("example.db").display());
    let backend = Arc::new(SqlBackend::connect(&url).await?);
    let admin = Actor::Admin("example".into());
    backend
        .create_queue(&admin, "mail", QueueLimit::default())
        .await?;

    let jobs = [
        SendWelcomeEmail {
            user_id: 1,
            address: "ada@example.com".into(),
        },
        SendWelcomeEmail {
            user_id: 2,
            address: "grace@example.com".into(),
        },
        SendWelcomeEmail {
            user_id: 3,
            address: "not an address".into(),
        },
    ];
    for job in &jobs {
        let stored = job.enqueue(backend.as_ref()).await?;
        println!("enqueued job {} in queue {}", stored.id, stored.queue);
    }

    let mut registry = Registry::new();
    registry.register::<SendWelcomeEmail>();
    let worker = Worker::new(backend.clone(), "example-worker").registry(registry);
    let done = worker.work_off(10).await?;
    println!(
        "worked off: {} succeeded, {} failed",
        done.succeeded, done.failed
    );

    for job in backend.jobs(&admin, Default::default()).await? {
        println!("job {} is {}", job.id, job.state);
        for row in backend.history(&admin, job.id).await? {
            let error = row.error.map(|e| format!(" ({e})")).unwrap_or_default();
            println!(
                "  #{} {} -> {} by {}{error}",
                row.seq, row.reason, row.to, row.actor
            );
        }
    }
    Ok(())
}
