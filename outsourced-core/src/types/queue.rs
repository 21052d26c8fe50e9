//! Queues: their limit on live jobs, their settings, and counts of jobs by state.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::state::JobState;
use crate::types::{JobRecord, Rate, RunLimits};

/// The limit on live jobs a new queue gets unless the admin says otherwise.
pub const DEFAULT_QUEUE_LIMIT: u64 = 10_000;

/// How many live jobs (scheduled, available, retrying or running) a queue may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueLimit {
    /// At most this many; enqueue past it fails with `QueueFull`.
    Max(u64),
    /// No limit (only when the admin asks for it).
    Unlimited,
}

impl Default for QueueLimit {
    fn default() -> Self {
        QueueLimit::Max(DEFAULT_QUEUE_LIMIT)
    }
}

impl QueueLimit {
    /// The limit as a number, `None` when unlimited.
    pub fn max(self) -> Option<u64> {
        match self {
            QueueLimit::Max(n) => Some(n),
            QueueLimit::Unlimited => None,
        }
    }

    /// The limit from a number, `None` meaning unlimited.
    pub fn from_max(max: Option<u64>) -> Self {
        max.map_or(QueueLimit::Unlimited, QueueLimit::Max)
    }
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueLimit::Max(n) => n.fmt(f),
            QueueLimit::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// How long a queue keeps its finished jobs (succeeded, failed, cancelled) with their history
/// and attachments before [`Backend::prune`](crate::Backend::prune) removes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retention {
    /// Keep them until deleted by hand (a new queue's default: history is the point).
    #[default]
    Forever,
    /// Remove them once they have been finished this long.
    For(Duration),
}

impl Retention {
    /// The age as milliseconds, `None` for forever.
    pub fn as_millis(self) -> Option<u64> {
        match self {
            Retention::Forever => None,
            Retention::For(age) => Some(age.as_millis().min(u128::from(u64::MAX)) as u64),
        }
    }

    /// The retention from milliseconds, `None` meaning forever.
    pub fn from_millis(ms: Option<u64>) -> Self {
        ms.map_or(Retention::Forever, |ms| {
            Retention::For(Duration::from_millis(ms))
        })
    }
}

/// A change to a queue's settings; `None` fields stay as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueUpdate {
    /// A new limit. Lowering it below the live count refuses new jobs until enough finish.
    pub limit: Option<QueueLimit>,
    /// Pause (workers get nothing from it; enqueue still works) or resume.
    pub paused: Option<bool>,
    /// A new retention of finished jobs.
    pub retention: Option<Retention>,
    /// A new limit on running jobs (`Some(None)` removes it).
    pub max_running: Option<Option<u32>>,
    /// A new rate of starts (`Some(None)` removes it).
    pub rate: Option<Option<Rate>>,
    /// A new limit on running jobs per concurrency key (`Some(None)` removes it).
    pub max_running_per_key: Option<Option<u32>>,
    /// A new rate of starts per concurrency key (`Some(None)` removes it).
    pub rate_per_key: Option<Option<Rate>>,
}

impl QueueUpdate {
    /// An update that sets every run limit to `limits`'s (removing those it does not have).
    pub fn setting(limits: RunLimits) -> Self {
        QueueUpdate {
            max_running: Some(limits.max_running),
            rate: Some(limits.rate),
            max_running_per_key: Some(limits.max_running_per_key),
            rate_per_key: Some(limits.rate_per_key),
            ..QueueUpdate::default()
        }
    }

    /// Whether it sets or removes any run limit.
    pub fn changes_limits(&self) -> bool {
        self.max_running.is_some()
            || self.rate.is_some()
            || self.max_running_per_key.is_some()
            || self.rate_per_key.is_some()
    }

    /// The limits after this update, from `limits` before it.
    pub fn limits(&self, limits: RunLimits) -> RunLimits {
        RunLimits {
            max_running: self.max_running.unwrap_or(limits.max_running),
            rate: self.rate.unwrap_or(limits.rate),
            max_running_per_key: self
                .max_running_per_key
                .unwrap_or(limits.max_running_per_key),
            rate_per_key: self.rate_per_key.unwrap_or(limits.rate_per_key),
        }
    }
}

