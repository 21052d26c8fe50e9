//! Rows to core types and back: times as epoch milliseconds, enums as their text forms.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::entity::{history, job};
use crate::error::corrupt;
use outsourced_core::{
    Actor, AttachmentInfo, BatchId, ErrorInfo, HistoryEntry, JobId, JobRecord, JobState, LeaseInfo,
    Owner, Result, WorkerInstance,
};

/// The media type of an attachment whose producer named none.
pub(crate) const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// A time as stored: epoch milliseconds.
pub(crate) fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored time back as a time.
pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A duration as stored: whole milliseconds.
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn parse<T: FromStr>(column: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| corrupt(format!("{column} = {text:?}")))
}

/// A job row as a record.
pub(crate) fn job_record(row: &job::Model) -> Result<JobRecord> {
    let args = serde_json::from_str(&row.args).map_err(|e| corrupt(format!("args: {e}")))?;
    let owner = match (&row.owner_type, &row.owner_id) {
        (Some(kind), Some(id)) => Some(Owner::new(kind, id)),
        _ => None,
    };
    let lease = match (&row.lease_worker, &row.lease_instance, row.lease_expires_at) {
        (Some(worker), Some(instance), Some(expires)) => Some(LeaseInfo {
            holder: WorkerInstance::new(worker, instance),
            expires_at: time(expires),
        }),
        _ => None,
    };
    Ok(JobRecord {
        id: JobId(row.id),
        queue: row.queue.clone(),
        class: row.class.clone(),
        args,
        priority: row.priority,
        state: parse("state", &row.state)?,
        run_at: time(row.run_at),
        attempts: row.attempts.max(0) as u32,
        max_attempts: row.max_attempts.max(0) as u32,
        max_run_time: row
            .max_run_time_ms
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        backoff: parse("backoff", &row.backoff)?,
        repeat: row
            .repeat
            .as_deref()
            .map(|r| parse("repeat", r))
            .transpose()?,
        owner,
        enqueued_by: parse("enqueued_by", &row.enqueued_by)?,
        cancel_requested: row.cancel_requested,
        lease,
        last_error: row.last_error.clone(),
        created_at: time(row.created_at),
        updated_at: time(row.updated_at),
        finished_at: row.finished_at.map(time),
        attachment: attachment_info(row),
        unique_key: row.unique_key.clone(),
        concurrency_key: row.concurrency_key.clone(),
        parent: row.parent_id.map(JobId),
        dependencies: dependencies(row)?,
        dependencies_left: row.dependencies_left.max(0) as u32,
        batch: row.batch_id.map(BatchId),
        callback_of: row.callback_of.map(BatchId),
    })
}

/// The ids of the jobs `row` waits (or waited) for.
pub(crate) fn dependencies(row: &job::Model) -> Result<Vec<JobId>> {
    let Some(text) = row.depends_on.as_deref() else {
        return Ok(Vec::new());
    };
    let ids: Vec<i64> =
        serde_json::from_str(text).map_err(|e| corrupt(format!("depends_on: {e}")))?;
    Ok(ids.into_iter().map(JobId).collect())
}

/// The metadata of a job's attachment, as copied onto its row.
pub(crate) fn attachment_info(row: &job::Model) -> Option<AttachmentInfo> {
    row.attachment_id?;
    Some(AttachmentInfo {
        file_name: row.attachment_name.clone(),
        content_type: row
            .attachment_type
            .clone()
            .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.to_owned()),
        size: row.attachment_size.unwrap_or(0).max(0) as u64,
        sha256: row.attachment_sha256.clone().unwrap_or_default(),
        created_at: time(row.attachment_at.unwrap_or(0)),
    })
}

/// The stored state of a job row.
pub(crate) fn state(row: &job::Model) -> Result<JobState> {
    parse("state", &row.state)
}

/// A history row as an entry.
pub(crate) fn history_entry(row: history::Model) -> Result<HistoryEntry> {
    let error = match row.error_message {
        Some(message) => Some(ErrorInfo {
            message,
            causes: match row.error_causes {
                Some(causes) => serde_json::from_str(&causes)
                    .map_err(|e| corrupt(format!("error_causes: {e}")))?,
                None => Vec::new(),
            },
            backtrace: row.error_backtrace,
        }),
        None => None,
    };
    Ok(HistoryEntry {
        job_id: JobId(row.job_id),
        seq: row.seq.max(0) as u32,
        from: row
            .from_state
            .as_deref()
            .map(|s| parse("from_state", s))
            .transpose()?,
        to: parse("to_state", &row.to_state)?,
        at: time(row.at),
        actor: parse::<Actor>("actor", &row.actor)?,
        attempt: row.attempt.max(0) as u32,
        reason: parse("reason", &row.reason)?,
        lease_token: row.lease_token,
        error,
        result: row
            .result
            .map(|r| serde_json::from_str(&r).map_err(|e| corrupt(format!("result: {e}"))))
            .transpose()?,
    })
}
