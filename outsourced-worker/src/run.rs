//! One run of a worker's loop: the jobs it started and runs now, how they ended, and how the
//! backend answered its reserves lately (failures in a row, the pause before the next try).

use std::sync::Arc;
use std::time::{Duration, Instant};

use outsourced_core::{Error, Reserved, Result};
use tokio::task::JoinSet;

use crate::execute::{Outcome, execute};
use crate::report::Reporter;
use crate::shutdown::{Shutdown, Stage};
use crate::worker::{Inner, WorkOff};

/// Sleeps for `pause`, or until a shutdown begins.
pub(crate) async fn pause_for(pause: Duration, shutdown: &mut Shutdown) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = shutdown.reached(Stage::Draining) => {}
    }
}

/// One run of the loop: the jobs running, how they ended, and the backend's recent failures.
pub(crate) struct Run {
    pub(crate) inner: Arc<Inner>,
    pub(crate) tasks: JoinSet<Outcome>,
    pub(crate) reporter: Reporter,
    pub(crate) tally: WorkOff,
    pub(crate) started: usize,
    pub(crate) pause: Pause,
    /// Refusals of the worker's credentials in a row.
    pub(crate) refusals: u32,
    /// Whether the backend has answered a reserve in this run: until it has, a refusal is of
    /// what the worker was configured with, and stops it at once.
    pub(crate) answered: bool,
    /// Reserves in a row that could not reach the backend.
    pub(crate) unreachable: u32,
    /// Since when the backend cannot be reached, and when the worker last said so.
    pub(crate) outage: Option<Outage>,
    /// Whether the worker has said that it is assigned no queue.
    pub(crate) said_unassigned: bool,
    /// Whether the last reserve got all it asked for: work is waiting, so a busy worker may
    /// wait for room for a batch worth a call (see `wanted`).
    pub(crate) backlog: bool,
    /// While jobs are due but held back by a run limit (as a reserve that got nothing found),
    /// the long poll a worker that stops once idle waits for them in.
    pub(crate) held: Option<Duration>,
    /// Whether the worker has said that it waits for jobs a run limit holds back.
    pub(crate) said_held: bool,
}

