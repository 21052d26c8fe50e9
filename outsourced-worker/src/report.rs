//! Batched completions: running jobs hand their successes to one reporter task, which sends
//! whatever has gathered in one `complete_batch` call. Under load that is one transaction for
//! many jobs; when idle it is one call per job, without waiting for company.

use std::sync::Arc;

use outsourced_core::{Backend, Completion, Error, WorkerInstance};
use tokio::sync::{mpsc, oneshot};

/// The most completions one call carries: a reserve's largest batch (the SQL backend's
/// `max_reserve`), so that jobs leased together are reported together.
const MAX_BATCH: usize = 1000;

type Request = (Completion, oneshot::Sender<Result<(), Error>>);

/// The handle jobs report their success through.
#[derive(Clone)]
pub(crate) struct Reporter(mpsc::UnboundedSender<Request>);

impl Reporter {
    /// Starts the reporter task; it ends when every handle is dropped.
    pub(crate) fn start(backend: Arc<dyn Backend>, id: WorkerInstance) -> Reporter {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(backend, id, rx));
        Reporter(tx)
    }

    /// Reports one success and waits for the backend's answer about it.
    pub(crate) async fn complete(&self, done: Completion) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let gone = || Error::Backend {
            backend: "worker",
            message: "the completion reporter stopped".into(),
            retryable: false,
            source: None,
        };
        self.0.send((done, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

async fn run(
    backend: Arc<dyn Backend>,
    id: WorkerInstance,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        gather(&mut rx, &mut batch).await;
        let done: Vec<Completion> = batch.iter().map(|(done, _)| done.clone()).collect();
        let results = backend.complete_batch(&id, &done).await;
        match results {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Lets the jobs that are about to report do so before the batch goes: a batch of jobs that
/// started together ends together, and its first success would otherwise go alone, each call
/// a transaction. Gathers for as long as yielding to them brings more, which costs a job that
/// ends alone a yield or two.
async fn gather(rx: &mut mpsc::UnboundedReceiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if batch.len() == before {
            return;
        }
    }
}
