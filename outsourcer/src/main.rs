//! `outsourcer`: the admin CLI of outsourced (the seed's `script/outsourcer`).
//!
//! - `args`: the command line; `context`: the open database, key and output mode;
//! - `queue`, `principal`, `job`: the commands; `demo`: the whole flow on a fresh file;
//! - `output`: tables and JSON.

/// `println!` for the command's output, which ends the command quietly (status 0) when its
/// reader has gone: `outsourcer job list | head -1`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

mod acts;
mod args;
mod attachment;
mod batch;
mod context;
mod demo;
mod job;
mod jsonl;
mod output;
mod principal;
mod queue;
mod serve;

use std::process::ExitCode;

use clap::Parser;
use outsourced_backend_sql::{Directory, ServerKey, store::secrets::write_private};
use outsourced_core::Result;

use crate::args::{Cli, Command};
use crate::context::Ctx;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(error),
    };
    init_logs(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("outsourcer: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match runtime.block_on(Box::pin(run(cli))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failed) => {
            report(&failed, json);
            ExitCode::FAILURE
        }
    }
}

/// A failed command: its error, and the sentence to say it with when there is a better one
/// than the error's own (an unknown name, with the name meant). The error keeps its kind, so
/// that `--json` reports its code.
struct Failed {
    error: outsourced_core::Error,
    said: Option<String>,
}

impl From<outsourced_core::Error> for Failed {
    fn from(error: outsourced_core::Error) -> Self {
        Failed { error, said: None }
    }
}

/// A command line clap refused (or `--help`, `--version`): as clap says it, or with `--json`
/// as one JSON object on standard error (code `usage`), as every other failure is; exit 2.
fn usage(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|arg| arg == "--json");
    let shown = matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    if !json || shown {
        error.exit();
    }
    // clap's own text and tips, less its "error: " and the usage and help it points to.
    let text = error.render().to_string();
    let said: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .filter(|part| !part.starts_with("Usage:") && !part.starts_with("For more information"))
        .collect();
    let message = said.join("; ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let body = serde_json::json!({ "error": { "code": "usage", "message": message } });
    eprintln!("{body}");
    ExitCode::from(2)
}

/// An error as a sentence: a refusal of what was asked speaks for itself, without "invalid
/// input:" or "conflict:".
pub(crate) fn message(error: &outsourced_core::Error) -> String {
    match error {
        outsourced_core::Error::InvalidInput { message }
        | outsourced_core::Error::Conflict { message } => message.clone(),
        error => error.to_string(),
    }
}

/// A failed command's error on standard error: one line of text, or with `--json` one JSON
/// object (`{"error": {"code", "message", ...}}`, the HTTP API's error body with the whole
/// message), so that a script reads failures as it reads results.
fn report(failed: &Failed, json: bool) {
    let message = failed
        .said
        .clone()
        .unwrap_or_else(|| message(&failed.error));
    if !json {
        eprintln!("outsourcer: {message}");
        return;
    }
    eprintln!(
        "{}",
        serde_json::json!({ "error": error_body(&failed.error, message) })
    );
}

/// An error as the HTTP API's error body (`{"code", "message", ...}`), said as `message`.
pub(crate) fn error_body(error: &outsourced_core::Error, message: String) -> serde_json::Value {
    let mut body = outsourced_backend_http::wire::ErrorBody::from_error(error);
    // The API keeps a backend failure's cause from its callers; the CLI's user owns it.
    body.message = message;
    serde_json::json!(body)
}

