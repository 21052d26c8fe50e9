//! Which queues a worker works, asked before each reserve.

use async_trait::async_trait;
use outsourced_core::Result;

/// Where a worker learns, before each reserve, which queues to work. Over HTTP the server
/// decides (a worker that names no queues gets those it is hired for); next to the database,
/// the `outsourced-worker` binary gives the worker the directory's answer, so that a hire or a
/// fire takes effect at the next reserve, with no restart.
#[async_trait]
pub trait Assignment: Send + Sync {
    /// The queues to reserve from now; an empty list means none (the worker waits, and asks
    /// again after its idle wait).
    async fn queues(&self) -> Result<Vec<String>>;
}
