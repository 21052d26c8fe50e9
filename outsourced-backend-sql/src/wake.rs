//! Wake-ups for long-polling reservers: a counter bumped whenever a job may have become ready.
//!
//! In one process a watch channel carries it. Across processes on PostgreSQL, every wake-up is
//! also a `NOTIFY`, and each backend listens, so an enqueue through one server wakes workers
//! long-polling on another. MariaDB and SQLite have no such channel: there a waiting reserve
//! also looks again every `SqlConfig::idle_recheck`.

use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Wakes every reserver waiting in this process. Subscribing before looking for jobs, then
/// waiting for a change, never misses a wake-up that happens in between.
#[derive(Debug)]
pub(crate) struct Wake(watch::Sender<u64>);

impl Wake {
    pub(crate) fn new() -> Self {
        Wake(watch::Sender::new(0))
    }

    /// Tells the waiting reservers of this process to look again.
    pub(crate) fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver whose `changed()` resolves at the next notification.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// A handle that notifies without owning the channel (for the listener task).
    pub(crate) fn sender(&self) -> watch::Sender<u64> {
        self.0.clone()
    }
}

/// The PostgreSQL channel of a schema's wake-ups.
pub(crate) fn channel(schema: Option<&str>) -> String {
    match schema {
        Some(schema) => format!("outsourced_{schema}"),
        None => "outsourced".to_owned(),
    }
}

/// Sends a wake-up on `channel` to every listening process (through `pg_notify`, so that any
/// schema name makes a valid channel). Inside a transaction it is delivered at commit.
pub(crate) async fn notify_others<C: sea_orm::ConnectionTrait>(
    db: &C,
    channel: &str,
) -> Result<(), sea_orm::DbErr> {
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_notify($1, '')",
        [channel.into()],
    );
    db.execute_raw(statement).await.map(drop)
}

/// Starts listening on `channel` (returning once `LISTEN` took effect, so that no later
/// notification is missed), then wakes this process's reservers at every notification, and
/// after a lost connection, since notifications may have been missed meanwhile.
pub(crate) async fn listen(
    url: &str,
    channel: String,
    wake: watch::Sender<u64>,
) -> Result<JoinHandle<()>, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(&channel).await?;
    let bump = move || wake.send_modify(|n| *n = n.wrapping_add(1));
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => bump(),
                // The connection dropped; the next call reconnects and listens again.
                Ok(None) => bump(),
                Err(error) => {
                    tracing::warn!(%error, "the wake-up listener failed; retrying in 1s");
                    bump();
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }))
}
