//! The JSON of the `/v1` API: one type per request and response body. Core types are not
//! serializable by accident; this module is where they become JSON, and back.

mod code;
mod convert;
mod error;
pub mod path;
mod query;

pub use code::Code;
pub use convert::{job_from_dto, job_to_dto};
pub use error::{ErrorBody, error_from_response, status_of};
pub use query::{CountsQuery, JobsQuery, query_pairs};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job to enqueue. Unset options take the server's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewJobDto {
    /// The job class.
    pub class: String,
    /// The arguments: any JSON value.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Value,
    /// The queue (`default` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Lower runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Not before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The job's own time limit per attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_time_ms: Option<u64>,
    /// `polynomial`, `constant:MS` or `exponential:BASE_MS:MAX_MS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// `every:MS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<String>,
    /// `TYPE/ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A key that makes the job unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<UniqueDto>,
    /// The key its queue's per-key limit counts it under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// Ids of jobs that must succeed before this one runs (at most 100; each must be a job
    /// the caller enqueued, unless it is an admin).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<i64>,
    /// The batch it joins (one the caller opened, unless it is an admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
}

/// A batch to open: `POST /v1/batches`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewBatchDto {
    /// What the batch is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The job to run once every job of the batch has ended; its `args`, a JSON object, gain
    /// `"batch": {"id", "total", "succeeded", "failed", "cancelled"}`.
    pub callback: NewJobDto,
}

/// A batch and its counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchDto {
    /// Its id.
    pub id: i64,
    /// What it is, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Who opened it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Whether it was closed (it ends once its jobs have).
    pub closed: bool,
    /// Jobs added to it.
    pub total: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// The callback job (pending until the batch ends).
    pub callback: i64,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job's unique key and its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UniqueDto {
    /// The key: 1 to 191 bytes, no control character.
    pub key: String,
    /// Unique among jobs of the same queue and `class` (the default), or of the whole `queue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across: Option<String>,
    /// How long the key stays taken after the enqueue, whatever the job's state, in
    /// milliseconds; while the job is live when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<u64>,
    /// `existing` (the default: answer 200 with the job that holds the key, storing nothing),
    /// `refuse` (answer 409 `duplicate`, naming it) or `replace` (debounce: the holder, if it
    /// waits and is the caller's, takes the duplicate's arguments and run time; answer 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_duplicate: Option<String>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobDto {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its class.
    pub class: String,
    /// Its arguments.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Value,
    /// Lower runs first.
    pub priority: i32,
    /// `scheduled`, `available`, `retrying`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Not before this time.
    pub run_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts at most.
    pub max_attempts: u32,
    /// The job's own time limit per attempt, in milliseconds.
    pub max_run_time_ms: Option<u64>,
    /// Its back-off.
    pub backoff: String,
    /// Its repeat schedule.
    pub repeat: Option<String>,
    /// Its owner, `TYPE/ID`.
    pub owner: Option<String>,
    /// Who enqueued it.
    pub enqueued_by: String,
    /// Whether a cancel was requested while it runs.
    pub cancel_requested: bool,
    /// The lease's holder and expiry while it runs.
    pub lease: Option<LeaseInfoDto>,
    /// Its latest failure's message.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its attachment (download it from `/v1/jobs/{id}/attachment`).
    #[serde(default)]
    pub attachment: Option<AttachmentDto>,
    /// The unique key it was stored with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// The key its queue's per-key limit counts it under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// The job whose success enqueued it, when it is a follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
    /// The jobs it waits (or waited) for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<i64>,
    /// How many of them have not succeeded yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dependencies_left: u32,
    /// The batch it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
    /// The batch whose callback it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_of: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What is known of a job's attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentDto {
    /// The file name the producer gave (metadata only).
    pub file_name: Option<String>,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Who holds a running job, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseInfoDto {
    /// The worker's name.
    pub worker: String,
    /// The worker process's instance id.
    pub instance: String,
    /// When the lease runs out.
    pub expires_at: DateTime<Utc>,
}

