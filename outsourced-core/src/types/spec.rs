//! What a producer asks for: a new job, its retry back-off and its repeat schedule.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::Timelike;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::Error;
use crate::types::{BatchId, JobId, Owner, Unique};

/// The queue a job goes to when it names none.
pub const DEFAULT_QUEUE: &str = "default";
/// How many times a job runs at most unless it says otherwise (delayed_job's default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;

/// How long a job waits before its next attempt after a failure. Stored with the job, so the
/// reclaimer applies the same policy to an expired lease as the worker would to an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backoff {
    /// delayed_job's `attempts⁴ + 5` seconds: 6 s, 21 s, 86 s ... about 20 days over 25 attempts.
    #[default]
    Polynomial,
    /// The same wait after every failure.
    Constant(Duration),
    /// `base × 2^(attempts − 1)`, never more than `max`.
    Exponential {
        /// The wait after the first failure.
        base: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl Backoff {
    /// The wait after the failure of attempt number `attempts` (1 for the first attempt).
    pub fn delay(&self, attempts: u32) -> Duration {
        match *self {
            Backoff::Polynomial => Duration::from_secs(u64::from(attempts).saturating_pow(4) + 5),
            Backoff::Constant(wait) => wait,
            Backoff::Exponential { base, max } => {
                let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
                base.saturating_mul(factor).min(max)
            }
        }
    }
}

impl fmt::Display for Backoff {
    /// The stored form: `polynomial`, `constant:MS` or `exponential:BASE_MS:MAX_MS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backoff::Polynomial => f.write_str("polynomial"),
            Backoff::Constant(wait) => write!(f, "constant:{}", wait.as_millis()),
            Backoff::Exponential { base, max } => {
                write!(f, "exponential:{}:{}", base.as_millis(), max.as_millis())
            }
        }
    }
}

impl FromStr for Backoff {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            Error::invalid(format!(
                "{s:?} is not a back-off: expected polynomial, constant:MS or exponential:BASE_MS:MAX_MS"
            ))
        };
        let mut parts = s.split(':');
        let backoff = match parts.next() {
            Some("polynomial") => Backoff::Polynomial,
            Some("constant") => Backoff::Constant(parse_ms(parts.next()).ok_or_else(bad)?),
            Some("exponential") => Backoff::Exponential {
                base: parse_ms(parts.next()).ok_or_else(bad)?,
                max: parse_ms(parts.next()).ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        };
        match parts.next() {
            None => Ok(backoff),
            Some(_) => Err(bad()),
        }
    }
}

/// When a job runs again after it succeeded. Each run shows in the job's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Every fixed interval, counted from the previous run time (runs missed while the job
    /// was waiting are skipped, not run in a burst).
    Every(Duration),
    /// At the times of a cron schedule, in UTC.
    Cron(CronSchedule),
}

impl Repeat {
    /// The next run time after a run that was due at `run_at` and finished at `now`: the first
    /// point on the schedule that is later than `now` (missed points are skipped). `None` when
    /// the schedule has no later point (a cron pattern that names a past year).
    pub fn next_after(&self, run_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Repeat::Every(interval) => {
                let step = interval.as_millis().max(1) as i64;
                let behind = (now - run_at).num_milliseconds().max(0);
                let steps = behind / step + 1;
                Some(run_at + chrono::Duration::milliseconds(steps * step))
            }
            Repeat::Cron(schedule) => schedule.next_after(now),
        }
    }
}

impl fmt::Display for Repeat {
    /// The stored form: `every:MS` or `cron:PATTERN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repeat::Every(interval) => write!(f, "every:{}", interval.as_millis()),
            Repeat::Cron(schedule) => write!(f, "cron:{}", schedule.as_str()),
        }
    }
}

impl FromStr for Repeat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("every", ms)) => match parse_ms(Some(ms)) {
                Some(interval) if !interval.is_zero() => Ok(Repeat::Every(interval)),
                _ => Err(Error::invalid(format!(
                    "{s:?}: a repeat interval must be positive"
                ))),
            },
            Some(("cron", pattern)) => CronSchedule::new(pattern).map(Repeat::Cron),
            _ => Err(Error::invalid(format!(
                "{s:?} is not a repeat: expected every:MS or cron:PATTERN"
            ))),
        }
    }
}

