//! `outsourced-worker --config foo.yml`: the generic worker.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    outsourced_worker::cli::main().await
}