/// Logs go to standard error unless `RUST_LOG` says otherwise: `info` for the server (JSON
/// lines with `--json`), nothing for the demo, `warn` for the rest.
fn init_logs(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.command {
        Command::Demo(_) => "off",
        Command::Serve(_) => "info,sea_orm_migration=warn,sqlx::postgres::notice=warn",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match (&cli.command, cli.json) {
        (Command::Serve(_), true) => builder.json().try_init(),
        _ => builder.try_init(),
    };
}

async fn run(cli: Cli) -> std::result::Result<(), Failed> {
    // The demo opens a database of its own.
    if let Command::Demo(args) = &cli.command {
        return Ok(demo::run(cli.json, args).await?);
    }
    let ctx = Ctx::open(&cli).await?;
    let done = match command(&ctx, cli.command).await {
        Err(error) => Err(Failed {
            said: unknown_name(&ctx, &error).await,
            error,
        }),
        Ok(()) => Ok(()),
    };
    // What this process did to jobs (an enqueue, a retry, a server's whole run) joins the
    // database's tallies before it exits, even when the command failed after some of it.
    if let Err(error) = ctx.backend.flush_tallies().await {
        tracing::warn!(%error, "could not add this run's job tallies to the database");
    }
    done
}

/// What to say of an unknown queue, worker, producer or admin (`error`): the name meant when
/// the one given is a typo of one that exists. `None` for any other error.
async fn unknown_name(ctx: &Ctx, error: &outsourced_core::Error) -> Option<String> {
    use outsourced_core::{Backend, Error};
    let (kind, given, names): (&str, &str, Vec<String>) = match error {
        Error::UnknownQueue { queue } => {
            let queues = ctx.backend.queues(&ctx.actor()).await;
            let names = queues.map(|all| all.into_iter().map(|q| q.name).collect());
            ("queue", queue, names.unwrap_or_default())
        }
        Error::Unknown { kind, name } => {
            let role = kind.parse::<outsourced_backend_sql::Role>().ok()?;
            let principals = ctx.directory().list(role).await;
            let names = principals.map(|all| all.into_iter().map(|p| p.name).collect());
            (kind, name, names.unwrap_or_default())
        }
        _ => return None,
    };
    Some(not_found(kind, given, &names))
}

/// "unknown {kind}", naming the closest of `names` when `given` looks like a typo of it (at
/// most two edits), or the command that lists them.
pub(crate) fn not_found(kind: &str, given: &str, names: &[String]) -> String {
    let shown = output::clean(given);
    match outsourced_core::closest_name(given, names) {
        Some(name) => format!("unknown {kind} \"{shown}\": did you mean {name}?"),
        None => format!("unknown {kind} \"{shown}\" (outsourcer {kind} list shows them)"),
    }
}

async fn command(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Queue(command) => queue::run(ctx, command).await,
        Command::Worker(command) => principal::worker(ctx, command).await,
        Command::Producer(command) => principal::producer(ctx, command).await,
        Command::Admin(command) => principal::admin(ctx, command).await,
        Command::Job(command) => job::run(ctx, command).await,
        Command::Batch(command) => batch::run(ctx, command).await,
        Command::Demo(_) => Ok(()),
        Command::Serve(args) => serve::run(ctx, args).await,
        Command::Prune { batch } => queue::prune(ctx, batch).await,
        Command::Migrate => {
            // Opening the database already migrated it.
            out!(
                "the database {} is up to date",
                outsourced_backend_sql::redact(&ctx.url)
            );
            Ok(())
        }
        Command::RotateKey { new_key_file } => {
            // Read (or created) first, so that the current key's file exists for the check.
            let old = ctx.key().await?;
            // Never over a file: it may be the key every secret is encrypted with now.
            if std::fs::symlink_metadata(&new_key_file).is_ok() {
                return Err(outsourced_core::Error::invalid(format!(
                    "{} exists: give a path where no file is yet (the new key must not replace a key that secrets may still need)",
                    new_key_file.display()
                )));
            }
            let new = ServerKey::generate();
            // The new key is on disk before any secret depends on it.
            write_private(&new_key_file, &new.to_base64())?;
            let count = Directory::new(ctx.backend.clone())
                .reencrypt(&old, &new)
                .await?;
            out!(
                "re-encrypted {count} secrets under the new key {}; use it from now on",
                new_key_file.display()
            );
            Ok(())
        }
    }
}
