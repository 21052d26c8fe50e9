//! The `outsourced-worker` binary: read the config, connect, work until a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Directory, Role, SqlBackend};
use outsourced_core::Backend;

use crate::config::{BackendConfig, WorkerConfig};
use crate::{Shutdown, Worker};

/// Runs jobs from the backend a config file names.
#[derive(Debug, Parser)]
#[command(name = "outsourced-worker", version, about)]
struct Args {
    /// The worker's config file, as `outsourcer worker config` writes it.
    #[arg(long, short, env = "OUTSOURCED_WORKER_CONFIG")]
    config: PathBuf,
    /// Stop once nothing is ready and nothing runs.
    #[arg(long)]
    exit_on_complete: bool,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    json_logs: bool,
}

/// Parses the arguments, runs the worker, and turns the outcome into an exit code: 0 after a
/// clean stop, 2 for a bad config, 1 for anything else.
pub async fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.json_logs);
    let config = match WorkerConfig::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("outsourced-worker: {error}");
            return ExitCode::from(2);
        }
    };
    let mut options = config.options();
    options.exit_on_complete |= args.exit_on_complete;
    let backend = match connect(&config, &mut options).await {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("outsourced-worker: {error}");
            return ExitCode::from(1);
        }
    };
    let worker = Worker::new(backend, &config.worker)
        .options(options)
        .commands(config.commands.clone());
    match worker.run(Shutdown::on_signals()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("outsourced-worker: {error}");
            ExitCode::from(1)
        }
    }
}

/// Next to the database, the worker applies what the server would: a locked worker does not
/// start, and without queues in its config it works the queues it is hired for.
async fn assignment(
    config: &WorkerConfig,
    directory: Directory,
    options: &mut crate::WorkerOptions,
) -> Result<(), String> {
    let worker = match directory.get(Role::Worker, &config.worker).await {
        Ok(worker) => worker,
        Err(outsourced_core::Error::Unknown { .. }) if !options.queues.is_empty() => return Ok(()),
        Err(outsourced_core::Error::Unknown { .. }) => {
            tracing::warn!(worker = %config.worker, "not in the directory: working every queue");
            return Ok(());
        }
        Err(error) => return Err(error.to_string()),
    };
    if worker.locked {
        return Err(format!("worker {} is locked out", worker.name));
    }
    if options.queues.is_empty() {
        if worker.queues.is_empty() {
            return Err(format!(
                "worker {0} is hired for no queue: hire it with `outsourcer queue hire QUEUE {0}`",
                worker.name
            ));
        }
        options.queues = worker.queues;
    }
    Ok(())
}

/// The backend the config names; for a database, also the worker's queues and lock state.
pub async fn connect(
    config: &WorkerConfig,
    options: &mut crate::WorkerOptions,
) -> Result<Arc<dyn Backend>, String> {
    match &config.backend {
        BackendConfig::Sql { url } => {
            let backend = SqlBackend::connect(url).await.map_err(|e| {
                let url = outsourced_backend_sql::redact(url);
                format!("cannot open the database {url}: {e}")
            })?;
            assignment(config, Directory::new(backend.clone()), options).await?;
            Ok(Arc::new(backend))
        }
        BackendConfig::Http {
            url,
            consumer_key,
            consumer_secret,
            ca_file,
        } => {
            // The server decides the worker's queues and refuses a locked worker.
            let mut http = HttpConfig::new(url, consumer_key, consumer_secret);
            http.ca_file = ca_file.clone();
            let backend = HttpBackend::new(http).map_err(|e| e.to_string())?;
            Ok(Arc::new(backend))
        }
    }
}

/// Logs to standard error; `RUST_LOG` sets the level (info by default).
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
