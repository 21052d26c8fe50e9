//! `outsourcer`: the admin CLI of outsourced (the seed's `script/outsourcer`).
//!
//! - `args`: the command line; `context`: the open database, key and output mode;
//! - `queue`, `principal`, `job`: the commands; `demo`: the whole flow on a fresh file;
//! - `bench`: throughput, latency and memory beside the database's own rate;
//! - `output`: tables and JSON.

mod args;
mod attachment;
mod bench;
mod context;
mod demo;
mod job;
mod output;
mod principal;
mod queue;
mod serve;

use std::process::ExitCode;

use clap::Parser;
use outsourced_backend_sql::{Directory, Role, ServerKey, secrets::write_private};
use outsourced_core::Result;

use crate::args::{Cli, Command};
use crate::context::Ctx;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.command);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("outsourcer: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(Box::pin(run(cli))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("outsourcer: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error unless `RUST_LOG` says otherwise: `info` for the server, nothing
/// for the demo, `warn` for the rest.
fn init_logs(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let default = match command {
        Command::Demo(_) | Command::Bench(_) | Command::BenchWorker(_) => "off",
        Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> Result<()> {
    // The bench opens databases of its own.
    match &cli.command {
        Command::Bench(args) => return bench::run(args.clone()).await,
        Command::BenchWorker(args) => return bench::worker::run(args.clone()).await,
        _ => {}
    }
    let ctx = Ctx::open(&cli).await?;
    match cli.command {
        Command::Queue(command) => queue::run(&ctx, command).await,
        Command::Worker(command) => principal::run(&ctx, Role::Worker, command).await,
        Command::Producer(command) => principal::run(&ctx, Role::Producer, command).await,
        Command::Admin(command) => principal::run(&ctx, Role::Admin, command).await,
        Command::Job(command) => job::run(&ctx, command).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Bench(_) | Command::BenchWorker(_) => Ok(()),
        Command::Serve(args) => serve::run(&ctx, args).await,
        Command::Prune { batch } => queue::prune(&ctx, batch).await,
        Command::Migrate => {
            // Opening the database already migrated it.
            println!(
                "the database {} is up to date",
                outsourced_backend_sql::redact(&ctx.url)
            );
            Ok(())
        }
        Command::RotateKey { new_key_file } => {
            let old = ctx.key()?;
            let new = ServerKey::generate();
            // The new key is on disk before any secret depends on it.
            write_private(&new_key_file, &new.to_base64())?;
            let count = Directory::new(ctx.backend.clone())
                .reencrypt(&old, &new)
                .await?;
            println!(
                "re-encrypted {count} secrets under the new key {}; use it from now on",
                new_key_file.display()
            );
            Ok(())
        }
    }
}
