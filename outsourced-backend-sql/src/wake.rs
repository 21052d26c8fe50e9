//! Wake-ups for long-polling reservers.
//!
//! New jobs wake one waiting reserver per job, of their queue: a `Notify` per queue (and one
//! for reservers of every queue), whose `notify_one` wakes a single waiter or, with none
//! waiting, leaves a permit for the next. Waking every reserver for every job would send them
//! all to the database at once, where all but one find nothing; on SQLite, whose one writer
//! serializes the claims, that herd alone saturated it at a few hundred jobs a second.
//!
//! Everything else (a queue resumed, a job released or retried, a wake-up from another
//! process) wakes every reserver, as does any change for reservers with priority bounds, who
//! may not take the job they would be woken for; those watch a counter bumped at every
//! wake-up. Across processes on PostgreSQL, every wake-up is also a `NOTIFY`, and each backend
//! listens; MariaDB and SQLite have no such channel: there a waiting reserve also looks again
//! every `SqlConfig::idle_recheck`.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::{Notify, futures::OwnedNotified, watch};
use tokio::task::JoinHandle;

/// The most reservers one batch of new jobs wakes in a queue: each takes a batch.
const MAX_WOKEN: usize = 64;

/// The wake-ups of one backend; clones share them.
#[derive(Clone, Debug)]
pub(crate) struct Wake(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// This backend's mark on its `NOTIFY`s, so that its own listener skips them (it has woken
    /// its reservers already).
    id: String,
    /// Bumped at every wake-up, for reservers that wake at any change.
    every: watch::Sender<u64>,
    /// Per queue, created when a reserver first waits on it.
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    /// Reservers of every queue.
    any: Arc<Notify>,
}

/// A reserver's registration, made before it looks for jobs so that a wake-up between its
/// look and its wait is not missed. Dropped after a wake-up it did not use, the wake-up goes
/// on to the next waiter.
pub(crate) struct Waiter {
    every: Option<watch::Receiver<u64>>,
    notified: Vec<Pin<Box<OwnedNotified>>>,
}

impl Wake {
    pub(crate) fn new() -> Self {
        Wake(Arc::new(Inner {
            id: format!("{:032x}", rand::random::<u128>()),
            every: watch::Sender::new(0),
            queues: Mutex::new(HashMap::new()),
            any: Arc::new(Notify::new()),
        }))
    }

    fn queue(&self, name: &str) -> Arc<Notify> {
        let mut queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(name.to_owned()).or_default().clone()
    }

    /// New jobs became ready: so many in each queue.
    pub(crate) fn jobs(&self, per_queue: &BTreeMap<&str, usize>) {
        for (&queue, &n) in per_queue {
            let notify = self.queue(queue);
            for _ in 0..n.min(MAX_WOKEN) {
                notify.notify_one();
                self.0.any.notify_one();
            }
        }
        self.bump();
    }

    /// Wakes every waiting reserver.
    pub(crate) fn everyone(&self) {
        let queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        for notify in queues.values() {
            notify.notify_waiters();
        }
        drop(queues);
        self.0.any.notify_waiters();
        self.bump();
    }

    fn bump(&self) {
        self.0.every.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a reserver of `queues` (every queue when empty); `any_change` for one that
    /// must wake at every change (it has priority bounds).
    pub(crate) fn waiter(&self, queues: &[String], any_change: bool) -> Waiter {
        if any_change {
            return Waiter {
                every: Some(self.0.every.subscribe()),
                notified: Vec::new(),
            };
        }
        let notifies = match queues.is_empty() {
            true => vec![self.0.any.clone()],
            false => queues.iter().map(|queue| self.queue(queue)).collect(),
        };
        let notified = notifies
            .into_iter()
            .map(|notify| {
                let mut notified = Box::pin(notify.notified_owned());
                notified.as_mut().enable();
                notified
            })
            .collect();
        Waiter {
            every: None,
            notified,
        }
    }

    /// The mark on this backend's `NOTIFY`s.
    pub(crate) fn id(&self) -> &str {
        &self.0.id
    }

    /// A receiver that sees a change at every wake-up (for the tests).
    #[cfg(feature = "testing")]
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.every.subscribe()
    }
}

impl Waiter {
    /// Resolves at the next wake-up for this reserver.
    pub(crate) async fn woken(&mut self) {
        if let Some(every) = &mut self.every {
            let _ = every.changed().await;
            return;
        }
        let woken = futures::future::select_all(self.notified.iter_mut().map(Pin::as_mut));
        woken.await;
    }
}

/// The PostgreSQL channel of a schema's wake-ups.
pub(crate) fn channel(schema: Option<&str>) -> String {
    match schema {
        Some(schema) => format!("outsourced_{schema}"),
        None => "outsourced".to_owned(),
    }
}

/// Sends a wake-up on `channel` to every listening process, marked with its sender `from`
/// (through `pg_notify`, so that any schema name makes a valid channel). Inside a
/// transaction it is delivered at commit.
pub(crate) async fn notify_others<C: sea_orm::ConnectionTrait>(
    db: &C,
    channel: &str,
    from: &str,
) -> Result<(), sea_orm::DbErr> {
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), from.into()],
    );
    db.execute_raw(statement).await.map(drop)
}

/// Starts listening on `channel` (returning once `LISTEN` took effect, so that no later
/// notification is missed), then wakes this process's reservers at every notification, and
/// after a lost connection, since notifications may have been missed meanwhile.
pub(crate) async fn listen(
    url: &str,
    channel: String,
    wake: Wake,
) -> Result<JoinHandle<()>, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(&channel).await?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(note)) if note.payload() == wake.id() => {}
                Ok(Some(_)) => wake.everyone(),
                // The connection dropped; the next call reconnects and listens again.
                Ok(None) => wake.everyone(),
                Err(error) => {
                    tracing::warn!(%error, "the wake-up listener failed; retrying in 1s");
                    wake.everyone();
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }))
}
