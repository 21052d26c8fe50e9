//! The `outsourced-worker` binary: read the config, connect, work until a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use outsourced_backend_sql::SqlBackend;
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
    let backend = match connect(&config).await {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("outsourced-worker: {error}");
            return ExitCode::from(1);
        }
    };
    let mut options = config.options();
    options.exit_on_complete |= args.exit_on_complete;
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

/// The backend the config names.
pub async fn connect(config: &WorkerConfig) -> Result<Arc<dyn Backend>, String> {
    match &config.backend {
        BackendConfig::Sql { url } => {
            let backend = SqlBackend::connect(url).await.map_err(|e| {
                format!(
                    "cannot open the database {}: {e}",
                    outsourced_backend_sql::redact(url)
                )
            })?;
            Ok(Arc::new(backend))
        }
        BackendConfig::Http { url, .. } => Err(format!(
            "this build cannot talk to a server over HTTP yet ({url}); use a `sql` backend"
        )),
    }
}

/// Logs to standard error; `RUST_LOG` sets the level (info by default).
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
