//! Connecting to the backend a worker config names, and checking what the worker may do there.
//!
//! Each kind of backend is a feature of this crate (`sql`, `http`), so an application that
//! runs jobs over HTTP compiles no database driver, and one next to the database no HTTP
//! client; a config naming a backend this build lacks is refused with a clear message.

use std::sync::Arc;

use outsourced_core::Backend;

use crate::Assignment;
use crate::config::{BackendConfig, WorkerConfig};

/// A backend, and where the worker learns its queues when the server is not there to decide.
pub struct Connected {
    /// The backend the config names.
    pub backend: Arc<dyn Backend>,
    /// Next to the database: the directory's answer at each reserve.
    pub assignment: Option<Arc<dyn Assignment>>,
    /// What to do once the worker stopped, before the process exits (next to the database:
    /// add this process's last job tallies to the database's).
    pub finish: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// The backend the config names, after checking what the worker may do there: next to the
/// database, its entry in the directory; over HTTP, the queues the server hired it for.
/// Warns of configured queues it will not work.
pub async fn connect(config: &WorkerConfig) -> std::result::Result<Connected, String> {
    match &config.backend {
        #[cfg(feature = "sql")]
        BackendConfig::Sql { url } => {
            let mut sql = outsourced_backend_sql::SqlConfig::new(url);
            sql.create_if_missing = false;
            let backend = outsourced_backend_sql::SqlBackend::open(sql)
                .await
                .map_err(|e| {
                    let url = outsourced_backend_sql::redact(url);
                    format!("cannot open the database {url}: {e}")
                })?;
            let assignment = crate::directory::from_directory(config, &backend).await?;
            let last = backend.clone();
            Ok(Connected {
                backend: Arc::new(backend),
                assignment,
                finish: Some(Box::pin(async move {
                    if let Err(error) = last.flush_tallies().await {
                        tracing::warn!(%error, "could not add the last job tallies to the database");
                    }
                })),
            })
        }
        #[cfg(feature = "http")]
        BackendConfig::Http {
            url,
            consumer_key,
            consumer_secret,
            ca_file,
        } => {
            let mut http =
                outsourced_backend_http::HttpConfig::new(url, consumer_key, consumer_secret);
            http.ca_file = ca_file.clone();
            let backend =
                outsourced_backend_http::HttpBackend::new(http).map_err(|e| e.to_string())?;
            // What the server would refuse at every request stops the worker now; one it
            // cannot reach is left to the worker's loop, which waits for it. The queues it
            // names now only serve to warn: the server decides them at each reserve.
            let instance = outsourced_core::WorkerInstance::new(&config.worker, "-");
            refused_at_start(&backend, &instance, config, url).await?;
            let me = outsourced_core::Actor::Worker(instance);
            if let Ok(queues) = backend.queues(&me).await {
                let hired: Vec<String> = queues.into_iter().map(|q| q.name).collect();
                warn_of_queues(config, &hired, None);
            }
            Ok(Connected {
                backend: Arc::new(backend),
                assignment: None,
                finish: None,
            })
        }
        #[cfg(not(feature = "sql"))]
        BackendConfig::Sql { .. } => Err(missing("sql")),
        #[cfg(not(feature = "http"))]
        BackendConfig::Http { .. } => Err(missing("http")),
    }
}

/// Refuses, before the worker starts, what the server would refuse at every reserve:
/// credentials it does not accept (a wrong secret, a locked worker, a clock too far off),
/// credentials that are not a worker's (a producer's, say), another worker's keys than the
/// config names, and a URL that reaches no route of the API. Asked by a question only a
/// worker may ask (is a job due?), so that the worker says so once instead of being refused
/// five times. A server it cannot reach is left to the worker's loop, which waits for it.
#[cfg(feature = "http")]
async fn refused_at_start(
    backend: &outsourced_backend_http::HttpBackend,
    instance: &outsourced_core::WorkerInstance,
    config: &WorkerConfig,
    url: &str,
) -> std::result::Result<(), String> {
    let asked = outsourced_core::ReserveOptions::up_to(1);
    match backend.any_due(instance, &asked).await {
        // The config's `worker` may name the producer whose keys these are: no command to
        // suggest for that name, only where a worker's keys come from.
        Err(outsourced_core::Error::Forbidden { message }) => Err(format!(
            "the credentials in this config are not a worker's: the server refused a worker's request ({message}); give a worker's `consumer_key` and `consumer_secret` (`outsourcer worker config WORKER --url {url} -o FILE` writes a worker's config; `outsourcer worker list` shows the workers)"
        )),
        Err(error @ outsourced_core::Error::Unauthorized { .. }) => Err(format!(
            "the server refused this config's credentials ({error}); {}",
            refusal_advice(config, "this config", &error)
        )),
        // A URL that reaches no route of the API, or another worker's keys: no retry would.
        Err(outsourced_core::Error::InvalidInput { message }) => Err(message),
        // A server that cannot be talked to for good (TLS with a server that speaks plain
        // HTTP, a certificate refused): waiting would wait forever.
        Err(error @ outsourced_core::Error::Backend { .. }) if !error.is_retryable() => {
            Err(format!("cannot talk to the server: {error}"))
        }
        _ => Ok(()),
    }
}

/// What to do about credentials the backend refused (`error`), for the config in `file`.
#[cfg(feature = "http")]
pub(crate) fn refusal_advice(
    config: &WorkerConfig,
    file: &str,
    error: &outsourced_core::Error,
) -> String {
    use outsourced_backend_http::wire::Code;
    let worker = &config.worker;
    match error {
        // The secret is right; the clock is not, and rewriting the file would not help.
        outsourced_core::Error::Unauthorized { code, .. } if *code == Code::TimestampRefused => {
            "set this machine's clock right (NTP) and start the worker again".to_string()
        }
        outsourced_core::Error::Unauthorized { code, .. } if *code == Code::Locked => {
            format!("`outsourcer worker unlock {worker}` lets it in again")
        }
        _ => {
            // The command that writes them again, for this very server.
            let url = match &config.backend {
                BackendConfig::Http { url, .. } => format!(" --url {url}"),
                _ => String::new(),
            };
            format!(
                "check `consumer_key` and `consumer_secret` in {file} (`outsourcer worker config {worker}{url} -o FILE` writes them again)"
            )
        }
    }
}

/// The refusal of a config whose backend this build was compiled without.
#[cfg(not(all(feature = "sql", feature = "http")))]
fn missing(feature: &str) -> String {
    format!(
        "this build of outsourced-worker cannot reach a backend of this kind: \
         compile the outsourced-worker crate with its `{feature}` feature"
    )
}

/// Warns of configured queues the worker is not hired for, or that do not exist (over HTTP,
/// where a worker sees only its own queues, the two look the same), and of a worker hired for
/// no queue at all.
#[cfg(any(feature = "sql", feature = "http"))]
pub(crate) fn warn_of_queues(config: &WorkerConfig, hired: &[String], existing: Option<&[String]>) {
    let worker = &config.worker;
    for queue in &config.queues {
        // A typo of a queue it may work: say which.
        if let Some(meant) = outsourced_core::closest_name(queue, existing.unwrap_or(hired))
            && !hired.contains(queue)
        {
            tracing::warn!(%worker, %queue, "the config names a queue it will not work: did you mean {meant}?");
        } else if existing.is_some_and(|all| !all.contains(queue)) {
            tracing::warn!(%worker, %queue, "the config names a queue that does not exist: `outsourcer queue create {queue}`");
        } else if !hired.contains(queue) && existing.is_some() {
            tracing::warn!(%worker, %queue, "the config names a queue the worker is not hired for, which it will not work: `outsourcer queue hire {queue} {worker}`");
        } else if !hired.contains(queue) {
            tracing::warn!(%worker, %queue, "the config names a queue the server does not hire this worker for (or that does not exist), which it will not work: `outsourcer queue hire {queue} {worker}`");
        }
    }
    // Next to the database the worker's loop says so itself.
    if existing.is_some() || !outsourced_core::workable_queues(hired, &config.queues).is_empty() {
        return;
    }
    match hired.is_empty() {
        true => {
            tracing::warn!(%worker, "hired for no queue: it takes no job until it is (`outsourcer queue hire QUEUE {worker}`)")
        }
        // Hired, but the config's `queues:` leaves none of them.
        false => {
            tracing::warn!(%worker, hired = %hired.join(", "), "none of the queues the config names is one the worker is hired for: it takes no job until `queues:` names one of those (or is left out, for all of them)")
        }
    }
}
