//! The bench's command line: the scenarios to run, and the worker processes of its HTTP rig.

use clap::{Args, Parser, Subcommand};

/// Throughput, latency and memory of outsourced, each figure beside the database's own rate
/// (docs/benchmarks.md keeps the figures). Build it and `outsourcer` in release first:
/// `cargo build --release -p outsourced-bench -p outsourcer`.
#[derive(Debug, Parser)]
#[command(name = "outsourced-bench", args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) bench: BenchArgs,
}

/// The bench's own processes.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// One worker process of the HTTP rig (the bench starts them itself).
    #[command(hide = true)]
    Worker(BenchWorkerArgs),
}

#[derive(Clone, Debug, Args)]
pub(crate) struct BenchArgs {
    /// The database to measure: a fresh SQLite file in a temporary directory unless a
    /// `postgres://` or `mysql://` URL is given (use a scratch database: the bench adds queues
    /// and jobs and leaves them).
    #[arg(long)]
    pub(crate) on: Option<String>,
    /// SQLite's durability: `full` (the default: a commit survives a power loss) or `normal`.
    #[arg(long, default_value = "full")]
    pub(crate) sqlite_sync: String,
    /// Which scenarios: baseline, enqueue, burn-down, latency, memory, and limits (the
    /// burn-down with run limits beside it without, not run unless asked; comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,enqueue,burn-down,latency,memory"
    )]
    pub(crate) scenarios: Vec<String>,
    /// Through which backend: sql (in-process), http (`outsourcer serve` and worker
    /// processes, every request signed, over loopback), or both.
    #[arg(long, value_delimiter = ',', default_value = "sql,http")]
    pub(crate) via: Vec<String>,
    /// Jobs pre-inserted for the burn-down.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) jobs: usize,
    /// Workers draining the burn-down (and waiting in the latency scenario); over HTTP, each a
    /// process of its own.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 100)]
    pub(crate) concurrency: usize,
    /// The most jobs one reserve takes.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: u32,
    /// Concurrent producers enqueueing one job at a time.
    #[arg(long, default_value_t = 16)]
    pub(crate) producers: usize,
    /// Jobs enqueued one at a time (spread over the producers).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) single: usize,
    /// Steady-load rates, in jobs per second.
    #[arg(long, value_delimiter = ',', default_value = "100,500,2000")]
    pub(crate) rates: Vec<u32>,
    /// How long each steady load lasts.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) duration: std::time::Duration,
    /// A short run: a tenth of the jobs, 5 s loads.
    #[arg(long)]
    pub(crate) quick: bool,
    /// One JSON object per line instead of the table: the run's settings, then each figure
    /// (`value` and `unit`, or `p50_ms`..`max_ms`, or `kib`) with its ratio as `versus`.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Clone, Debug, Args)]
pub(crate) struct BenchWorkerArgs {
    /// The server's URL, mount included.
    #[arg(long)]
    pub(crate) url: String,
    /// The worker whose keys these are (the server refuses a reserve naming another).
    #[arg(long, default_value = crate::rig::WORKER)]
    pub(crate) worker: String,
    /// The worker's consumer key.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) key: String,
    /// The worker's consumer secret.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) secret: String,
    /// The queue to work.
    #[arg(long)]
    pub(crate) queue: String,
    /// Jobs each worker runs at once.
    #[arg(long)]
    pub(crate) concurrency: usize,
    /// The most jobs one reserve takes.
    #[arg(long)]
    pub(crate) batch: u32,
    /// Workers in this process, each a client of its own.
    #[arg(long, default_value_t = 1)]
    pub(crate) instances: usize,
    /// Stop once nothing is ready (else at SIGTERM).
    #[arg(long)]
    pub(crate) exit_when_done: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn keys_and_secrets_that_begin_with_a_dash_are_values() {
        let cli = Cli::try_parse_from([
            "outsourced-bench",
            "worker",
            "--url",
            "http://h/outsourced",
            "--key",
            "-tK3y",
            "--secret",
            "-Ps3cret",
            "--queue",
            "q",
            "--concurrency",
            "1",
            "--batch",
            "1",
        ]);
        let Ok(Cli {
            command: Some(Command::Worker(args)),
            ..
        }) = cli
        else {
            panic!("refused: {cli:?}");
        };
        assert_eq!(
            (args.key.as_str(), args.secret.as_str()),
            ("-tK3y", "-Ps3cret")
        );
    }
}
