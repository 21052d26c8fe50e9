//! Wake-ups for long-polling reservers.
//!
//! New jobs wake one waiting reserver of their queue per commit that made them ready: a
//! `Notify` per queue (and one for reservers of every queue), whose `notify_one` wakes a single
//! waiter or, with none waiting, leaves a permit for the next. The one woken claims as many as
//! it may take; if it took a full batch (there may be more), it passes the wake-up on to the
//! next waiter (`Wake::pass_on`), and so on until one takes less than it could. Waking one
//! reserver per job sent as many claims to the database as there were jobs in the commit, each
//! a transaction that found one job (the others held by the claims beside it): at 500 single
//! enqueues a second over HTTP, a claim per job and PostgreSQL at a whole core
//! (docs/benchmarks.md). Reservers that run only some classes wait on a `Notify` per queue and
//! class instead, so that a job is never handed as a wake-up to a reserver that cannot take it
//! while one that can sleeps on. Waking every reserver for every job would send them all to
//! the database at once, where all but one find nothing; on SQLite, whose one writer
//! serializes the claims, that herd alone saturated it at a few hundred jobs a second.
//!
//! Everything else (a queue resumed, a job released or retried, a wake-up from another
//! process) wakes every reserver, as does any change for reservers with priority bounds, who
//! may not take the job they would be woken for; those watch a counter bumped at every
//! wake-up. Across processes on PostgreSQL, every wake-up is also a `NOTIFY` (an enqueue's is
//! sent inside its transaction, so it is delivered at the commit even when the process exits
//! right after; the ends of limited queues' jobs send theirs through a `Relay`, one at a
//! time), and each backend listens. On a SQLite file, a backend asks the file every
//! 50 ms whether another process has committed since (`PRAGMA data_version` on its writer
//! connection, whose own commits do not count) and then wakes its waiting reservers.
//! MariaDB has neither: there a waiting reserve looks again every `SqlConfig::idle_recheck`.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::{Notify, futures::OwnedNotified, watch};
use tokio::task::JoinHandle;

/// What a reserver waits for: a queue (`""` for every queue) and a class (`None` for any).
type WaitKey = (String, Option<String>);

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
    /// Per queue (class `None`), or per queue and class (queue `""` for every queue), created
    /// when a reserver first waits on it.
    queues: Mutex<HashMap<WaitKey, Arc<Notify>>>,
    /// Reservers of every queue.
    any: Arc<Notify>,
    /// Reservers waiting now (registered and not yet dropped).
    waiting: AtomicUsize,
    /// The wake-ups for other processes sent one at a time (`Wake::others_due`).
    relay: Relay,
}

/// Wake-ups for other processes that come at the rate of completions (the ends of limited
/// queues' jobs): one `NOTIFY` on its way at a time, and the wake-ups that came due meanwhile
/// sent as one after it. Each `NOTIFY` is a transaction, and PostgreSQL serializes the commits
/// of those that notify; one per completion made more than half of a limited burn-down's
/// transactions (docs/benchmarks.md). A woken process looks at everything anyway, so one
/// wake-up after the last end tells it all the ends before.
#[derive(Debug, Default)]
struct Relay {
    /// A wake-up is due and not yet taken by the sender.
    due: AtomicBool,
    /// A sender is running.
    sending: AtomicBool,
}