/// A cron schedule (croner's syntax: five fields, six with seconds first, seven with a year
/// last; `L`, `#`, `W` and names allowed), evaluated in UTC.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    pattern: String,
    /// Boxed: a parsed pattern is a few hundred bytes, and every `Repeat` would carry them.
    cron: Box<croner::Cron>,
}

/// What a cron schedule looks like, for a refusal of one that is not.
const CRON_SHAPE: &str = "give five fields, minute hour day-of-month month day-of-week, in UTC, such as \"0 3 * * *\" for 03:00 every day or \"*/15 * * * *\" for every 15 minutes";

impl CronSchedule {
    /// Parses `pattern`; `InvalidInput` saying why when it is not one.
    pub fn new(pattern: &str) -> Result<Self, Error> {
        let pattern = pattern.trim();
        let cron = pattern.parse::<croner::Cron>().map_err(|e| {
            Error::invalid(format!(
                "{pattern:?} is not a cron schedule ({e}): {CRON_SHAPE}"
            ))
        })?;
        Ok(CronSchedule {
            pattern: pattern.to_owned(),
            cron: Box::new(cron),
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The first time on the schedule strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Points fall on whole seconds: the schedule's, not `after`'s milliseconds.
        let whole = after.with_nanosecond(0).unwrap_or(after);
        self.cron.find_next_occurrence(&whole, false).ok()
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for CronSchedule {}

fn parse_ms(part: Option<&str>) -> Option<Duration> {
    part?.parse().ok().map(Duration::from_millis)
}

/// A job to enqueue: a class name and JSON arguments (resque style), plus options.
///
/// Build it with [`NewJob::new`] and the setters, or from a typed job with
/// [`JobExt::to_new_job`](crate::JobExt::to_new_job). Unset options take the backend's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The job class, which the worker's registry maps to code.
    pub class: String,
    /// The arguments: any JSON value; an array is the usual case.
    pub args: Value,
    /// The queue; [`DEFAULT_QUEUE`] unless set.
    pub queue: String,
    /// Lower runs first; 0 unless set.
    pub priority: i32,
    /// Not before this time; unless set, now (or, for a cron job, its schedule's first
    /// point after now).
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts at most; [`DEFAULT_MAX_ATTEMPTS`] unless set.
    pub max_attempts: Option<u32>,
    /// The job's own time limit per attempt; the worker's limit unless set (and never more).
    pub max_run_time: Option<Duration>,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// Run again after each success.
    pub repeat: Option<Repeat>,
    /// The thing this job belongs to.
    pub owner: Option<Owner>,
    /// A key that makes it unique (see [`Unique`]).
    pub unique: Option<Unique>,
    /// The key its queue's per-key limit counts it under (a customer, a tenant); none is
    /// limited by the queue's other limits only. See [`RunLimits`](crate::RunLimits).
    pub concurrency_key: Option<String>,
    /// Jobs that must succeed before this one may run (see [`NewJob::depends_on`]).
    pub depends_on: Vec<JobId>,
    /// The batch it belongs to (see [`NewJob::batch`]).
    pub batch: Option<BatchId>,
}

/// The most jobs one job may depend on.
pub const MAX_DEPENDENCIES: usize = 100;

impl NewJob {
    /// A job of `class` with `args`, in the default queue, with default options.
    pub fn new(class: impl Into<String>, args: Value) -> Self {
        NewJob {
            class: class.into(),
            args,
            queue: DEFAULT_QUEUE.to_owned(),
            priority: 0,
            run_at: None,
            max_attempts: None,
            max_run_time: None,
            backoff: Backoff::default(),
            repeat: None,
            owner: None,
            unique: None,
            concurrency_key: None,
            depends_on: Vec::new(),
            batch: None,
        }
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the priority (lower runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the earliest run time.
    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    /// Sets the number of attempts at most.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Sets the job's own time limit per attempt.
    pub fn max_run_time(mut self, max_run_time: Duration) -> Self {
        self.max_run_time = Some(max_run_time);
        self
    }

    /// Sets the back-off between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Makes the job run again after each success.
    pub fn repeat(mut self, repeat: Repeat) -> Self {
        self.repeat = Some(repeat);
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: Owner) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Makes the job unique by a key (see [`Unique`]).
    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Some(unique);
        self
    }

    /// Sets the key its queue's per-key limit counts it under.
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.concurrency_key = Some(key.into());
        self
    }

    /// Makes the job wait for `jobs`: it is stored `pending` and becomes runnable (at its run
    /// time) only when every one of them has succeeded, and is cancelled when one of them fails
    /// or is cancelled. Jobs that succeeded already count as done; a job that failed, was
    /// cancelled, repeats or does not exist is refused. At most [`MAX_DEPENDENCIES`].
    pub fn depends_on(mut self, jobs: impl IntoIterator<Item = JobId>) -> Self {
        self.depends_on.extend(jobs);
        self.depends_on.sort_unstable();
        self.depends_on.dedup();
        self
    }

    /// Adds the job to batch `id` (opened with
    /// [`Backend::open_batch`](crate::Backend::open_batch), and not ended): the batch's
    /// callback runs once every job of it has ended.
    pub fn batch(mut self, id: BatchId) -> Self {
        self.batch = Some(id);
        self
    }

    /// When the job first runs, enqueued at `now`: its run time when set; for a cron job the
    /// schedule's first point after now; otherwise now.
    pub fn first_run(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match (&self.run_at, &self.repeat) {
            (Some(at), _) => *at,
            (None, Some(Repeat::Cron(schedule))) => schedule.next_after(now).unwrap_or(now),
            (None, _) => now,
        }
    }

    /// The payload as stored and sent: `{"class": ..., "args": ...}`.
    pub fn payload(&self) -> Value {
        serde_json::json!({ "class": self.class, "args": self.args })
    }

    /// Refuses a job no backend can store: an empty or overlong class, a bad queue name,
    /// `max_attempts` 0, a repeat interval under a millisecond, an empty owner part, a class or owner with a control character (it
    /// would forge lines wherever it is printed: logs, metrics, a terminal), or arguments over
    /// `max_args_bytes` as JSON.
    pub fn check(&self, max_args_bytes: usize) -> Result<(), Error> {
        let control = |s: &str| s.chars().any(is_unprintable);
        if self.class.trim().is_empty() || self.class.len() > 191 || control(&self.class) {
            return Err(Error::invalid(
                "a job class must be 1 to 191 characters, none of them a control character",
            ));
        }
        check_queue_name(&self.queue)?;
        if self.max_attempts == Some(0) {
            return Err(Error::invalid("max_attempts must be at least 1"));
        }
        // Stored in whole milliseconds: a shorter run time would end every attempt at once.
        if self.max_run_time.is_some_and(|t| t.as_millis() == 0) {
            return Err(Error::invalid("max_run_time must be at least 1 ms"));
        }
        // Stored in whole milliseconds: a shorter interval would be stored as `every:0`,
        // which no reader takes back.
        if let Some(Repeat::Every(interval)) = &self.repeat
            && interval.as_millis() == 0
        {
            return Err(Error::invalid("a repeat interval must be at least 1 ms"));
        }
        if let Some(owner) = &self.owner {
            let part = |s: &str| !s.is_empty() && s.len() <= 191 && !control(s);
            if !part(&owner.kind) || !part(&owner.id) {
                return Err(Error::invalid(
                    "an owner's type and id must be 1 to 191 characters, none of them a control character",
                ));
            }
        }
        if let Some(unique) = &self.unique {
            unique.check()?;
        }
        if let Some(key) = &self.concurrency_key {
            crate::types::check_concurrency_key(key)?;
        }
        self.check_dependencies()?;
        let size = self.args.to_string().len();
        if size > max_args_bytes {
            return Err(Error::invalid(format!(
                "the arguments take {size} bytes as JSON; the limit is {max_args_bytes}"
            )));
        }
        Ok(())
    }
}

/// Whether `c` acts on a screen or a log rather than showing: a control character, a line or
/// paragraph separator, or a bidirectional override or isolate (which reorders what follows).
/// Names and classes refuse them; whatever prints text from a database escapes them.
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

impl NewJob {
    /// `InvalidInput` for more than [`MAX_DEPENDENCIES`] dependencies, or dependencies on a
    /// repeating job (which would run once and never again after its first success).
    fn check_dependencies(&self) -> Result<(), Error> {
        let count = self.depends_on.len();
        if count > MAX_DEPENDENCIES {
            return Err(Error::invalid(format!(
                "a job may depend on at most {MAX_DEPENDENCIES} jobs, not {count}"
            )));
        }
        if self.batch.is_some() && self.repeat.is_some() {
            return Err(Error::invalid(
                "a repeating job cannot belong to a batch (it never ends, so neither would the batch)",
            ));
        }
        if count > 0 && self.repeat.is_some() {
            return Err(Error::invalid(
                "a repeating job cannot depend on other jobs (it would wait once, then repeat without them)",
            ));
        }
        Ok(())
    }
}

/// Refuses a queue name that is empty, longer than 191 bytes, or has characters other than
/// letters, digits and `_ - . :`.
pub fn check_queue_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 191
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{name:?} is not a queue name: use 1 to 191 letters, digits, '_', '-', '.' or ':'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_backoff_matches_delayed_job() {
        let secs = |attempts| Backoff::Polynomial.delay(attempts).as_secs();
        let expected = [
            (1, 6),
            (2, 21),
            (3, 86),
            (4, 261),
            (5, 630),
            (10, 10_005),
            (24, 331_781),
        ];
        for (attempts, wait) in expected {
            assert_eq!(secs(attempts), wait, "after attempt {attempts}");
        }
        let total: u64 = (1..=24).map(secs).sum();
        assert_eq!(total, 1_763_140);
    }

    #[test]
    fn exponential_backoff_is_capped() {
        let backoff = Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
        assert_eq!(backoff.delay(3), Duration::from_secs(4));
        assert_eq!(backoff.delay(40), Duration::from_secs(60));
    }

    #[test]
    fn backoff_and_repeat_round_trip_through_text() {
        let backoffs = [
            Backoff::Polynomial,
            Backoff::Constant(Duration::from_millis(1500)),
            Backoff::Exponential {
                base: Duration::from_secs(2),
                max: Duration::from_secs(90),
            },
        ];
        for backoff in backoffs {
            assert_eq!(backoff.to_string().parse::<Backoff>().ok(), Some(backoff));
        }
        assert!("constant".parse::<Backoff>().is_err());
        assert!("polynomial:1".parse::<Backoff>().is_err());
        let repeat = Repeat::Every(Duration::from_secs(60));
        assert_eq!(repeat.to_string().parse::<Repeat>().ok(), Some(repeat));
        assert!("every:0".parse::<Repeat>().is_err());
        let zero = NewJob::new("Poll", serde_json::json!({})).repeat(Repeat::Every(Duration::ZERO));
        assert!(zero.check(1024).is_err(), "stored as every:0, unreadable");
        let short = NewJob::new("Poll", serde_json::json!({}))
            .repeat(Repeat::Every(Duration::from_micros(500)));
        assert!(short.check(1024).is_err());
        let cron = Repeat::Cron(CronSchedule::new("0 */6 * * *").expect("a schedule"));
        assert_eq!(cron.to_string(), "cron:0 */6 * * *");
        assert_eq!(cron.to_string().parse::<Repeat>().ok(), Some(cron));
        assert!("cron:61 * * * *".parse::<Repeat>().is_err());
        assert!("cron:".parse::<Repeat>().is_err());
    }

    #[test]
    fn a_cron_repeat_runs_at_the_next_point_after_now() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("a time");
        let six_hourly = Repeat::Cron(CronSchedule::new("0 */6 * * *").expect("a schedule"));
        let (due, done) = (at("2026-11-27T06:00:00Z"), at("2026-11-27T06:00:05Z"));
        assert_eq!(
            six_hourly.next_after(due, done),
            Some(at("2026-11-27T12:00:00Z"))
        );
        // Missed points are skipped: a run that finished late goes to the next point after now.
        let late = at("2026-11-27T19:30:00.112Z");
        assert_eq!(
            six_hourly.next_after(due, late),
            Some(at("2026-11-28T00:00:00Z"))
        );
        let past = Repeat::Cron(CronSchedule::new("0 0 0 1 1 * 2020").expect("a schedule"));
        assert_eq!(past.next_after(due, done), None, "no later point");
    }

    #[test]
    fn repeat_skips_missed_runs() {
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let every = Repeat::Every(Duration::from_secs(60));
        let secs = |s| start + chrono::Duration::seconds(s);
        assert_eq!(every.next_after(start, secs(1)), Some(secs(60)));
        assert_eq!(every.next_after(start, secs(60)), Some(secs(120)));
        assert_eq!(every.next_after(start, secs(601)), Some(secs(660)));
    }
}
