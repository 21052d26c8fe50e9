//! The `outsourced-worker` binary: read the config, check that the worker can work, connect,
//! work until a signal.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use outsourced_core::Error;

use crate::config::WorkerConfig;
use crate::connect::{Connected, connect};
use crate::run::GIVE_UP_AFTER;
use crate::{Shutdown, Worker};

/// Runs jobs from the backend its config file names, until SIGTERM or Ctrl-C (which let running
/// jobs finish, or give them back). `outsourcer worker config NAME -o FILE` writes the file.
#[derive(Debug, Parser)]
#[command(name = "outsourced-worker", version)]
struct Args {
    /// The worker's config file, as `outsourcer worker config` writes it (its keys:
    /// docs/worker-config.md).
    #[arg(long, short, env = "OUTSOURCED_WORKER_CONFIG")]
    config: PathBuf,
    /// Stop once nothing is ready and nothing runs (or after 12 failed tries in a row to
    /// reach the server, about 50 s, with an error).
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
    let gives_up = options.exit_on_complete;
    // Before connecting, so that a signal during the connect stops the worker cleanly.
    let shutdown = Shutdown::on_signals();
    let (worker, finish) = match connect(&config).await {
        Ok(Connected {
            backend,
            assignment,
            finish,
        }) => {
            let worker = Worker::new(backend, &config.worker)
                .options(options)
                .commands(config.commands.clone());
            let worker = match assignment {
                Some(assignment) => worker.assignment(assignment),
                None => worker,
            };
            (worker, finish)
        }
        // Said with the config's path: the refusal is of something in it.
        Err(error) => {
            eprintln!("outsourced-worker: {}: {error}", args.config.display());
            return ExitCode::from(1);
        }
    };
    let ran = worker.run(shutdown).await;
    if let Some(finish) = finish {
        finish.await;
    }
    match ran {
        Ok(_) => ExitCode::SUCCESS,
        Err(error @ (Error::Unauthorized { .. } | Error::Forbidden { .. })) => {
            let file = args.config.display().to_string();
            let what = crate::connect::refusal_advice(&config, &file, &error);
            eprintln!(
                "outsourced-worker: stopping: the backend refused worker {}'s requests ({error}); {what}",
                config.worker,
            );
            ExitCode::from(1)
        }
        Err(error) if gives_up && error.is_retryable() => {
            eprintln!(
                "outsourced-worker: stopping: could not reach the backend in {GIVE_UP_AFTER} tries in a row, about 50 s ({error}); once the server or database the config names is up, start the worker again"
            );
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("outsourced-worker: stopping: {}", said(&error));
            ExitCode::from(1)
        }
    }
}

/// An error as the worker's last line says it: a refusal of what was configured speaks for
/// itself, without "invalid input:".
fn said(error: &Error) -> String {
    match error {
        Error::InvalidInput { message } => message.clone(),
        error => error.to_string(),
    }
}

/// Logs to standard error; `RUST_LOG` sets the level (info by default).
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    // Migrations say nothing unless they do something, nor PostgreSQL's notices of the
    // migrations' "already exists, skipping".
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sea_orm_migration=warn,sqlx::postgres::notice=warn")
    });
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