/// A reserver's registration, made before it looks for jobs so that a wake-up between its
/// look and its wait is not missed. Dropped after a wake-up it did not use, the wake-up goes
/// on to the next waiter.
pub(crate) struct Waiter {
    every: Option<watch::Receiver<u64>>,
    notified: Vec<Pin<Box<OwnedNotified>>>,
    wake: Wake,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.wake.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Wake {
    pub(crate) fn new() -> Self {
        Wake(Arc::new(Inner {
            id: format!("{:032x}", rand::random::<u128>()),
            every: watch::Sender::new(0),
            queues: Mutex::new(HashMap::new()),
            any: Arc::new(Notify::new()),
            waiting: AtomicUsize::new(0),
            relay: Relay::default(),
        }))
    }

    /// Marks a wake-up for other processes due; answers whether the caller is to start the
    /// sender (none was running), which takes it with [`Wake::take_due`].
    pub(crate) fn others_due(&self) -> bool {
        self.0.relay.due.store(true, Ordering::SeqCst);
        !self.0.relay.sending.swap(true, Ordering::SeqCst)
    }

    /// Takes the due wake-up, for the sender to send; false when none is due.
    pub(crate) fn take_due(&self) -> bool {
        self.0.relay.due.swap(false, Ordering::SeqCst)
    }

    /// The sender stops, having found nothing due; answers whether it must go on after all (a
    /// wake-up came due as it stopped, and no other sender started for it).
    pub(crate) fn sender_stops(&self) -> bool {
        self.0.relay.sending.store(false, Ordering::SeqCst);
        self.0.relay.due.load(Ordering::SeqCst)
            && !self.0.relay.sending.swap(true, Ordering::SeqCst)
    }

    fn queue(&self, name: &str, class: Option<&str>) -> Arc<Notify> {
        let mut queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        let key = (name.to_owned(), class.map(str::to_owned));
        queues.entry(key).or_default().clone()
    }

    /// New jobs became ready, of these classes in these queues. Each class of a queue wakes a
    /// reserver of its queue that runs any class, and one that runs its class; a woken
    /// reserver that takes a full batch wakes the next (`pass_on`). Only the `Notify`s that
    /// reservers registered are told: a reserver registers before it looks, so one that has
    /// not registered yet will find the jobs when it looks (and a producer's made-up classes
    /// leave nothing behind).
    pub(crate) fn jobs(&self, ready: &BTreeSet<(&str, &str)>) {
        let queues = self.0.queues.lock().unwrap_or_else(|e| e.into_inner());
        for &(queue, class) in ready {
            let keys = [
                (queue.to_owned(), None),
                (queue.to_owned(), Some(class.to_owned())),
                (String::new(), Some(class.to_owned())),
            ];
            let mut notifies: Vec<&Notify> = keys
                .iter()
                .filter_map(|k| queues.get(k))
                .map(|n| &**n)
                .collect();
            notifies.push(&self.0.any);
            notifies.iter().for_each(|notify| notify.notify_one());
        }
        drop(queues);
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

    /// Registers a reserver of `queues` (every queue when empty) and `classes` (any when
    /// `None`); `any_change` for one that must wake at every change (it has priority bounds).
    pub(crate) fn waiter(
        &self,
        queues: &[String],
        classes: Option<&[String]>,
        any_change: bool,
    ) -> Waiter {
        self.0.waiting.fetch_add(1, Ordering::Relaxed);
        if any_change {
            return Waiter {
                every: Some(self.0.every.subscribe()),
                notified: Vec::new(),
                wake: self.clone(),
            };
        }
        let notified = self
            .notifies(queues, classes)
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
            wake: self.clone(),
        }
    }

    /// The `Notify`s a reserver of `queues` and `classes` waits on (as in `waiter`).
    fn notifies(&self, queues: &[String], classes: Option<&[String]>) -> Vec<Arc<Notify>> {
        match (queues.is_empty(), classes) {
            (true, None) => vec![self.0.any.clone()],
            (false, None) => queues.iter().map(|q| self.queue(q, None)).collect(),
            (true, Some(classes)) => classes.iter().map(|c| self.queue("", Some(c))).collect(),
            (false, Some(classes)) => queues
                .iter()
                .flat_map(|q| classes.iter().map(move |c| (q, c)))
                .map(|(q, c)| self.queue(q, Some(c)))
                .collect(),
        }
    }

    /// A reserver of `queues` and `classes`, woken for new jobs, took a full batch: more may be
    /// ready, so the next reserver that waits as it did is woken (or, with none waiting, the
    /// next to wait finds a permit). One that takes less than it could ends the chain: it took
    /// what there was, or what its limits let it.
    pub(crate) fn pass_on(&self, queues: &[String], classes: Option<&[String]>) {
        for notify in self.notifies(queues, classes) {
            notify.notify_one();
        }
    }

    /// Whether any reserver is waiting.
    fn anyone_waiting(&self) -> bool {
        self.0.waiting.load(Ordering::Relaxed) > 0
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
/// (through `pg_notify`, so that any schema name makes a valid channel), inside the
/// transaction `db`: it is delivered at that transaction's commit.
pub(crate) async fn notify_others<C: sea_orm::ConnectionTrait>(
    db: &C,
    channel: &str,
    from: &str,
) -> Result<(), sea_orm::DbErr> {
    notify(db, "SELECT pg_notify($1, $2)", channel, from).await
}

/// [`notify_others`] as a transaction of its own, committed without waiting for the disk:
/// a wake-up needs no durability, and the commit of a `NOTIFY` holds PostgreSQL's lock that
/// serializes every notifying commit (an enqueue's among them).
pub(crate) async fn notify_others_alone<C: sea_orm::ConnectionTrait>(
    db: &C,
    channel: &str,
    from: &str,
) -> Result<(), sea_orm::DbErr> {
    // `set_config(..., true)` lasts until the end of the statement's own transaction, which
    // reads it as it commits.
    let sql = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)";
    notify(db, sql, channel, from).await
}

/// Runs `sql`, a `pg_notify` of `$1` with the payload `$2`.
async fn notify<C: sea_orm::ConnectionTrait>(
    db: &C,
    sql: &str,
    channel: &str,
    from: &str,
) -> Result<(), sea_orm::DbErr> {
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        sql,
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

/// How often a SQLite backend with reservers waiting asks whether another process committed.
const SQLITE_WATCH: std::time::Duration = std::time::Duration::from_millis(50);

/// On a SQLite file: asks every 50 ms whether another process has committed (`PRAGMA
/// data_version` on `writer`, the process's one writing connection: its own commits leave the
/// value as it is), and wakes every waiting reserver when one has. Another process's enqueue
/// then starts within about 50 ms, not at the next idle recheck.
pub(crate) fn watch_sqlite(writer: sea_orm::DatabaseConnection, wake: Wake) -> JoinHandle<()> {
    use sea_orm::ConnectionTrait;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SQLITE_WATCH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<i64> = None;
        loop {
            tick.tick().await;
            // Read even with no one waiting: the value to compare with must be older than any
            // reserver's look, or a commit between a look and the first read would be missed.
            let statement =
                sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "PRAGMA data_version");
            let version = match writer.query_one_raw(statement).await {
                Ok(row) => row.and_then(|row| row.try_get_by_index::<i64>(0).ok()),
                Err(error) => {
                    tracing::debug!(%error, "could not read SQLite's data_version");
                    None
                }
            };
            if version.is_some() && last.is_some() && version != last && wake.anyone_waiting() {
                wake.everyone();
            }
            last = version.or(last);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::Wake;

    #[test]
    fn the_relay_sends_one_at_a_time_and_once_more_after_what_came_meanwhile() {
        let wake = Wake::new();
        // The first end starts the sender; the ends while it runs do not start another.
        assert!(wake.others_due(), "the first end starts the sender");
        assert!(!wake.others_due(), "one sender at a time");
        assert!(wake.take_due(), "the sender sends for both ends at once");
        assert!(!wake.take_due(), "nothing more is due");
        // An end while it sends is sent after it.
        assert!(!wake.others_due());
        assert!(wake.take_due(), "the end that came meanwhile is sent");
        assert!(!wake.take_due());
        assert!(!wake.sender_stops(), "nothing due: the sender stops");
        // An end that came as the sender stopped (it saw a sender running) is not lost: the
        // stopping sender goes on for it.
        wake.0
            .relay
            .due
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            wake.sender_stops(),
            "a stopping sender goes on for a late end"
        );
        assert!(wake.take_due());
        assert!(!wake.sender_stops());
        // With no sender running, the next end starts one again.
        assert!(wake.others_due());
    }
}
