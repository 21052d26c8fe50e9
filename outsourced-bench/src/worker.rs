//! `outsourced-bench worker`: a worker process of the bench's HTTP rig. It runs the bench's
//! no-op job over `HttpBackend`, as the generic worker would, until its queue is empty (with
//! `--exit-when-done`) or until SIGTERM, then prints one JSON line: the enqueue-to-start waits
//! its jobs noted, in microseconds.

use std::sync::Arc;

use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_core::{Backend, Error, Result};
use outsourced_worker::{Shutdown, Worker, WorkerOptions};

use crate::args::BenchWorkerArgs;
use crate::scenarios::{registry, take_waits};

pub(crate) async fn run(args: BenchWorkerArgs) -> Result<()> {
    let options = WorkerOptions {
        queues: vec![args.queue.clone()],
        concurrency: args.concurrency,
        batch: args.batch,
        exit_on_complete: args.exit_when_done,
        ..WorkerOptions::default()
    };
    // Each instance is a client of its own (its own connections), as separate workers are.
    let shutdown = Shutdown::on_signals();
    let mut running = Vec::new();
    for _ in 0..args.instances {
        let config = HttpConfig::new(&args.url, &args.key, &args.secret);
        let backend: Arc<dyn Backend> = Arc::new(HttpBackend::new(config)?);
        let worker = Worker::new(backend, args.worker.as_str())
            .registry(registry())
            .options(options.clone());
        let shutdown = shutdown.clone();
        running.push(tokio::spawn(async move { worker.run(shutdown).await }));
    }
    for run in running {
        run.await
            .map_err(|e| Error::invalid(format!("a worker panicked: {e}")))??;
    }
    let line = serde_json::json!({ "waits_us": take_waits() });
    out!("{line}");
    Ok(())
}
