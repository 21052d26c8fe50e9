//! The data that crosses the [`Backend`](crate::Backend) trait.

mod attachment;
mod batch;
mod ids;
mod limits;
mod queue;
mod record;
mod result;
mod spec;
mod unique;

pub use attachment::{AttachmentInfo, ByteStream, Download, MAX_FILE_NAME, Upload};
pub use batch::{BatchCounts, BatchId, BatchInfo, NewBatch};
pub use ids::{Actor, JobId, Owner, WorkerInstance};
pub use limits::{
    MAX_CONCURRENCY_KEY, Rate, RunLimits, check_concurrency_key, duration_text, parse_period,
};
pub use queue::{
    DEFAULT_QUEUE_LIMIT, QueueInfo, QueueLimit, QueueUpdate, Retention, StateCount, StateCounts,
    by_state, closest_name, workable_queues,
};
pub use record::{
    ErrorInfo, Failure, Heartbeat, HistoryEntry, JobRecord, Lease, LeaseInfo, LeaseRef, Reason,
    Reserved, RetryPlan,
};
pub use result::{Completion, MAX_FOLLOW_UPS, MAX_RESULT_BYTES, check_follow_ups, check_result};
pub use spec::{
    Backoff, CronSchedule, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, MAX_DEPENDENCIES, NewJob, Repeat,
    check_queue_name, is_unprintable,
};
pub use unique::{Enqueued, MAX_UNIQUE_KEY, OnDuplicate, Unique, UniqueAcross};
