//! Core types to their JSON forms and back. Reading back checks every enum and text form, so
//! a malformed body is an error, not a guess.

use std::time::Duration;

use outsourced_core::{
    Actor, AttachmentInfo, BatchCounts, BatchId, BatchInfo, Error, ErrorInfo, Failure, Heartbeat,
    HistoryEntry, JobId, JobRecord, JobState, Lease, LeaseInfo, NewJob, QueueInfo, QueueLimit,
    Rate, Reserved, Result, Retention, RetryPlan, RunLimits, StateCount, StateCounts, Unique,
    WorkerInstance,
};

use super::{
    AttachmentDto, BatchDto, ErrorInfoDto, HeartbeatDto, HistoryDto, JobDto, LeaseDto,
    LeaseInfoDto, NewJobDto, QueueDto, RateDto, ReservedDto, RetryDto, RunLimitsDto, StateCountDto,
    UniqueDto,
};

fn invalid(what: &str, value: &str) -> Error {
    Error::invalid(format!("{what} {value:?} is not valid"))
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn state(text: &str) -> Result<JobState> {
    text.parse().map_err(|_| invalid("state", text))
}

impl From<&NewJob> for NewJobDto {
    fn from(job: &NewJob) -> Self {
        NewJobDto {
            class: job.class.clone(),
            args: job.args.clone(),
            queue: Some(job.queue.clone()),
            priority: Some(job.priority),
            run_at: job.run_at,
            max_attempts: job.max_attempts,
            max_run_time_ms: job.max_run_time.map(ms),
            backoff: Some(job.backoff.to_string()),
            repeat: job.repeat.as_ref().map(|r| r.to_string()),
            owner: job.owner.as_ref().map(ToString::to_string),
            unique: job.unique.as_ref().map(|u| UniqueDto {
                key: u.key.clone(),
                across: Some(u.across.as_str().to_owned()),
                period_ms: u.period.map(ms),
                on_duplicate: Some(u.on_duplicate.as_str().to_owned()),
            }),
            concurrency_key: job.concurrency_key.clone(),
            depends_on: job.depends_on.iter().map(|id| id.0).collect(),
            batch: job.batch.map(|b| b.0),
        }
    }
}

impl TryFrom<NewJobDto> for NewJob {
    type Error = Error;

    fn try_from(dto: NewJobDto) -> Result<Self> {
        let mut job = NewJob::new(dto.class, dto.args);
        if let Some(queue) = dto.queue {
            job.queue = queue;
        }
        job.priority = dto.priority.unwrap_or(0);
        job.run_at = dto.run_at;
        job.max_attempts = dto.max_attempts;
        job.max_run_time = dto.max_run_time_ms.map(Duration::from_millis);
        if let Some(backoff) = dto.backoff {
            job.backoff = backoff.parse()?;
        }
        job.repeat = dto.repeat.map(|r| r.parse()).transpose()?;
        job.owner = dto.owner.map(|o| o.parse()).transpose()?;
        job.unique = dto.unique.map(unique_from_dto).transpose()?;
        job.concurrency_key = dto.concurrency_key;
        job.batch = dto.batch.map(BatchId);
        Ok(job.depends_on(dto.depends_on.into_iter().map(JobId)))
    }
}

fn unique_from_dto(dto: UniqueDto) -> Result<Unique> {
    let mut unique = Unique::key(dto.key);
    if let Some(across) = dto.across {
        unique.across = across.parse()?;
    }
    unique.period = dto.period_ms.map(Duration::from_millis);
    if let Some(on_duplicate) = dto.on_duplicate {
        unique.on_duplicate = on_duplicate.parse()?;
    }
    Ok(unique)
}

/// A job as JSON.
pub fn job_to_dto(job: &JobRecord) -> JobDto {
    JobDto {
        id: job.id.0,
        queue: job.queue.clone(),
        class: job.class.clone(),
        args: job.args.clone(),
        priority: job.priority,
        state: job.state.as_str().to_owned(),
        run_at: job.run_at,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        max_run_time_ms: job.max_run_time.map(ms),
        backoff: job.backoff.to_string(),
        repeat: job.repeat.as_ref().map(|r| r.to_string()),
        owner: job.owner.as_ref().map(ToString::to_string),
        enqueued_by: job.enqueued_by.to_string(),
        cancel_requested: job.cancel_requested,
        lease: job.lease.as_ref().map(|lease| LeaseInfoDto {
            worker: lease.holder.worker.clone(),
            instance: lease.holder.instance.clone(),
            expires_at: lease.expires_at,
        }),
        last_error: job.last_error.clone(),
        created_at: job.created_at,
        updated_at: job.updated_at,
        finished_at: job.finished_at,
        attachment: job.attachment.as_ref().map(AttachmentDto::from),
        unique_key: job.unique_key.clone(),
        concurrency_key: job.concurrency_key.clone(),
        parent: job.parent.map(|id| id.0),
        dependencies: job.dependencies.iter().map(|id| id.0).collect(),
        dependencies_left: job.dependencies_left,
        batch: job.batch.map(|b| b.0),
        callback_of: job.callback_of.map(|b| b.0),
    }
}

impl From<&BatchInfo> for BatchDto {
    fn from(info: &BatchInfo) -> Self {
        BatchDto {
            id: info.counts.id.0,
            description: info.description.clone(),
            created_by: info.created_by.to_string(),
            created_at: info.created_at,
            closed: info.closed,
            total: info.counts.total,
            succeeded: info.counts.succeeded,
            failed: info.counts.failed,
            cancelled: info.counts.cancelled,
            callback: info.callback.0,
            finished_at: info.finished_at,
        }
    }
}

impl TryFrom<BatchDto> for BatchInfo {
    type Error = Error;

    fn try_from(dto: BatchDto) -> Result<Self> {
        Ok(BatchInfo {
            counts: BatchCounts {
                id: BatchId(dto.id),
                total: dto.total,
                succeeded: dto.succeeded,
                failed: dto.failed,
                cancelled: dto.cancelled,
            },
            description: dto.description,
            created_by: dto.created_by.parse()?,
            created_at: dto.created_at,
            closed: dto.closed,
            callback: JobId(dto.callback),
            finished_at: dto.finished_at,
        })
    }
}

impl From<&AttachmentInfo> for AttachmentDto {
    fn from(info: &AttachmentInfo) -> Self {
        AttachmentDto {
            file_name: info.file_name.clone(),
            content_type: info.content_type.clone(),
            size: info.size,
            sha256: info.sha256.clone(),
            created_at: info.created_at,
        }
    }
}

impl From<AttachmentDto> for AttachmentInfo {
    fn from(dto: AttachmentDto) -> Self {
        AttachmentInfo {
            file_name: dto.file_name,
            content_type: dto.content_type,
            size: dto.size,
            sha256: dto.sha256,
            created_at: dto.created_at,
        }
    }
}

/// A job from JSON.
pub fn job_from_dto(dto: JobDto) -> Result<JobRecord> {
    Ok(JobRecord {
        id: JobId(dto.id),
        state: state(&dto.state)?,
        backoff: dto.backoff.parse()?,
        repeat: dto.repeat.map(|r| r.parse()).transpose()?,
        owner: dto.owner.map(|o| o.parse()).transpose()?,
        enqueued_by: dto.enqueued_by.parse()?,
        lease: dto.lease.map(|lease| LeaseInfo {
            holder: WorkerInstance::new(lease.worker, lease.instance),
            expires_at: lease.expires_at,
        }),
        queue: dto.queue,
        class: dto.class,
        args: dto.args,
        priority: dto.priority,
        run_at: dto.run_at,
        attempts: dto.attempts,
        max_attempts: dto.max_attempts,
        max_run_time: dto.max_run_time_ms.map(Duration::from_millis),
        cancel_requested: dto.cancel_requested,
        last_error: dto.last_error,
        created_at: dto.created_at,
        updated_at: dto.updated_at,
        finished_at: dto.finished_at,
        attachment: dto.attachment.map(AttachmentInfo::from),
        unique_key: dto.unique_key,
        concurrency_key: dto.concurrency_key,
        parent: dto.parent.map(JobId),
        dependencies: dto.dependencies.into_iter().map(JobId).collect(),
        dependencies_left: dto.dependencies_left,
        batch: dto.batch.map(BatchId),
        callback_of: dto.callback_of.map(BatchId),
    })
}

impl From<&Reserved> for ReservedDto {
    fn from(reserved: &Reserved) -> Self {
        ReservedDto {
            job: job_to_dto(&reserved.job),
            lease: LeaseDto {
                token: reserved.lease.token.clone(),
                expires_at: reserved.lease.expires_at,
                attempt: reserved.lease.attempt,
            },
            dependency_results: reserved
                .dependency_results
                .iter()
                .map(|(id, value)| (id.0, value.clone()))
                .collect(),
        }
    }
}

impl ReservedDto {
    /// The reserved job, held by `holder`.
    pub fn into_reserved(self, holder: &WorkerInstance) -> Result<Reserved> {
        let job = job_from_dto(self.job)?;
        let lease = Lease {
            job_id: job.id,
            token: self.lease.token,
            expires_at: self.lease.expires_at,
            attempt: self.lease.attempt,
            holder: holder.clone(),
        };
        let dependency_results = self
            .dependency_results
            .into_iter()
            .map(|(id, value)| (JobId(id), value))
            .collect();
        Ok(Reserved {
            job,
            lease,
            dependency_results,
        })
    }
}

impl From<&Heartbeat> for HeartbeatDto {
    fn from(beat: &Heartbeat) -> Self {
        HeartbeatDto {
            expires_at: beat.expires_at,
            cancel_requested: beat.cancel_requested,
        }
    }
}

impl From<HeartbeatDto> for Heartbeat {
    fn from(dto: HeartbeatDto) -> Self {
        Heartbeat {
            expires_at: dto.expires_at,
            cancel_requested: dto.cancel_requested,
        }
    }
}

impl From<&ErrorInfo> for ErrorInfoDto {
    fn from(info: &ErrorInfo) -> Self {
        ErrorInfoDto {
            message: info.message.clone(),
            causes: info.causes.clone(),
            backtrace: info.backtrace.clone(),
        }
    }
}

impl From<ErrorInfoDto> for ErrorInfo {
    fn from(dto: ErrorInfoDto) -> Self {
        ErrorInfo {
            message: dto.message,
            causes: dto.causes,
            backtrace: dto.backtrace,
        }
    }
}

impl From<RetryPlan> for RetryDto {
    fn from(plan: RetryPlan) -> Self {
        match plan {
            RetryPlan::Backoff => RetryDto::Backoff,
            RetryPlan::After(wait) => RetryDto::After { after_ms: ms(wait) },
            RetryPlan::Never => RetryDto::Never,
        }
    }
}

impl From<RetryDto> for RetryPlan {
    fn from(dto: RetryDto) -> Self {
        match dto {
            RetryDto::Backoff => RetryPlan::Backoff,
            RetryDto::After { after_ms } => RetryPlan::After(Duration::from_millis(after_ms)),
            RetryDto::Never => RetryPlan::Never,
        }
    }
}

impl super::FailRequest {
    /// The failure it reports.
    pub fn failure(&self) -> Failure {
        Failure {
            error: self.error.clone().into(),
            retry: self.retry.clone().into(),
        }
    }
}

impl From<&HistoryEntry> for HistoryDto {
    fn from(row: &HistoryEntry) -> Self {
        HistoryDto {
            seq: row.seq,
            from: row.from.map(|s| s.as_str().to_owned()),
            to: row.to.as_str().to_owned(),
            at: row.at,
            actor: row.actor.to_string(),
            attempt: row.attempt,
            reason: row.reason.as_str().to_owned(),
            lease_token: row.lease_token.clone(),
            error: row.error.as_ref().map(ErrorInfoDto::from),
            result: row.result.clone(),
        }
    }
}

impl HistoryDto {
    /// The history row of job `id`.
    pub fn into_entry(self, id: JobId) -> Result<HistoryEntry> {
        Ok(HistoryEntry {
            job_id: id,
            seq: self.seq,
            from: self.from.as_deref().map(state).transpose()?,
            to: state(&self.to)?,
            at: self.at,
            actor: self.actor.parse::<Actor>()?,
            attempt: self.attempt,
            reason: self.reason.parse()?,
            lease_token: self.lease_token,
            error: self.error.map(ErrorInfo::from),
            result: self.result,
        })
    }
}

impl From<&StateCount> for StateCountDto {
    fn from(count: &StateCount) -> Self {
        StateCountDto {
            queue: count.queue.clone(),
            state: count.state.as_str().to_owned(),
            count: count.count,
        }
    }
}

impl TryFrom<StateCountDto> for StateCount {
    type Error = Error;

    fn try_from(dto: StateCountDto) -> Result<Self> {
        Ok(StateCount {
            state: state(&dto.state)?,
            queue: dto.queue,
            count: dto.count,
        })
    }
}

impl From<&QueueInfo> for QueueDto {
    fn from(queue: &QueueInfo) -> Self {
        QueueDto {
            name: queue.name.clone(),
            limit: queue.limit.max(),
            paused: queue.paused,
            retention_ms: queue.retention.as_millis(),
            limits: RunLimitsDto::from(queue.limits),
            next_start: queue.next_start,
            counts: queue
                .counts
                .iter()
                .map(|(s, n)| (s.as_str().to_owned(), n))
                .collect(),
        }
    }
}

impl TryFrom<QueueDto> for QueueInfo {
    type Error = Error;

    fn try_from(dto: QueueDto) -> Result<Self> {
        let mut counts = StateCounts::default();
        for (name, n) in dto.counts {
            counts.add(state(&name)?, n);
        }
        Ok(QueueInfo {
            name: dto.name,
            limit: QueueLimit::from_max(dto.limit),
            paused: dto.paused,
            retention: Retention::from_millis(dto.retention_ms),
            limits: dto.limits.into(),
            next_start: dto.next_start,
            counts,
        })
    }
}

impl From<Rate> for RateDto {
    fn from(rate: Rate) -> Self {
        RateDto {
            starts: rate.starts,
            per_ms: ms(rate.per),
        }
    }
}

impl From<RateDto> for Rate {
    fn from(dto: RateDto) -> Self {
        Rate {
            starts: dto.starts,
            per: Duration::from_millis(dto.per_ms),
        }
    }
}

impl From<RunLimits> for RunLimitsDto {
    fn from(limits: RunLimits) -> Self {
        RunLimitsDto {
            max_running: limits.max_running,
            rate: limits.rate.map(RateDto::from),
            max_running_per_key: limits.max_running_per_key,
            rate_per_key: limits.rate_per_key.map(RateDto::from),
        }
    }
}

impl From<RunLimitsDto> for RunLimits {
    fn from(dto: RunLimitsDto) -> Self {
        RunLimits {
            max_running: dto.max_running,
            rate: dto.rate.map(Rate::from),
            max_running_per_key: dto.max_running_per_key,
            rate_per_key: dto.rate_per_key.map(Rate::from),
        }
    }
}
