//! The memory scenario, on the HTTP rig: the server process idle and with 200 workers
//! long-polling it, a worker process idle; and each process's peak after the other scenarios.

use std::time::Duration;

use outsourced_core::Result;

use super::procs;
use super::report::{Figure, line};
use super::rig::{Rig, Running};
use super::scenarios::Crew;

/// Long-polling workers the server holds in the scenario (the benchmarks issue's figure).
const LONG_POLLERS: usize = 200;

/// How long the idle processes are left to settle before their memory is read: a benchmark's
/// pause, so that every long poll has reached the server.
const SETTLE: Duration = Duration::from_secs(3);

/// Prints the server's resident memory now (`when`).
pub(crate) fn server_now(rig: &Rig, when: &str) {
    let Some(pid) = rig.server().and_then(|s| s.process.id()) else {
        return;
    };
    if let Some((rss, peak)) = procs::memory(pid) {
        let figure = Figure::Memory {
            kib: rss,
            peak_kib: Some(peak),
        };
        line(rig.via, "server resident memory", when, figure, None);
    }
}

/// A worker process idle, then one process of 200 workers long-polling: their memory and the
/// server's.
pub(crate) async fn idle(rig: &Rig) -> Result<()> {
    let Some(server) = rig.server() else {
        return Ok(());
    };
    let queue = rig.queue("idle").await?;
    let crew = Crew {
        concurrency: 10,
        batch: 10,
    };
    let one = rig.start_n(&queue, crew, 1, false)?;
    tokio::time::sleep(SETTLE).await;
    report_workers(rig, &one, "1 worker process, idle (long-polling)");
    one.stop().await?;
    let signer = server.signer();
    let crew = Crew {
        concurrency: 1,
        batch: 1,
    };
    let pollers = procs::worker(&signer, &queue, crew, LONG_POLLERS, false)?;
    let pollers = Running::Processes(vec![pollers]);
    tokio::time::sleep(SETTLE).await;
    server_now(rig, &format!("{LONG_POLLERS} workers long-polling"));
    let each = format!("{LONG_POLLERS} workers in one process, long-polling");
    report_workers(rig, &pollers, &each);
    pollers.stop().await?;
    Ok(())
}

fn report_workers(rig: &Rig, running: &Running, what: &str) {
    for pid in running.pids() {
        if let Some((rss, _)) = procs::memory(pid) {
            let figure = Figure::Memory {
                kib: rss,
                peak_kib: None,
            };
            line(rig.via, "worker resident memory", what, figure, None);
        }
    }
}