/// A lease granted by reserve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseDto {
    /// The fencing token to present with every report.
    pub token: String,
    /// When it runs out unless renewed.
    pub expires_at: DateTime<Utc>,
    /// The attempt it is for.
    pub attempt: u32,
}

/// A job handed to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservedDto {
    /// The job.
    pub job: JobDto,
    /// Its lease.
    pub lease: LeaseDto,
    /// The results of the jobs it depends on, by job id (those that returned one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dependency_results: BTreeMap<i64, Value>,
}

/// What to reserve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// The worker process's instance id.
    pub instance: String,
    /// The worker the client takes itself to be (its config's `worker`): a request naming
    /// another worker than its credentials' is refused (400 `invalid_input`), so that a
    /// config holding another worker's keys is caught at its first request instead of
    /// logging under one name what the history records under another. Absent: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The most jobs to lease.
    pub limit: u32,
    /// Only these queues (of those the worker is hired for); empty for all of them.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Only jobs of these classes (those the worker runs); absent for any class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Inclusive priority bounds.
    #[serde(default)]
    pub min_priority: Option<i32>,
    /// Inclusive priority bounds.
    #[serde(default)]
    pub max_priority: Option<i32>,
    /// Wait up to this long for a job (long-poll), at most 30,000.
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// The lease length to ask for.
    #[serde(default)]
    pub lease_ms: Option<u64>,
}

/// Whether a job a reserve would take, run limits aside, is due (`POST /v1/reserve/due`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DueDto {
    /// A job is due, perhaps held back by a run limit.
    pub due: bool,
}

/// The jobs a reserve handed out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservedList {
    /// The jobs, each with its lease.
    pub jobs: Vec<ReservedDto>,
}

/// A lease a worker presents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The worker process's instance id.
    pub instance: String,
    /// The lease's token.
    pub token: String,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatDto {
    /// The lease's new expiry.
    pub expires_at: DateTime<Utc>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
}

/// A success a worker reports: its lease, and the job's result if it has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The worker process's instance id.
    pub instance: String,
    /// The lease's token.
    pub token: String,
    /// What the job produced: any JSON value of at most 64 KiB, kept with the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    /// Jobs to enqueue with the success, in its transaction, or not at all (at most 1,000):
    /// into the queues the completed job's producer may enqueue into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<NewJobDto>,
}

/// One success of a batch complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseKeyDto {
    /// The job.
    pub id: i64,
    /// The lease's token.
    pub token: String,
    /// What the job produced: any JSON value of at most 64 KiB, kept with the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    /// Jobs to enqueue with the success, in its transaction, or not at all (at most 1,000):
    /// into the queues the completed job's producer may enqueue into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<NewJobDto>,
}

/// Several successes at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchCompleteRequest {
    /// The worker process's instance id.
    pub instance: String,
    /// The leases.
    pub leases: Vec<LeaseKeyDto>,
}

/// One answer per lease of a batch complete: `null` for success, else the error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchCompleteResponse {
    /// In the order of the request's leases.
    pub results: Vec<Option<ErrorBody>>,
}

/// A full error report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorInfoDto {
    /// The message.
    pub message: String,
    /// The causes' messages, outermost first.
    #[serde(default)]
    pub causes: Vec<String>,
    /// A backtrace or a command's standard error.
    #[serde(default)]
    pub backtrace: Option<String>,
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryDto {
    /// Wait as the job's stored back-off says.
    Backoff,
    /// Wait this long.
    After {
        /// Milliseconds.
        after_ms: u64,
    },
    /// Do not retry.
    Never,
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// The worker process's instance id.
    pub instance: String,
    /// The lease's token.
    pub token: String,
    /// The error.
    pub error: ErrorInfoDto,
    /// What to do next.
    pub retry: RetryDto,
}

/// A job's state after a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateDto {
    /// The state.
    pub state: String,
}