/// A queue with its settings and how many jobs it holds in each state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// Its limit on live jobs.
    pub limit: QueueLimit,
    /// Whether workers are kept from it.
    pub paused: bool,
    /// How long it keeps finished jobs.
    pub retention: Retention,
    /// Its limits on running jobs.
    pub limits: RunLimits,
    /// When its rate lets the next job start (a time past: now); `None` without a rate.
    pub next_start: Option<DateTime<Utc>>,
    /// Its jobs by state.
    pub counts: StateCounts,
}

impl QueueInfo {
    /// Its run limits in a few words, with how many of its jobs run against the limit on
    /// running jobs (`3 of 5 running, 100/1m starts, 1 per key`); `None` when it has none.
    pub fn run_limits_text(&self) -> Option<String> {
        let limits = self.limits;
        let mut parts = Vec::new();
        if let Some(max) = limits.max_running {
            let running = self.counts.get(JobState::Running);
            parts.push(format!("{running} of {max} running"));
        }
        if let Some(rate) = limits.rate {
            parts.push(format!("{rate} starts"));
        }
        if let Some(per_key) = limits.max_running_per_key {
            parts.push(format!("{per_key} per key"));
        }
        if let Some(rate) = limits.rate_per_key {
            parts.push(format!("{rate} starts per key"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Why `job`, of this queue, may not start although it is due, as the queue's pause, run
    /// limits, counts and rate's next start stand (as read); `None` when nothing holds it, or
    /// when it is not due (not waiting, or its time has not come). Its key's limit on running
    /// jobs is named as one that may hold it: [`QueueInfo::held_back_counting`] says whether it
    /// does.
    pub fn held_back(&self, job: &JobRecord, now: DateTime<Utc>) -> Option<String> {
        self.held_back_counting(job, now, None)
    }

    /// [`QueueInfo::held_back`], knowing how many jobs of `job`'s concurrency key run now
    /// (`key_running`), so that its key's limit on running jobs is said to hold it, or left
    /// out ([`BackendExt::why_held_back`](crate::BackendExt::why_held_back) counts them).
    pub fn held_back_counting(
        &self,
        job: &JobRecord,
        now: DateTime<Utc>,
        key_running: Option<u64>,
    ) -> Option<String> {
        if !job.state.is_waiting() || job.run_at > now {
            return None;
        }
        if self.paused {
            return Some(format!(
                "held back: queue {} is paused; its jobs wait until it is resumed",
                job.queue
            ));
        }
        let limits = self.limits;
        // The limits known to hold it now: the running jobs' counts, the rate's next start.
        let mut holding = Vec::new();
        let running = self.counts.get(JobState::Running);
        if let Some(max) = limits.max_running
            && running >= u64::from(max)
        {
            holding.push(format!(
                "queue {} runs as many jobs as its limit allows ({max} at once)",
                job.queue
            ));
        }
        let key_full = match (
            &job.concurrency_key,
            limits.max_running_per_key,
            key_running,
        ) {
            (Some(key), Some(max), Some(n)) if n >= u64::from(max) => Some(format!(
                "concurrency key {key} runs as many of its jobs as the queue allows ({n} of {max})"
            )),
            _ => None,
        };
        holding.extend(key_full);
        let ends_free = !holding.is_empty();
        if let Some(rate) = limits.rate
            && let Some(next) = self.next_start.filter(|next| *next > now)
        {
            let words = rate.in_words();
            let wait = (next - now).num_milliseconds() as f64 / 1000.0;
            holding.push(format!(
                "queue {}'s rate ({words}, evenly spaced) starts its next job at {} (in {wait:.1} s)",
                job.queue,
                next.format("%H:%M:%S%.3f UTC")
            ));
        }
        let mut held = holding.join("; and ");
        // Only a limit on running jobs alone frees it when a job ends; a rate holds on.
        if ends_free && holding.len() == 1 {
            held.push_str("; this one starts when one of them ends");
        }
        match (
            held.is_empty(),
            self.per_key_text(job, key_running.is_some()),
        ) {
            (false, None) => Some(format!("held back: {held}")),
            (false, Some(may)) => Some(format!(
                "held back: {held}; it may also be held back by {may}"
            )),
            (true, may) => may.map(|may| format!("it may be held back by: {may}")),
        }
    }

    /// The limits of `job`'s concurrency key that may hold it, which of them does not being
    /// known from the queue's counts: its rate per key, and its limit on running jobs unless
    /// `counted` (then said above, or not holding).
    fn per_key_text(&self, job: &JobRecord, counted: bool) -> Option<String> {
        let key = job.concurrency_key.as_ref()?;
        let limits = self.limits;
        let mut per_key = Vec::new();
        if let Some(max) = limits.max_running_per_key
            && !counted
        {
            per_key.push(format!("at most {max} of its jobs at once"));
        }
        if let Some(rate) = limits.rate_per_key {
            per_key.push(format!("{}, evenly spaced", rate.in_words()));
        }
        let what = match per_key.len() {
            0 => return None,
            1 if limits.rate_per_key.is_some() => "rate",
            _ => "limits",
        };
        Some(format!(
            "concurrency key {key}'s {what} ({})",
            per_key.join(", and ")
        ))
    }
}

/// Job counts by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts(BTreeMap<JobState, u64>);

impl StateCounts {
    /// The count of one state (0 when none).
    pub fn get(&self, state: JobState) -> u64 {
        self.0.get(&state).copied().unwrap_or(0)
    }

    /// Adds `count` jobs in `state`.
    pub fn add(&mut self, state: JobState, count: u64) {
        *self.0.entry(state).or_insert(0) += count;
    }

    /// Jobs holding a queue slot: waiting or running.
    pub fn live(&self) -> u64 {
        self.iter()
            .filter(|(s, _)| s.is_live())
            .map(|(_, n)| n)
            .sum()
    }

    /// All jobs counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The non-zero counts, in lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (JobState, u64)> + '_ {
        self.0.iter().map(|(s, n)| (*s, *n)).filter(|(_, n)| *n > 0)
    }
}

impl FromIterator<(JobState, u64)> for StateCounts {
    fn from_iter<I: IntoIterator<Item = (JobState, u64)>>(iter: I) -> Self {
        let mut counts = StateCounts::default();
        for (state, n) in iter {
            counts.add(state, n);
        }
        counts
    }
}

/// One group of a count: how many jobs of a queue are in a state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many.
    pub count: u64,
}

/// Sums count groups by state, over all queues.
pub fn by_state<'a>(groups: impl IntoIterator<Item = &'a StateCount>) -> StateCounts {
    groups.into_iter().map(|g| (g.state, g.count)).collect()
}

/// The queues a worker works now: those it asks for that it is hired for, or every queue it
/// is hired for when it asks for none. The server's reserve and a worker next to the database
/// both decide by this; an empty answer means nothing to work.
pub fn workable_queues(hired: &[String], asked: &[String]) -> Vec<String> {
    if asked.is_empty() {
        return hired.to_vec();
    }
    asked
        .iter()
        .filter(|queue| hired.contains(queue))
        .cloned()
        .collect()
}

/// The name among `names` that `given` looks like a typo of (at most two edits, and fewer
/// than the name's length, letters' case aside: names are case-sensitive, and `Mail` is a typo
/// of `mail`), the closest first: what a "did you mean" names.
pub fn closest_name<'a>(given: &str, names: &'a [String]) -> Option<&'a str> {
    let lower = given.to_lowercase();
    names
        .iter()
        .filter(|name| name.as_str() != given)
        .map(|name| {
            (
                strsim::damerau_levenshtein(&lower, &name.to_lowercase()),
                name,
            )
        })
        .filter(|(distance, name)| *distance <= 2 && *distance < name.chars().count())
        .min()
        .map(|(_, name)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_matched_to_the_closest_name_only() {
        let names = ["mail".to_owned(), "stuff_to_do".to_owned(), "a".to_owned()];
        assert_eq!(closest_name("mial", &names), Some("mail"));
        assert_eq!(closest_name("stuf_to_do", &names), Some("stuff_to_do"));
        assert_eq!(closest_name("reports", &names), None);
        assert_eq!(closest_name("Stuff_To_Do", &names), Some("stuff_to_do"));
        assert_eq!(closest_name("MIAL", &names), Some("mail"));
        assert_eq!(
            closest_name("b", &names),
            None,
            "one letter is no typo of another"
        );
        assert_eq!(
            closest_name("mail", &names),
            None,
            "a name is no typo of itself"
        );
    }

    #[test]
    fn a_worker_works_the_queues_it_asks_for_that_it_is_hired_for() {
        let hired = vec!["a".to_owned(), "b".to_owned()];
        let asked = |list: &[&str]| list.iter().map(|q| (*q).to_owned()).collect::<Vec<_>>();
        assert_eq!(workable_queues(&hired, &[]), hired);
        assert_eq!(workable_queues(&hired, &asked(&["b", "c"])), asked(&["b"]));
        assert!(workable_queues(&[], &asked(&["a"])).is_empty());
    }

    #[test]
    fn counts_sum_live_and_total() {
        let counts: StateCounts = [
            (JobState::Available, 2),
            (JobState::Running, 1),
            (JobState::Succeeded, 4),
            (JobState::Available, 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts.get(JobState::Available), 3);
        assert_eq!(counts.get(JobState::Failed), 0);
        assert_eq!(counts.live(), 4);
        assert_eq!(counts.total(), 8);
    }

    fn waiting_job(key: Option<&str>) -> JobRecord {
        let mut job = JobRecord::example("partner", "Call");
        job.concurrency_key = key.map(str::to_owned);
        job
    }

    #[test]
    fn a_due_job_held_by_two_limits_is_told_both() {
        let now = DateTime::UNIX_EPOCH + chrono::Duration::seconds(60);
        let info = QueueInfo {
            name: "partner".into(),
            limit: QueueLimit::Unlimited,
            paused: false,
            retention: Retention::default(),
            limits: RunLimits {
                max_running: Some(2),
                rate: Some(Rate {
                    starts: 6,
                    per: std::time::Duration::from_secs(60),
                }),
                max_running_per_key: Some(1),
                rate_per_key: None,
            },
            next_start: Some(now + chrono::Duration::seconds(4)),
            counts: [(JobState::Running, 2)].into_iter().collect(),
        };
        let held = info.held_back(&waiting_job(Some("acme")), now);
        let held = held.expect("held back");
        assert!(
            held.starts_with("held back: queue partner runs as many"),
            "{held}"
        );
        assert!(
            !held.contains("starts when one of them ends"),
            "a rate holds on: {held}"
        );
        assert!(held.contains("; and queue partner's rate"), "{held}");
        assert!(held.contains("(in 4.0 s)"), "{held}");
        assert!(
            held.contains("it may also be held back by concurrency key acme's"),
            "{held}"
        );
        let free = QueueInfo {
            counts: StateCounts::default(),
            next_start: Some(now),
            ..info
        };
        let may = free.held_back(&waiting_job(Some("acme")), now);
        assert_eq!(
            may.as_deref(),
            Some(
                "it may be held back by: concurrency key acme's limits (at most 1 of its jobs at once)"
            )
        );
        assert_eq!(free.held_back(&waiting_job(None), now), None);
        // Its key's running jobs counted: said to hold it, or left out.
        let acme = waiting_job(Some("acme"));
        let full = free.held_back_counting(&acme, now, Some(1));
        assert_eq!(
            full.as_deref(),
            Some(
                "held back: concurrency key acme runs as many of its jobs as the queue allows (1 of 1); this one starts when one of them ends"
            )
        );
        assert_eq!(free.held_back_counting(&acme, now, Some(0)), None);
    }

    #[test]
    fn default_limit_is_finite() {
        assert_eq!(QueueLimit::default().max(), Some(DEFAULT_QUEUE_LIMIT));
        assert_eq!(QueueLimit::from_max(None), QueueLimit::Unlimited);
    }
}
