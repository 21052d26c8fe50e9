//! `outsourcer demo`: the whole flow on a fresh SQLite file. It creates a queue and a worker,
//! hires it, serves the HTTP API on a local port, enqueues a few thousand jobs (some fail once
//! and are retried, some have an owner, one fails for good), works them off with workers that
//! talk to the server over HTTP with signed requests, and shows what happened.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Credentials, Directory, Role, ServerKey, SqlBackend, SqlConfig};
use outsourced_core::{
    Actor, Backend, BackendExt, Backoff, Job, JobContext, JobError, JobExt, JobFilter, JobState,
    NewJob, Owner, QueueLimit, Registry, Result,
};
use outsourced_server::{AppState, ServerConfig, serve};
use outsourced_worker::{Shutdown, Stage, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::args::DemoArgs;
use crate::context::actor;
use crate::job::progress;
use crate::output::{history_text, queues_table, table};

const QUEUE: &str = "demo";
const WORKER: &str = "demo-worker";

/// Resizes an image (here: a little arithmetic).
#[derive(Serialize, Deserialize)]
struct Resize {
    image: u64,
    width: u32,
}

#[async_trait]
impl Job for Resize {
    const CLASS: &'static str = "Demo::Resize";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        let sum = (0..u64::from(self.width)).fold(self.image, |acc, x| acc.rotate_left(5) ^ x);
        std::hint::black_box(sum);
        Ok(())
    }
}

/// Fails its first attempt (a flaky mail server) and succeeds on the second.
#[derive(Serialize, Deserialize)]
struct Notify {
    user: u64,
}

#[async_trait]
impl Job for Notify {
    const CLASS: &'static str = "Demo::Notify";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        if ctx.attempt == 1 {
            let error = format!("user {}: the mail server did not answer", self.user);
            return Err(JobError::msg(error));
        }
        Ok(())
    }
}

/// Always fails: a report whose data source is gone.
#[derive(Serialize, Deserialize)]
struct Report {
    source: String,
}

#[async_trait]
impl Job for Report {
    const CLASS: &'static str = "Demo::Report";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        let missing = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is gone", self.source),
        );
        Err(JobError::from(missing))
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register::<Resize>()
        .register::<Notify>()
        .register::<Report>();
    registry
}

/// A short back-off, so that the demo's retries happen within seconds.
const QUICK_RETRY: Backoff = Backoff::Constant(Duration::from_millis(100));

/// The demo's jobs: mostly resizes; every tenth a notification that fails once, owned by one
/// of ten users; and one report that fails for good.
fn jobs(n: usize) -> Result<Vec<NewJob>> {
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let job = if i % 10 == 3 {
            let user = i % 7;
            (Notify { user }.to_new_job()?)
                .backoff(QUICK_RETRY)
                .owner(Owner::new("User", user.to_string()))
        } else {
            Resize {
                image: i,
                width: 640,
            }
            .to_new_job()?
        };
        jobs.push(job.queue(QUEUE));
    }
    let report = Report {
        source: "s3://reports/2026-11.csv".into(),
    };
    jobs.push(
        report
            .to_new_job()?
            .queue(QUEUE)
            .max_attempts(3)
            .backoff(QUICK_RETRY),
    );
    Ok(jobs)
}

pub(crate) async fn run(json: bool, args: &DemoArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("outsourced-demo-")
        .tempdir()
        .map_err(|e| outsourced_core::Error::invalid(format!("cannot make a directory: {e}")))?;
    let db = dir.path().join("outsourced.db");
    out!("outsourced demo on a fresh SQLite file: {}", db.display());
    let mut config = SqlConfig::new(format!("sqlite://{}", db.display()));
    config.sqlite_sync = outsourced_backend_sql::SqliteSync::Normal;
    let backend = SqlBackend::open(config).await?;
    let admin = actor();
    // The demo's own server key: nothing it creates outlives it.
    let key = ServerKey::generate();
    let credentials = setup(&backend, &key, &admin, args.jobs).await?;
    let (url, _server) = start_server(&backend, key).await?;
    let jobs = jobs(args.jobs)?;
    let total = jobs.len();
    let started = Instant::now();
    enqueue(json, &backend, jobs).await?;
    let enqueued_in = started.elapsed();
    let remote = HttpConfig::new(url, credentials.consumer_key, credentials.consumer_secret);
    let worked_in = work(json, &backend, remote, args.workers, total).await?;
    report(&backend, &admin, total, enqueued_in, worked_in).await?;
    // The dashboard's charts of a kept database show the demo's last second too.
    backend.flush_tallies().await?;
    if args.keep {
        let kept = dir.keep().join("outsourced.db");
        out!("\nkept the demo's database: {}", kept.display());
        out!(
            "to browse it in the dashboard:\n  export OUTSOURCED_DATABASE_URL=sqlite://{}\n  \
             outsourcer admin create root && outsourcer admin password root && outsourcer serve\n  \
             then open http://127.0.0.1:8080/outsourced/dashboard",
            kept.display()
        );
    }
    Ok(())
}

