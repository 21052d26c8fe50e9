//! The registry that maps class names to job types, and the hook order of one run.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::Error;
use crate::job::{Job, JobContext, JobError};

/// A decoded job of any registered type: what a worker runs.
#[async_trait]
pub trait AnyJob: Send + Sync {
    /// The name in logs.
    fn display_name(&self) -> String;
    /// See [`Job::max_run_time`].
    fn max_run_time(&self) -> Option<Duration>;
    /// See [`Job::reschedule_at`].
    fn reschedule_at(&self, now: DateTime<Utc>, attempts: u32) -> Option<DateTime<Utc>>;
    /// See [`Job::perform`].
    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError>;
    /// See [`Job::before`].
    async fn before(&self, ctx: &JobContext) -> Result<(), JobError>;
    /// See [`Job::success`].
    async fn success(&self, ctx: &JobContext) -> Result<(), JobError>;
    /// See [`Job::error`].
    async fn error(&self, ctx: &JobContext, error: &JobError) -> Result<(), JobError>;
    /// See [`Job::after`].
    async fn after(&self, ctx: &JobContext) -> Result<(), JobError>;
    /// See [`Job::failure`].
    async fn failure(&self, ctx: &JobContext) -> Result<(), JobError>;
}

#[async_trait]
impl<J: Job> AnyJob for J {
    fn display_name(&self) -> String {
        Job::display_name(self)
    }
    fn max_run_time(&self) -> Option<Duration> {
        Job::max_run_time(self)
    }
    fn reschedule_at(&self, now: DateTime<Utc>, attempts: u32) -> Option<DateTime<Utc>> {
        Job::reschedule_at(self, now, attempts)
    }
    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        Job::perform(self, ctx).await
    }
    async fn before(&self, ctx: &JobContext) -> Result<(), JobError> {
        Job::before(self, ctx).await
    }
    async fn success(&self, ctx: &JobContext) -> Result<(), JobError> {
        Job::success(self, ctx).await
    }
    async fn error(&self, ctx: &JobContext, error: &JobError) -> Result<(), JobError> {
        Job::error(self, ctx, error).await
    }
    async fn after(&self, ctx: &JobContext) -> Result<(), JobError> {
        Job::after(self, ctx).await
    }
    async fn failure(&self, ctx: &JobContext) -> Result<(), JobError> {
        Job::failure(self, ctx).await
    }
}

type Decoder = fn(&Value) -> Result<Box<dyn AnyJob>, serde_json::Error>;

fn decode_as<J: Job>(args: &Value) -> Result<Box<dyn AnyJob>, serde_json::Error> {
    J::deserialize(args).map(|job| Box::new(job) as Box<dyn AnyJob>)
}

/// Maps class names to the job types a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    decoders: BTreeMap<&'static str, Decoder>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `J` under its class name.
    ///
    /// # Panics
    ///
    /// When another type is already registered under the same class name: two types for one
    /// class would make decoding depend on registration order.
    pub fn register<J: Job>(&mut self) -> &mut Self {
        let previous = self.decoders.insert(J::CLASS, decode_as::<J>);
        assert!(
            previous.is_none(),
            "job class {:?} is registered twice",
            J::CLASS
        );
        self
    }

    /// Whether `class` is registered.
    pub fn contains(&self, class: &str) -> bool {
        self.decoders.contains_key(class)
    }

    /// The registered class names, sorted.
    pub fn classes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.decoders.keys().copied()
    }

    /// Decodes a stored job. An unknown class or arguments that do not fit the type are
    /// `BadPayload`: a permanent failure, never worth a retry.
    pub fn decode(&self, class: &str, args: &Value) -> Result<Box<dyn AnyJob>, Error> {
        let decoder = self.decoders.get(class).ok_or_else(|| Error::BadPayload {
            message: format!(
                "unknown job class {class:?} (this worker knows: {})",
                self.classes().collect::<Vec<_>>().join(", ")
            ),
        })?;
        decoder(args).map_err(|e| Error::BadPayload {
            message: format!("cannot decode the arguments of {class}: {e}"),
        })
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.classes()).finish()
    }
}

/// Runs one attempt of a job with its hooks, in delayed_job's order and by its error rules:
///
/// 1. `before`; if it fails, `perform` and `success` are skipped;
/// 2. `perform`, then `success` if it succeeded (a failing `success` fails the attempt);
/// 3. on any failure so far, `error` with that failure (an error from `error` replaces it);
/// 4. `after`, always (an error from `after` replaces the outcome).
pub async fn invoke(job: &dyn AnyJob, ctx: &JobContext) -> Result<(), JobError> {
    let mut outcome = job.before(ctx).await;
    if outcome.is_ok() {
        outcome = job.perform(ctx).await;
        if outcome.is_ok() {
            outcome = job.success(ctx).await;
        }
    }
    if let Err(error) = outcome {
        outcome = Err(match job.error(ctx, &error).await {
            Ok(()) => error,
            Err(hook_error) => hook_error,
        });
    }
    job.after(ctx).await.and(outcome)
}

#[cfg(test)]
mod tests;
