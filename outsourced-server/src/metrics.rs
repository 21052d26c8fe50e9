//! Prometheus metrics at `<mount>/metrics`. Two kinds, said in each series' help and in
//! docs/http-api.md: this process's (what its backend told it as it committed, HTTP requests,
//! authentication; sum them over server processes), and the database's, the same from every
//! server (queue depths by state, limits, live workers, and every process's job tallies:
//! `queue_enqueued`, `queue_started`, `queue_ended`), read at each scrape.

use std::fmt;

use outsourced_backend_sql::tally::Tally;
use outsourced_backend_sql::{Directory, InstanceInfo, SqlBackend};
use outsourced_core::{Actor, Backend, JobEvent, JobState, Observer, QueueInfo};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label value as the exposition format needs it: backslash, double quote and newline
/// escaped, whatever the database holds (prometheus-client writes values as given, so a
/// class name with a quote and a newline would forge a series line).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Label(String);

impl From<&str> for Label {
    fn from(value: &str) -> Self {
        Label(value.to_owned())
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: Label,
    class: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    queue: Label,
    class: Label,
    outcome: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    queue: Label,
    outcome: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepthLabels {
    queue: Label,
    state: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    queue: Label,
    limit: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Label,
    method: Label,
    status: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: Label,
}

/// Seconds, from 5 ms to about 46 hours in powers of two.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 25))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    enqueued: Family<JobLabels, Counter>,
    started: Family<JobLabels, Counter>,
    ended: Family<EndLabels, Counter>,
    retried: Family<JobLabels, Counter>,
    duplicates: Family<JobLabels, Counter>,
    waited: Histograms<QueueLabels>,
    ran: Histograms<JobLabels>,
    depth: Family<DepthLabels, Gauge>,
    held_back: Family<QueueLabels, Counter>,
    run_limits: Family<LimitLabels, Gauge>,
    global: Global,
    requests: Family<RequestLabels, Counter>,
    auth_failures: Family<ReasonLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, all empty.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("outsourced");
        let (enqueued, started, ended, retried, duplicates) = Default::default();
        let waited = Family::new_with_constructor(seconds as fn() -> Histogram);
        let ran = Family::new_with_constructor(seconds as fn() -> Histogram);
        let (depth, requests, auth_failures) = Default::default();
        let (held_back, run_limits, global) = Default::default();
        let metrics = Metrics {
            registry: Registry::default(),
            enqueued,
            started,
            ended,
            retried,
            duplicates,
            waited,
            ran,
            depth,
            held_back,
            run_limits,
            global,
            requests,
            auth_failures,
        };
        let r = &mut registry;
        r.register("jobs_enqueued", "Jobs stored", metrics.enqueued.clone());
        let started = "Attempts begun: jobs leased by a worker";
        r.register("jobs_started", started, metrics.started.clone());
        let ended =
            "Attempts ended, by outcome: completed, retry_scheduled, failed, reclaimed, released";
        r.register("jobs_ended", ended, metrics.ended.clone());
        r.register(
            "jobs_retried",
            "Jobs an admin ran again",
            metrics.retried.clone(),
        );
        let duplicates = "Enqueues of a unique key that another job holds: nothing stored (the holder's queue and class)";
        r.register("jobs_duplicates", duplicates, metrics.duplicates.clone());
        let waited = "From a job's run time (its enqueue, unless scheduled later) to its lease";
        r.register("job_wait_seconds", waited, metrics.waited.clone());
        let ran = "From a lease to the attempt's end";
        r.register("job_run_seconds", ran, metrics.ran.clone());
        let depth = "Jobs in each queue by state, at the scrape";
        r.register("queue_jobs", depth, metrics.depth.clone());
        let held = "Reserves that found a queue at a run limit and took nothing from it";
        r.register("reserves_held_back", held, metrics.held_back.clone());
        let limits = "Each queue's run limits, at the scrape: max_running, max_running_per_key, rate_interval_ms (the least time between two starts), key_rate_interval_ms (the least time between two starts of one concurrency key)";
        r.register("queue_run_limit", limits, metrics.run_limits.clone());
        metrics.global.register(r);
        let requests = "HTTP requests by route, method and status";
        r.register("http_requests", requests, metrics.requests.clone());
        let refused = "Requests refused by authentication, by reason";
        r.register("auth_failures", refused, metrics.auth_failures.clone());
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts an HTTP request.
    pub(crate) fn request(&self, route: &str, method: &str, status: u16) {
        let labels = RequestLabels {
            route: route.into(),
            method: method.into(),
            status: status.to_string().as_str().into(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts a request authentication refused.
    pub(crate) fn auth_failure(&self, reason: &str) {
        let labels = ReasonLabels {
            reason: reason.into(),
        };
        self.auth_failures.get_or_create(&labels).inc();
    }

    /// A queue's run limits as gauges, one per limit it has.
    fn set_run_limits(&self, queue: &outsourced_core::QueueInfo) {
        let limits = queue.limits;
        let interval = |rate: Option<outsourced_core::Rate>| {
            rate.map(|rate| rate.interval().as_millis() as u64)
        };
        let values = [
            ("max_running", limits.max_running.map(u64::from)),
            (
                "max_running_per_key",
                limits.max_running_per_key.map(u64::from),
            ),
            ("rate_interval_ms", interval(limits.rate)),
            ("key_rate_interval_ms", interval(limits.rate_per_key)),
        ];
        for (limit, value) in values {
            if let Some(value) = value {
                let labels = LimitLabels {
                    queue: queue.name.as_str().into(),
                    limit: limit.into(),
                };
                let value = i64::try_from(value).unwrap_or(i64::MAX);
                self.run_limits.get_or_create(&labels).set(value);
            }
        }
    }

    /// The metrics in Prometheus's text format, with what the database says now: queue
    /// depths from `backend`, every process's tallies and live workers from `store`.
    pub async fn render(
        &self,
        backend: &SqlBackend,
        store: &Directory,
    ) -> outsourced_core::Result<String> {
        let queues = backend.queues(&Actor::Admin("metrics".into())).await?;
        // Limits lifted are gone; states without jobs read 0.
        self.depth.clear();
        self.run_limits.clear();
        for queue in &queues {
            for state in JobState::ALL {
                let labels = DepthLabels {
                    queue: queue.name.as_str().into(),
                    state: state.as_str().into(),
                };
                let count = queue.counts.get(state);
                self.depth
                    .get_or_create(&labels)
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            self.set_run_limits(queue);
        }
        let live = backend.live_instances().await?;
        self.global.read(&queues, &store.totals().await?, &live);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| outsourced_core::Error::invalid(format!("encoding metrics: {e}")))?;
        Ok(text)
    }
}

/// The series read from the database at each scrape, the same from every server process:
/// what every process did to each queue's jobs (its tallies, see `outsourced_backend_sql::tally`),
/// each queue's limit on live jobs, and the live worker processes that reserve from it.
#[derive(Default)]
struct Global {
    enqueued: Family<QueueLabels, Counter>,
    started: Family<QueueLabels, Counter>,
    ended: Family<OutcomeLabels, Counter>,
    limit: Family<QueueLabels, Gauge>,
    workers: Family<QueueLabels, Gauge>,
}

impl Global {
    fn register(&self, r: &mut Registry) {
        let every = "by every process, from the database";
        r.register(
            "queue_enqueued",
            format!("Jobs stored, {every}"),
            self.enqueued.clone(),
        );
        r.register(
            "queue_started",
            format!("Attempts begun, {every}"),
            self.started.clone(),
        );
        let ended = format!(
            "Attempts ended by outcome (succeeded, failed, retried, reclaimed, released), {every}"
        );
        r.register("queue_ended", ended, self.ended.clone());
        let limit = "Each queue's limit on live jobs (none when unlimited), at the scrape";
        r.register("queue_limit", limit, self.limit.clone());
        let workers =
            "Worker processes heard of lately that reserve from each queue, at the scrape";
        r.register("queue_workers", workers, self.workers.clone());
    }

    fn read(&self, queues: &[QueueInfo], totals: &[(String, Tally)], live: &[InstanceInfo]) {
        for (queue, tally) in totals {
            let labels = QueueLabels {
                queue: queue.as_str().into(),
            };
            catch_up(&self.enqueued.get_or_create(&labels), tally.enqueued);
            catch_up(&self.started.get_or_create(&labels), tally.started);
            let outcomes = [
                ("succeeded", tally.succeeded),
                ("failed", tally.failed),
                ("retried", tally.retried),
                ("reclaimed", tally.reclaimed),
                ("released", tally.released),
            ];
            for (outcome, count) in outcomes {
                let labels = OutcomeLabels {
                    queue: queue.as_str().into(),
                    outcome: outcome.into(),
                };
                catch_up(&self.ended.get_or_create(&labels), count);
            }
        }
        self.limit.clear();
        self.workers.clear();
        for queue in queues {
            let labels = QueueLabels {
                queue: queue.name.as_str().into(),
            };
            if let Some(max) = queue.limit.max() {
                let max = i64::try_from(max).unwrap_or(i64::MAX);
                self.limit.get_or_create(&labels).set(max);
            }
            let working = live
                .iter()
                .filter(|i| i.queues.is_empty() || i.queues.contains(&queue.name))
                .count();
            self.workers
                .get_or_create(&labels)
                .set(i64::try_from(working).unwrap_or(i64::MAX));
        }
    }
}

/// Brings `counter` up to `total`, a count kept in the database that only grows.
fn catch_up(counter: &Counter, total: u64) {
    let behind = total.saturating_sub(counter.get());
    if behind > 0 {
        counter.inc_by(behind);
    }
}

impl Observer for Metrics {
    fn observe(&self, event: JobEvent<'_>) {
        let labels = |queue: &str, class: &str| JobLabels {
            queue: queue.into(),
            class: class.into(),
        };
        match event {
            JobEvent::Enqueued { queue, class } => {
                self.enqueued.get_or_create(&labels(queue, class)).inc();
            }
            JobEvent::Started {
                queue,
                class,
                waited,
            } => {
                self.started.get_or_create(&labels(queue, class)).inc();
                let queue = QueueLabels {
                    queue: queue.into(),
                };
                self.waited
                    .get_or_create(&queue)
                    .observe(waited.as_secs_f64());
            }
            JobEvent::Ended {
                queue,
                class,
                outcome,
                ran,
            } => {
                let end = EndLabels {
                    queue: queue.into(),
                    class: class.into(),
                    outcome: outcome.as_str().into(),
                };
                self.ended.get_or_create(&end).inc();
                self.ran
                    .get_or_create(&labels(queue, class))
                    .observe(ran.as_secs_f64());
            }
            JobEvent::Retried { queue, class } => {
                self.retried.get_or_create(&labels(queue, class)).inc();
            }
            JobEvent::Duplicate { queue, class } => {
                self.duplicates.get_or_create(&labels(queue, class)).inc();
            }
            JobEvent::HeldBack { queue } => {
                let labels = QueueLabels {
                    queue: queue.into(),
                };
                self.held_back.get_or_create(&labels).inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.auth_failure("evil\"} 1\nforged_series 2\\");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).expect("encode");
        assert!(
            !text.lines().any(|line| line.starts_with("forged_series")),
            "{text}"
        );
        assert!(
            text.contains(r#"reason="evil\"} 1\nforged_series 2\\""#),
            "{text}"
        );
    }
}