/// A queue, a worker with credentials, and the hire.
async fn setup(
    backend: &SqlBackend,
    key: &ServerKey,
    admin: &Actor,
    jobs: usize,
) -> Result<Credentials> {
    let limit = QueueLimit::Max(jobs as u64 + 100);
    backend.create_queue(admin, QUEUE, limit).await?;
    let directory = Directory::new(backend.clone());
    let (_, credentials) = directory.create(key, Role::Worker, WORKER).await?;
    directory.grant(Role::Worker, WORKER, QUEUE).await?;
    out!("created queue {QUEUE} (limit {limit}) and worker {WORKER}, hired for {QUEUE}");
    Ok(credentials)
}

/// A server on a free local port; it stops when the returned sender is dropped.
async fn start_server(
    backend: &SqlBackend,
    key: ServerKey,
) -> Result<(String, oneshot::Sender<()>)> {
    let failed =
        |what: &str, e: std::io::Error| outsourced_core::Error::invalid(format!("{what}: {e}"));
    let state = AppState::new(backend.clone(), key, ServerConfig::default(), false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed("cannot listen", e))?;
    let addr = listener.local_addr().map_err(|e| failed("no address", e))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let draining = state.clone();
    let app = crate::serve::app(state, "/outsourced");
    // Waiting long polls answered at once, as `outsourcer serve` does at its stop.
    let shutdown = async move {
        let _ = stopped.await;
        draining.drain();
    };
    tokio::spawn(
        async move { serve(listener, app, None, &ServerConfig::default(), shutdown).await },
    );
    let url = format!("http://{addr}/outsourced");
    out!("serving the API at {url}; the workers sign every request with OAuth 1.0a");
    Ok((url, stop))
}

async fn enqueue(json: bool, backend: &SqlBackend, jobs: Vec<NewJob>) -> Result<()> {
    let bar = progress(json, jobs.len() as u64, "enqueueing");
    let producer = Actor::Producer("demo".into());
    for chunk in jobs.chunks(500) {
        backend.enqueue_batch(&producer, chunk.to_vec()).await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(())
}

/// Runs `workers` workers over HTTP until every job has finished.
async fn work(
    json: bool,
    backend: &SqlBackend,
    remote: HttpConfig,
    workers: usize,
    total: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let (trigger, shutdown) = Shutdown::manual();
    let mut running = Vec::new();
    for _ in 0..workers.max(1) {
        let options = WorkerOptions {
            queues: vec![QUEUE.to_owned()],
            concurrency: 8,
            batch: 50,
            ..WorkerOptions::default()
        };
        let client = HttpBackend::new(remote.clone())?;
        let worker = Worker::new(std::sync::Arc::new(client), WORKER)
            .registry(registry())
            .options(options);
        let shutdown = shutdown.clone();
        running.push(tokio::spawn(async move { worker.run(shutdown).await }));
    }
    let bar = progress(json, total as u64, "working");
    let admin = actor();
    loop {
        let info = backend.queue(&admin, QUEUE).await?;
        let finished = info.counts.total() - info.counts.live();
        bar.set_position(finished);
        if info.counts.live() == 0 {
            break;
        }
        // The bar's refresh rate; the workers do not wait on it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish();
    trigger.advance(Stage::Draining);
    for run in running {
        let _ = run.await;
    }
    Ok(started.elapsed())
}

async fn report(
    backend: &SqlBackend,
    admin: &Actor,
    total: usize,
    enqueued_in: Duration,
    worked_in: Duration,
) -> Result<()> {
    let queue = backend.queue(admin, QUEUE).await?;
    out!("\n{}", queues_table(std::slice::from_ref(&queue), &[]));
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    out!(
        "enqueued {total} jobs in {:.2} s ({:.0} jobs/s); worked them off in {:.2} s ({:.0} jobs/s)",
        enqueued_in.as_secs_f64(),
        rate(total, enqueued_in),
        worked_in.as_secs_f64(),
        rate(total, worked_in),
    );
    let owner = Owner::new("User", "3");
    let owned = backend.owner_counts(admin, &owner).await?;
    let mut t = table(&["owner", "succeeded", "total"]);
    t.add_row(vec![
        owner.to_string(),
        owned.get(JobState::Succeeded).to_string(),
        owned.total().to_string(),
    ]);
    out!("\njobs of one owner:\n{t}");
    let failed = JobFilter {
        state: Some(JobState::Failed),
        limit: 1,
        ..JobFilter::default()
    };
    if let Some(job) = backend.jobs(admin, failed).await?.first() {
        out!(
            "\nthe job that failed for good: {} (id {}), its history:",
            job.class,
            job.id
        );
        out!("{}", history_text(&backend.history(admin, job.id).await?));
    }
    Ok(())
}
