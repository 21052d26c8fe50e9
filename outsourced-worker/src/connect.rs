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
            // The server decides the worker's queues and refuses a locked worker; what it
            // says now only serves to warn. Unreachable or refusing, the worker's loop says so.
            let instance = outsourced_core::WorkerInstance::new(&config.worker, "-");
            refused_as_no_worker(&backend, &instance, config, url).await?;
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

/// Refuses credentials that are not a worker's (a producer's, say), which the server would
/// refuse at every reserve, and a URL that reaches no route of the API: asked now, by a
/// question only a worker may ask (is a job due?), the worker says so once instead of being
/// refused five times as if its secret were wrong. Any other answer (the server down, a wrong
/// secret) is left to the worker's loop, which waits for the one and stops at the other.
#[cfg(feature = "http")]
async fn refused_as_no_worker(
    backend: &outsourced_backend_http::HttpBackend,
    instance: &outsourced_core::WorkerInstance,
    config: &WorkerConfig,
    url: &str,
) -> std::result::Result<(), String> {
    let asked = outsourced_core::ReserveOptions::up_to(1);
    match backend.any_due(instance, &asked).await {
        Err(outsourced_core::Error::Forbidden { message }) => Err(format!(
            "the credentials in this config are not a worker's: the server refused a worker's request ({message}); give `consumer_key` and `consumer_secret` of worker {worker} (`outsourcer worker config {worker} --url {url} -o FILE` writes them)",
            worker = config.worker
        )),
        // A URL that reaches no route of the API: no retry would.
        Err(outsourced_core::Error::InvalidInput { message }) => Err(message),
        _ => Ok(()),
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
    if existing.is_none() && outsourced_core::workable_queues(hired, &config.queues).is_empty() {
        tracing::warn!(%worker, "hired for no queue it may work: it waits until it is (`outsourcer queue hire QUEUE {worker}`)");
    }
}