/// A worker instance, for releasing all it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InstanceRequest {
    /// The worker process's instance id.
    pub instance: String,
}

/// How much one reclaim pass may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReclaimRequest {
    /// The most jobs to reclaim.
    pub limit: u32,
}

/// How much one prune pass may remove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// The most jobs to remove.
    pub limit: u32,
}

/// A number of jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CountDto {
    /// How many.
    pub count: u64,
}

/// The ids of enqueued jobs, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdsDto {
    /// The ids: of the stored job, or for a duplicate of the job that holds its key.
    pub ids: Vec<i64>,
    /// Which jobs were duplicates (nothing stored), in the same order; empty when none was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<bool>,
}

/// One history row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryDto {
    /// 1 for the enqueue, then one more per row.
    pub seq: u32,
    /// The state before.
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// The attempt.
    pub attempt: u32,
    /// Why.
    pub reason: String,
    /// The lease it concerns.
    pub lease_token: Option<String>,
    /// The error of a failed attempt.
    pub error: Option<ErrorInfoDto>,
    /// What the job produced, on the `completed` row of the attempt that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
}

/// How many jobs of a queue are in a state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCountDto {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: String,
    /// How many.
    pub count: u64,
}

/// A queue with its settings and counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueDto {
    /// Its name.
    pub name: String,
    /// Its limit on live jobs; `null` when unlimited.
    pub limit: Option<u64>,
    /// Whether it hands out nothing.
    pub paused: bool,
    /// How long finished jobs are kept, in milliseconds; `null` keeps them forever.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Its limits on running jobs (running jobs are counted in `counts`).
    #[serde(default)]
    pub limits: RunLimitsDto,
    /// When its rate lets the next job start (a time past: now); absent without a rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start: Option<DateTime<Utc>>,
    /// Jobs by state.
    pub counts: BTreeMap<String, u64>,
}

/// A queue's limits on its running jobs, across every worker; `null` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunLimitsDto {
    /// At most this many of its jobs run at once.
    #[serde(default)]
    pub max_running: Option<u32>,
    /// At most `starts` start per `per_ms`, evenly spaced.
    #[serde(default)]
    pub rate: Option<RateDto>,
    /// At most this many jobs of one concurrency key run at once.
    #[serde(default)]
    pub max_running_per_key: Option<u32>,
    /// At most `starts` jobs of one concurrency key start per `per_ms`, evenly spaced.
    #[serde(default)]
    pub rate_per_key: Option<RateDto>,
}

/// A rate of starts: `starts` per `per_ms` milliseconds, one every `per_ms / starts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateDto {
    /// How many starts.
    pub starts: u32,
    /// In how many milliseconds.
    pub per_ms: u64,
}

/// A field of a change that may be set (`x`), cleared (`null`) or left out (unchanged).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A queue to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateQueueRequest {
    /// Its name.
    pub name: String,
    /// Its limit (the default when omitted).
    #[serde(default)]
    pub limit: Option<u64>,
    /// No limit at all.
    #[serde(default)]
    pub unlimited: bool,
    /// Its limits on running jobs (none when omitted).
    #[serde(default)]
    pub limits: RunLimitsDto,
}

/// A change to a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateQueueRequest {
    /// A new limit.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Remove the limit.
    #[serde(default)]
    pub unlimited: bool,
    /// Pause or resume.
    #[serde(default)]
    pub paused: Option<bool>,
    /// Keep finished jobs this many milliseconds, then prune them.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Keep finished jobs forever.
    #[serde(default)]
    pub retain_forever: bool,
    /// A new limit on running jobs; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub max_running: Option<Option<u32>>,
    /// A new rate of starts; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RateDto>))]
    pub rate: Option<Option<RateDto>>,
    /// A new limit on running jobs per concurrency key; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub max_running_per_key: Option<Option<u32>>,
    /// A new rate of starts per concurrency key; `null` removes it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RateDto>))]
    pub rate_per_key: Option<Option<RateDto>>,
}
