//! `outsourced-bench`: throughput, latency and memory, each figure printed on one line beside
//! the database's own rate for the same settings (single-row insert transactions), so that the
//! distance to the limit shows whatever the machine's speed that day. docs/benchmarks.md keeps
//! the figures. An unpublished crate of its own, so that no admin's `outsourcer` carries it.
//!
//! - `args`: the command line; `scenarios`: what is measured; `rig`: the SQL rig in this
//!   process or the HTTP rig (`outsourcer serve` and `outsourced-bench worker` processes);
//! - `baseline`: the database's own rate; `memory`, `procs`: processes and their memory;
//! - `report`: the table, or JSON Lines with `--json`.

/// `println!` that ends the bench quietly when its reader has gone.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::line_out(format_args!($($arg)*))
    };
}

mod args;
mod baseline;
mod memory;
mod procs;
mod report;
mod rig;
mod scenarios;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use std::time::Duration;

use outsourced_backend_sql::{SqlBackend, SqlConfig, SqliteSync};
use outsourced_core::{Error, Result};
use serde_json::json;

use crate::args::{BenchArgs, Cli, Command};
use report::{Figure, line};
use rig::Rig;
use scenarios::Crew;

/// The database's own rates, for the ratios.
struct Baseline {
    serial: Option<f64>,
    concurrent: Option<f64>,
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn ratio(figure: f64, base: Option<f64>) -> Option<f64> {
    base.map(|b| figure / b)
}

async fn run(args: BenchArgs) -> Result<()> {
    let args = args.scaled();
    if args.json {
        report::use_json();
    }
    let dir = tempfile::tempdir().map_err(|e| Error::invalid(format!("no temp dir: {e}")))?;
    let url = args
        .on
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let mut config = SqlConfig::new(&url);
    config.sqlite_sync = match args.sqlite_sync.as_str() {
        "normal" => SqliteSync::Normal,
        "full" => SqliteSync::Full,
        other => {
            return Err(Error::invalid(format!(
                "--sqlite-sync {other}: full or normal"
            )));
        }
    };
    let sql = SqlBackend::open(config).await?;
    header(&args, &url, &sql);
    let wants = |s: &str| args.scenarios.iter().any(|x| x == s);
    let baseline = if wants("baseline") {
        measure_baseline(&args, &url).await?
    } else {
        Baseline {
            serial: None,
            concurrent: None,
        }
    };
    // Enqueue scenarios leave their jobs waiting, so they run last: a backlog in other queues
    // slows every claim (see docs/benchmarks.md).
    let mut rigs = Vec::new();
    for via in &args.via {
        let rig = match via.as_str() {
            "sql" => Rig::sql(&sql, args.workers),
            "http" => Rig::http(&sql, &url, args.workers).await?,
            other => return Err(Error::invalid(format!("--via {other}: sql or http"))),
        };
        if wants("memory") {
            memory::server_now(&rig, "idle, just started");
            memory::idle(&rig).await?;
        }
        if wants("burn-down") {
            burn_down(&args, &rig, &baseline).await?;
        }
        if wants("limits") {
            limits(&args, &rig).await?;
        }
        if wants("latency") {
            latency(&args, &rig).await?;
        }
        rigs.push(rig);
    }
    if wants("enqueue") {
        for rig in &rigs {
            enqueue(&args, rig, &baseline).await?;
        }
    }
    for rig in &rigs {
        memory::server_now(rig, "after every scenario");
    }
    own_memory();
    Ok(())
}

fn header(args: &BenchArgs, url: &str, sql: &SqlBackend) {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    let durability = match sql.flavor() {
        outsourced_backend_sql::Flavor::Sqlite => format!("WAL, synchronous={}", args.sqlite_sync),
        _ => "the server's defaults (fsync at commit)".into(),
    };
    let database = outsourced_backend_sql::redact(url);
    let build = match cfg!(debug_assertions) {
        true => "DEBUG (figures are not meaningful)",
        false => "release",
    };
    let lines = [
        format!("outsourced-bench at commit {commit}"),
        format!("database {database} ({durability})"),
        format!(
            "{} workers x concurrency {}, reserve batches of {}, {} producers; {build} build",
            args.workers, args.concurrency, args.batch, args.producers
        ),
    ];
    let settings = [
        ("commit", json!(commit)),
        ("database", json!(database.to_string())),
        ("durability", json!(durability)),
        ("workers", json!(args.workers)),
        ("concurrency", json!(args.concurrency)),
        ("batch", json!(args.batch)),
        ("producers", json!(args.producers)),
        ("build", json!(build)),
    ];
    report::header(&settings, &lines);
}

async fn measure_baseline(args: &BenchArgs, url: &str) -> Result<Baseline> {
    let n = args.single;
    let serial = baseline::single_row_inserts(url, &args.sqlite_sync, 1, n).await?;
    line(
        "db",
        "single-row inserts",
        "1 connection",
        Figure::Rate(serial, "rows/s"),
        Some(1.0),
    );
    let concurrent =
        baseline::single_row_inserts(url, &args.sqlite_sync, args.producers, n).await?;
    let settings = match url.starts_with("sqlite:") {
        true => "1 writer (SQLite has one)".to_owned(),
        false => format!("{} connections", args.producers),
    };
    line(
        "db",
        "single-row inserts",
        &settings,
        Figure::Rate(concurrent, "rows/s"),
        Some(1.0),
    );
    Ok(Baseline {
        serial: Some(serial),
        concurrent: Some(concurrent),
    })
}

async fn enqueue(args: &BenchArgs, rig: &Rig, base: &Baseline) -> Result<()> {
    let n = args.single;
    let one = rate(n, scenarios::enqueue_single(rig, n, 1).await?);
    let settings = format!("1 producer, {n} jobs");
    line(
        rig.via,
        "enqueue one at a time",
        &settings,
        Figure::Rate(one, "jobs/s"),
        ratio(one, base.serial),
    );
    let many = rate(n, scenarios::enqueue_single(rig, n, args.producers).await?);
    let settings = format!("{} producers, {n} jobs", args.producers);
    line(
        rig.via,
        "enqueue one at a time",
        &settings,
        Figure::Rate(many, "jobs/s"),
        ratio(many, base.concurrent),
    );
    let batched_n = args.jobs;
    let batched = rate(
        batched_n,
        scenarios::enqueue_batched(rig, batched_n, 1000).await?,
    );
    let settings = format!("batches of 1,000, {batched_n} jobs");
    line(
        rig.via,
        "enqueue in batches",
        &settings,
        Figure::Rate(batched, "jobs/s"),
        ratio(batched, base.serial),
    );
    Ok(())
}

/// How the rig's workers run, from the command line.
fn crew(args: &BenchArgs) -> Crew {
    Crew {
        concurrency: args.concurrency,
        batch: args.batch,
    }
}

async fn burn_down(args: &BenchArgs, rig: &Rig, base: &Baseline) -> Result<()> {
    let crew = crew(args);
    let n = args.jobs;
    let figure = rate(n, scenarios::burn_down(rig, n, crew).await?);
    let settings = format!("{n} no-op jobs, {} workers", args.workers);
    line(
        rig.via,
        "burn-down",
        &settings,
        Figure::Rate(figure, "jobs/s"),
        ratio(figure, base.concurrent),
    );
    Ok(())
}

/// The burn-down of a queue without limits, then with a limit of 100 running jobs, then of jobs
/// spread over 1,000 concurrency keys at one running job per key, then without limits again:
/// each limited figure beside the mean of the two unlimited ones of the same run. Both sides
/// of the limited runs, because each run leaves the jobs table larger (dead rows on
/// PostgreSQL) for the next: a limited run compared with the first alone would pay for that.
async fn limits(args: &BenchArgs, rig: &Rig) -> Result<()> {
    let crew = crew(args);
    let n = args.jobs;
    let first = rate(n, scenarios::burn_down(rig, n, crew).await?);
    let settings = format!("{n} no-op jobs, {} workers", args.workers);
    let shapes = [
        (
            "burn-down, max_running 100",
            scenarios::Limited {
                max_running: Some(100),
                ..Default::default()
            },
        ),
        (
            "burn-down, 1000 keys x 1",
            scenarios::Limited {
                per_key: Some(1),
                keys: 1000,
                ..Default::default()
            },
        ),
    ];
    let mut figures = Vec::new();
    for (scenario, limited) in shapes {
        let took = scenarios::burn_down_limited(rig, n, crew, limited).await?;
        figures.push((scenario, rate(n, took)));
    }
    let last = rate(n, scenarios::burn_down(rig, n, crew).await?);
    let free = (first + last) / 2.0;
    let unlimited = [
        ("burn-down, no limits, first", first),
        ("burn-down, no limits, last", last),
    ];
    for (scenario, figure) in unlimited {
        let figure = Figure::Rate(figure, "jobs/s");
        line(rig.via, scenario, &settings, figure, None);
    }
    for (scenario, figure) in figures {
        let versus = ratio(figure, Some(free));
        line(
            rig.via,
            scenario,
            &settings,
            Figure::Rate(figure, "jobs/s"),
            versus,
        );
    }
    Ok(())
}

/// The percentiles of sorted microseconds, in milliseconds.
fn percentiles(sorted: &[i64]) -> Figure {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    Figure::Latency {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

async fn latency(args: &BenchArgs, rig: &Rig) -> Result<()> {
    let crew = crew(args);
    for &per_second in &args.rates {
        let load = scenarios::steady(rig, per_second, args.duration, crew).await?;
        let waits = &load.waits;
        let settings = format!(
            "{per_second} jobs/s for {} s, {} jobs",
            args.duration.as_secs(),
            load.sent
        );
        let figure = match waits.len() {
            0 => Figure::Note("none started".to_owned()),
            n if n < load.sent => {
                Figure::Note(format!("saturated: {n} started within 60 s of the end"))
            }
            _ => percentiles(waits),
        };
        line(rig.via, "enqueue-to-start latency", &settings, figure, None);
        if !load.enqueues.is_empty() {
            let what = "each producer call until it returned (within the latency above)";
            line(
                rig.via,
                "enqueue round trip",
                what,
                percentiles(&load.enqueues),
                None,
            );
        }
        if let Some(peak) = load.worker_peak {
            let what = "a worker process's peak, under that load";
            let figure = Figure::Memory {
                kib: peak,
                peak_kib: None,
            };
            line(rig.via, "worker resident memory", what, figure, None);
        }
        if let Some(error) = load.first_error {
            let refused = load.refused;
            report::note(&format!("{refused} enqueues refused; the first: {error}"));
        }
    }
    Ok(())
}

/// This process's resident memory now and at its peak: the SQL rig's workers and every
/// producer run in it.
fn own_memory() {
    if let Some((kib, peak)) = procs::memory(std::process::id()) {
        let figure = Figure::Memory {
            kib,
            peak_kib: Some(peak),
        };
        let what = "the bench's process: producers, the SQL rig's workers";
        line("bench", "resident memory", what, figure, None);
    }
}

impl BenchArgs {
    /// `--quick`: a tenth of the jobs, 5 s loads.
    fn scaled(mut self) -> Self {
        if self.quick {
            self.jobs = (self.jobs / 10).max(1);
            self.single = (self.single / 10).max(1);
            self.duration = self.duration.min(Duration::from_secs(5));
        }
        self
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Quiet unless asked: the figures are the output.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let done = match cli.command {
        Some(Command::Worker(args)) => worker::run(args).await,
        None => run(cli.bench).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("outsourced-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Writes one line of output; a reader that has gone (a pipe into `head`) ends quietly.
fn line_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("outsourced-bench: cannot write the output: {error}");
            std::process::exit(1);
        }
    }
}
