//! Job types the worker scenarios run: they record their hooks, fail, sleep, panic or wait to
//! be told to finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use outsourced_core::{Job, JobContext, JobError, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What the hooks of each recorded job did, by the job's key.
static LOGS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn record(key: &str, entry: impl Into<String>) {
    let mut logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    logs.push((key.to_owned(), entry.into()));
}

/// The hooks a [`Recorder`] with `key` ran, in order.
pub(crate) fn recorded(key: &str) -> Vec<String> {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    logs.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, e)| e.clone())
        .collect()
}

/// delayed_job's `CallbackJob`, `ErrorJob`, `CustomRescheduleJob` and `OnPermanentFailureJob`
/// in one: records its hooks and fails where it is told to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Recorder {
    pub(crate) key: String,
    /// Hooks (`before`, `perform`, `success`, `after`, `failure`) that return an error.
    #[serde(default)]
    pub(crate) fail_in: Vec<String>,
    /// Fail with a permanent error.
    #[serde(default)]
    pub(crate) permanent: bool,
    /// Ask to be retried this many seconds later.
    #[serde(default)]
    pub(crate) reschedule_secs: Option<u64>,
}

impl Recorder {
    fn step(&self, hook: &str) -> Result<(), JobError> {
        record(&self.key, hook);
        if !self.fail_in.iter().any(|h| h == hook) {
            return Ok(());
        }
        let error = JobError::from(std::io::Error::other(format!("{hook} did not work")));
        Err(if self.permanent {
            error.permanent()
        } else {
            error
        })
    }
}

#[async_trait]
impl Job for Recorder {
    const CLASS: &'static str = "Recorder";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("perform")
    }
    async fn before(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("before")
    }
    async fn success(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("success")
    }
    async fn error(&self, _ctx: &JobContext, error: &JobError) -> Result<(), JobError> {
        record(&self.key, format!("error: {error}"));
        Ok(())
    }
    async fn after(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("after")
    }
    async fn failure(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("failure")
    }
    fn reschedule_at(&self, now: DateTime<Utc>, _attempts: u32) -> Option<DateTime<Utc>> {
        let secs = i64::try_from(self.reschedule_secs?).ok()?;
        Some(now + chrono::Duration::seconds(secs))
    }
}

/// Sleeps (a long job, for time limits).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Sleeper {
    pub(crate) millis: u64,
}

#[async_trait]
impl Job for Sleeper {
    const CLASS: &'static str = "Sleeper";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.millis)).await;
        Ok(())
    }
}

/// Panics.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Panicker;

#[async_trait]
impl Job for Panicker {
    const CLASS: &'static str = "Panicker";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        panic!("the job blew up")
    }
}

/// Signals that it started, then waits until the scenario lets it finish.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Blocker {
    pub(crate) key: String,
}

/// A blocker's signals: it started; it may finish.
type Gate = (Arc<Notify>, Arc<Notify>);

/// The gates of running blockers, by key.
static GATES: Mutex<Option<HashMap<String, Gate>>> = Mutex::new(None);

/// The (started, finish) signals of the blocker with `key`.
pub(crate) fn gates(key: &str) -> Gate {
    let mut gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
    let gates = gates.get_or_insert_with(HashMap::new);
    gates
        .entry(key.to_owned())
        .or_insert_with(|| (Arc::new(Notify::new()), Arc::new(Notify::new())))
        .clone()
}

#[async_trait]
impl Job for Blocker {
    const CLASS: &'static str = "Blocker";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        let (started, finish) = gates(&self.key);
        started.notify_one();
        finish.notified().await;
        Ok(())
    }
}

/// Hands back its argument as its result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) value: serde_json::Value,
}

#[async_trait]
impl Job for Answer {
    const CLASS: &'static str = "Answer";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.set_result(&self.value)
    }
}

/// Every test job type.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register::<Recorder>()
        .register::<Sleeper>()
        .register::<Panicker>()
        .register::<Blocker>()
        .register::<Answer>();
    registry
}