impl Run {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let reporter = Reporter::start(inner.backend.clone(), inner.id.clone());
        Run {
            inner,
            tasks: JoinSet::new(),
            reporter,
            tally: WorkOff::default(),
            started: 0,
            pause: Pause::new(),
            refusals: 0,
            answered: false,
            unreachable: 0,
            outage: None,
            said_unassigned: false,
            backlog: false,
            held: None,
            said_held: false,
        }
    }

    /// Counts the jobs that have ended.
    pub(crate) fn collect(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            self.tally.add(done.unwrap_or(Outcome::Lost));
        }
    }

    /// How many jobs to reserve now: up to the free concurrency and the batch size; none
    /// while jobs run, work waits and less than a useful batch fits (fewer, larger claims).
    pub(crate) fn wanted(&self, limit: Option<usize>) -> usize {
        let options = &self.inner.options;
        let left = limit.map_or(usize::MAX, |n| n - self.started.min(n));
        let room = options.concurrency.saturating_sub(self.tasks.len());
        let wanted = room.min(options.batch as usize).min(left);
        let worth_it = (options.concurrency / 2)
            .clamp(1, options.batch as usize)
            .min(left);
        // Only while work is waiting: jobs that come one at a time (a trickle, or a queue
        // whose rate spaces its starts) would otherwise never fill the last places (a worker
        // of 4 ran 3 at most, of 10 ran 6).
        if !self.tasks.is_empty() && self.backlog && wanted < worth_it {
            return 0;
        }
        wanted
    }

    /// Waits until a running job ends (or a shutdown begins).
    pub(crate) async fn wait_for_a_job(&mut self, shutdown: &mut Shutdown) {
        tokio::select! {
            Some(done) = self.tasks.join_next() => self.tally.add(done.unwrap_or(Outcome::Lost)),
            _ = shutdown.reached(Stage::Draining) => {}
        }
    }

    pub(crate) fn start(&mut self, reserved: Vec<Reserved>) {
        self.started += reserved.len();
        for job in reserved {
            let run = execute(self.inner.clone(), self.reporter.clone(), job);
            self.tasks.spawn(run);
        }
    }

    /// A reserve failed: how long to wait before the next, or the error to stop with once the
    /// backend refused `max_refusals` times in a row (its credentials, or a request no retry
    /// can fix, such as a URL without the server's mount), or at its first refusal when it
    /// has not answered a reserve yet in this run. A backend that cannot be reached
    /// is waited for, however long, except by a worker that stops when idle (`gives_up`): it
    /// stops with the error after [`GIVE_UP_AFTER`] tries in a row (a batch run that waits
    /// forever for a server that is down would never say so).
    pub(crate) fn failed(&mut self, error: Error, gives_up: bool) -> Result<Duration> {
        let wait = self.pause.next();
        if error.is_retryable() {
            self.refusals = 0;
            self.unreachable += 1;
            if gives_up && self.unreachable >= GIVE_UP_AFTER {
                let tries = self.unreachable;
                tracing::error!(%error, tries, "Cannot reach the backend; giving up (a worker that exits on complete does not wait forever)");
                return Err(error);
            }
            let outage = self.outage.get_or_insert_with(Outage::new);
            // Said at the first failure, then at most every [`Outage::SAY_EVERY`] (the pauses
            // double up to 10 s: a server down for an hour is a few hundred lines, and one
            // down for a minute is not a minute of silence); the rest at debug level.
            if let Some(down_for) = outage.due_to_say(Instant::now()) {
                let tries = self.unreachable;
                let down_for = format!("{}s", down_for.as_secs());
                match gives_up {
                    true => {
                        tracing::warn!(%error, tries, %down_for, retry_in = ?wait, "Cannot reach the backend; trying again (this worker stops after {GIVE_UP_AFTER} tries in a row, about 50 s)")
                    }
                    false => {
                        tracing::warn!(%error, tries, %down_for, retry_in = ?wait, "Cannot reach the backend; waiting for it (jobs start once it answers)")
                    }
                }
            } else {
                tracing::debug!(%error, retry_in = ?wait, "Still cannot reach the backend");
            }
            return Ok(wait);
        }
        self.refusals += 1;
        let max = self.inner.options.max_refusals.max(1);
        // Refused before it ever got an answer (a server that was down when it started, say):
        // waiting does not mend a config, as the check before the start would have said.
        if !self.answered || self.refusals >= max {
            return Err(error);
        }
        tracing::error!(%error, refusals = self.refusals, max, retry_in = ?wait, "The backend refused this worker's request");
        Ok(wait)
    }

    /// A reserve reached the backend: failures in a row end here, and an outage is said over.
    pub(crate) fn reached(&mut self) {
        if self.unreachable > 0 {
            let tries = self.unreachable;
            let down_for = self.outage.take().map(|o| o.since.elapsed());
            let down_for = format!("{}s", down_for.unwrap_or_default().as_secs());
            match self.answered {
                true => tracing::info!(tries, %down_for, "Reached the backend again; working"),
                false => tracing::info!(tries, %down_for, "Reached the backend; working"),
            }
            self.unreachable = 0;
        }
        self.answered = true;
        self.refusals = 0;
        self.pause.reset();
    }

    /// The worker is assigned no queue: say so once, then ask again after the idle wait.
    pub(crate) async fn unassigned(&mut self, shutdown: &mut Shutdown) {
        let worker = &self.inner.id.worker;
        if !self.said_unassigned {
            tracing::warn!(
                %worker,
                "hired for no queue: waiting until it is (`outsourcer queue hire QUEUE {worker}`)"
            );
            self.said_unassigned = true;
        }
        pause_for(self.inner.options.idle_wait, shutdown).await;
    }
}

/// Failed reserves in a row after which a worker that stops when idle stops too: twelve tries
/// over about 50 s of [`Pause`], long enough for a server's restart.
pub(crate) const GIVE_UP_AFTER: u32 = 12;

/// A time the backend could not be reached: since when, and when the worker last said so.
pub(crate) struct Outage {
    since: Instant,
    said: Option<Instant>,
}

impl Outage {
    /// The least time between two lines that say the backend is still out of reach.
    const SAY_EVERY: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Outage {
            since: Instant::now(),
            said: None,
        }
    }

    /// How long the outage has lasted at `now`, when it is time to say so again.
    fn due_to_say(&mut self, now: Instant) -> Option<Duration> {
        if self.said.is_some_and(|said| now - said < Self::SAY_EVERY) {
            return None;
        }
        self.said = Some(now);
        Some(now - self.since)
    }
}

/// Capped exponential back-off after backend errors: 100 ms, doubling, at most 10 s, so that
/// a server back from a restart is found within 10 s.
pub(crate) struct Pause(Duration);

impl Pause {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Pause(Self::FIRST)
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_error_pause_doubles_up_to_a_cap() {
        let mut pause = Pause::new();
        let waits: Vec<u128> = (0..12).map(|_| pause.next().as_millis()).collect();
        assert_eq!(waits[..4], [100, 200, 400, 800]);
        assert_eq!(waits[7..], [10_000; 5]);
        pause.reset();
        assert_eq!(pause.next(), Duration::from_millis(100));
    }

    #[test]
    fn an_outage_is_said_at_first_then_at_most_every_ten_seconds() {
        let mut outage = Outage::new();
        let since = outage.since;
        let said: Vec<Option<u64>> = [0, 1, 9, 10, 15, 19, 21, 60]
            .into_iter()
            .map(|s| outage.due_to_say(since + Duration::from_secs(s)))
            .map(|said| said.map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            said,
            [
                Some(0),
                None,
                None,
                Some(10),
                None,
                None,
                Some(21),
                Some(60)
            ]
        );
    }
}
