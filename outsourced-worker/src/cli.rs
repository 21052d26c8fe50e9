//! The `outsourced-worker` binary: read the config, check that the worker can work, connect,
//! work until a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::directory::workable_queues;
use outsourced_backend_sql::{Directory, Role, SqlBackend, SqlConfig};
use outsourced_core::{Actor, Backend, Error, Result};

use crate::config::{BackendConfig, WorkerConfig};
use crate::{Assignment, Shutdown, Worker};

/// Runs jobs from the backend its config file names, until SIGTERM or Ctrl-C (which let running
/// jobs finish, or give them back). `outsourcer worker config NAME -o FILE` writes the file.
#[derive(Debug, Parser)]
#[command(name = "outsourced-worker", version)]
struct Args {
    /// The worker's config file, as `outsourcer worker config` writes it (its keys:
    /// docs/worker-config.md).
    #[arg(long, short, env = "OUTSOURCED_WORKER_CONFIG")]
    config: PathBuf,
    /// Stop once nothing is ready and nothing runs.
    #[arg(long)]
    exit_on_complete: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, visible_alias = "json")]
    json_logs: bool,
}

/// Parses the arguments, runs the worker, and turns the outcome into an exit code: 0 after a
/// clean stop, 2 for a config it cannot work with, 1 for anything else (a backend it cannot
/// reach, credentials refused again and again).
pub async fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.json_logs);
    let loaded = WorkerConfig::load(&args.config);
    let config = match loaded.and_then(|c| c.check_runnable(&args.config).map(|()| c)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("outsourced-worker: {error}");
            return ExitCode::from(2);
        }
    };
    let mut options = config.options();
    options.exit_on_complete |= args.exit_on_complete;
    let worker = match connect(&config).await {
        Ok(Connected {
            backend,
            assignment,
        }) => {
            let worker = Worker::new(backend, &config.worker)
                .options(options)
                .commands(config.commands.clone());
            match assignment {
                Some(assignment) => worker.assignment(assignment),
                None => worker,
            }
        }
        Err(error) => {
            eprintln!("outsourced-worker: {error}");
            return ExitCode::from(1);
        }
    };
    match worker.run(Shutdown::on_signals()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error @ (Error::Unauthorized { .. } | Error::Forbidden { .. })) => {
            let what = match &error {
                // The secret is right; the clock is not, and rewriting the file would not help.
                Error::Unauthorized { code, .. } if code == "timestamp_refused" => {
                    "set this machine's clock right (NTP) and start the worker again".to_string()
                }
                _ => format!(
                    "check `consumer_key` and `consumer_secret` in {} (`outsourcer worker config {} -o FILE` writes them again)",
                    args.config.display(),
                    config.worker
                ),
            };
            eprintln!(
                "outsourced-worker: stopping: the backend refused worker {}'s requests {} times in a row ({error}); {what}",
                config.worker,
                config.options().max_refusals,
            );
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("outsourced-worker: stopping: {error}");
            ExitCode::from(1)
        }
    }
}

/// A backend, and where the worker learns its queues when the server is not there to decide.
pub struct Connected {
    /// The backend the config names.
    pub backend: Arc<dyn Backend>,
    /// Next to the database: the directory's answer at each reserve.
    pub assignment: Option<Arc<dyn Assignment>>,
}

/// The backend the config names, after checking what the worker may do there: next to the
/// database, its entry in the directory; over HTTP, the queues the server hired it for.
/// Warns of configured queues it will not work.
pub async fn connect(config: &WorkerConfig) -> std::result::Result<Connected, String> {
    match &config.backend {
        BackendConfig::Sql { url } => {
            let mut sql = SqlConfig::new(url);
            sql.create_if_missing = false;
            let backend = SqlBackend::open(sql).await.map_err(|e| {
                let url = outsourced_backend_sql::redact(url);
                format!("cannot open the database {url}: {e}")
            })?;
            let assignment = from_directory(config, &backend).await?;
            Ok(Connected {
                backend: Arc::new(backend),
                assignment,
            })
        }
        BackendConfig::Http {
            url,
            consumer_key,
            consumer_secret,
            ca_file,
        } => {
            let mut http = HttpConfig::new(url, consumer_key, consumer_secret);
            http.ca_file = ca_file.clone();
            let backend = HttpBackend::new(http).map_err(|e| e.to_string())?;
            // The server decides the worker's queues and refuses a locked worker; what it
            // says now only serves to warn. Unreachable or refusing, the worker's loop says so.
            let me = Actor::Worker(outsourced_core::WorkerInstance::new(&config.worker, "-"));
            if let Ok(queues) = backend.queues(&me).await {
                let hired: Vec<String> = queues.into_iter().map(|q| q.name).collect();
                warn_of_queues(config, &hired, None);
            }
            Ok(Connected {
                backend: Arc::new(backend),
                assignment: None,
            })
        }
    }
}

/// Next to the database, the worker applies what the server would: a locked worker does not
/// start; it works the queues it is hired for (those of them its config names), asked at each
/// reserve. A worker not in the directory starts only when its config names its queues.
async fn from_directory(
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

/// Warns of configured queues the worker is not hired for, or that do not exist (over HTTP,
/// where a worker sees only its own queues, the two look the same), and of a worker hired for
/// no queue at all.
fn warn_of_queues(config: &WorkerConfig, hired: &[String], existing: Option<&[String]>) {
    let worker = &config.worker;
    for queue in &config.queues {
        if existing.is_some_and(|all| !all.contains(queue)) {
            tracing::warn!(%worker, %queue, "the config names a queue that does not exist: `outsourcer queue create {queue}`");
        } else if !hired.contains(queue) && existing.is_some() {
            tracing::warn!(%worker, %queue, "the config names a queue the worker is not hired for, which it will not work: `outsourcer queue hire {queue} {worker}`");
        } else if !hired.contains(queue) {
            tracing::warn!(%worker, %queue, "the config names a queue the server does not hire this worker for (or that does not exist), which it will not work: `outsourcer queue hire {queue} {worker}`");
        }
    }
    // Next to the database the worker's loop says so itself.
    if existing.is_none() && workable_queues(hired, &config.queues).is_empty() {
        tracing::warn!(%worker, "hired for no queue it may work: it waits until it is (`outsourcer queue hire QUEUE {worker}`)");
    }
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
        let refused = |code: &str, message: String| Error::Unauthorized {
            code: code.to_owned(),
            message,
        };
        match self.directory.get(Role::Worker, &self.worker).await {
            Ok(worker) if worker.locked => Err(refused(
                "locked",
                format!("worker {} is locked out", self.worker),
            )),
            Ok(worker) => Ok(workable_queues(&worker.queues, &self.asked)),
            Err(Error::Unknown { .. }) => Err(refused(
                "unknown_worker",
                format!("worker {} is no longer in the directory", self.worker),
            )),
            Err(error) => Err(error),
        }
    }
}

/// Logs to standard error; `RUST_LOG` sets the level (info by default).
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    // Migrations say nothing unless they do something.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sea_orm_migration=warn"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
