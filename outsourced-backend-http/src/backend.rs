//! `Backend` for [`HttpBackend`]: each call is one signed request to `/v1`. The server decides
//! who the caller is from its credentials; the `by` of each call only supplies the worker
//! instance id.

use async_trait::async_trait;
use reqwest::Method;

use crate::client::HttpBackend;
use crate::wire::{
    BatchCompleteRequest, BatchCompleteResponse, BatchDto, CompleteRequest, CountDto, CountsQuery,
    CreateQueueRequest, DueDto, ErrorInfoDto, FailRequest, HeartbeatDto, HistoryDto, IdsDto,
    InstanceRequest, JobDto, JobsQuery, LeaseKeyDto, LeaseRequest, NewBatchDto, NewJobDto,
    PruneRequest, QueueDto, RateDto, ReclaimRequest, ReserveRequest, ReservedList, RetryDto,
    RunLimitsDto, StateCountDto, StateDto, UpdateQueueRequest, job_from_dto, path, query_pairs,
};
use outsourced_core::{
    Actor, AttachmentInfo, Backend, BatchId, BatchInfo, Completion, CountFilter, Download,
    Enqueued, Error, Failure, Heartbeat, HistoryEntry, JobFilter, JobId, JobRecord, JobState,
    LeaseRef, NewBatch, NewJob, PruneOptions, QueueInfo, QueueLimit, QueueUpdate, ReclaimOptions,
    ReserveOptions, Reserved, Result, Retention, StateCount, Upload, WorkerInstance,
};

const NONE: Option<&()> = None;

fn state(dto: StateDto) -> Result<JobState> {
    dto.state
        .parse()
        .map_err(|_| Error::invalid(format!("the server sent an unknown state {:?}", dto.state)))
}

fn ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn lease_body(by: &WorkerInstance, lease: &LeaseRef) -> LeaseRequest {
    LeaseRequest {
        instance: by.instance.clone(),
        token: lease.token.clone(),
    }
}

fn reserve_request(by: &WorkerInstance, opts: &ReserveOptions) -> ReserveRequest {
    ReserveRequest {
        instance: by.instance.clone(),
        worker: Some(by.worker.clone()),
        limit: opts.limit,
        queues: opts.queues.clone(),
        classes: opts.classes.clone(),
        min_priority: opts.min_priority,
        max_priority: opts.max_priority,
        wait_ms: opts.wait.map(ms),
        lease_ms: opts.lease.map(ms),
    }
}

fn limit_fields(limit: QueueLimit) -> (Option<u64>, bool) {
    match limit {
        QueueLimit::Max(n) => (Some(n), false),
        QueueLimit::Unlimited => (None, true),
    }
}

#[async_trait]
impl Backend for HttpBackend {
    async fn enqueue(&self, _by: &Actor, job: NewJob) -> Result<JobRecord> {
        let dto: JobDto = self
            .enqueue_call(path::JOBS.plain(), &NewJobDto::from(&job))
            .await?;
        job_from_dto(dto)
    }

    async fn enqueue_batch(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let each = self.enqueue_each(by, jobs).await?;
        Ok(each.into_iter().map(|e| e.id).collect())
    }

    async fn enqueue_each(&self, _by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let body: Vec<NewJobDto> = jobs.iter().map(NewJobDto::from).collect();
        let answer: IdsDto = self.enqueue_call(path::BATCH.plain(), &body).await?;
        let duplicates = answer
            .duplicates
            .into_iter()
            .chain(std::iter::repeat(false));
        Ok(answer
            .ids
            .into_iter()
            .zip(duplicates)
            .map(|(id, duplicate)| Enqueued {
                id: JobId(id),
                duplicate,
            })
            .collect())
    }

    async fn reserve(&self, by: &WorkerInstance, opts: ReserveOptions) -> Result<Vec<Reserved>> {
        let body = reserve_request(by, &opts);
        let list: ReservedList = self
            .call(
                Method::POST,
                path::RESERVE.plain(),
                &[],
                Some(&body),
                opts.wait,
            )
            .await?;
        list.jobs
            .into_iter()
            .map(|dto| dto.into_reserved(by))
            .collect()
    }

    async fn any_due(&self, by: &WorkerInstance, opts: &ReserveOptions) -> Result<bool> {
        let body = reserve_request(by, opts);
        let answer: DueDto = self
            .call(
                Method::POST,
                path::RESERVE_DUE.plain(),
                &[],
                Some(&body),
                None,
            )
            .await?;
        Ok(answer.due)
    }

    async fn heartbeat(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<Heartbeat> {
        let path = path::HEARTBEAT.of(lease.job_id);
        let dto: HeartbeatDto = self
            .call(Method::POST, &path, &[], Some(&lease_body(by, lease)), None)
            .await?;
        Ok(dto.into())
    }

    async fn complete_batch(
        &self,
        by: &WorkerInstance,
        done: &[Completion],
    ) -> Result<Vec<Result<()>>> {
        if let [done] = done {
            // One success: the simple route, whose answer is the lease's own.
            let path = path::COMPLETE.of(done.lease.job_id);
            let body = CompleteRequest {
                instance: by.instance.clone(),
                token: done.lease.token.clone(),
                result: done.result.clone(),
                follow_ups: done.follow_ups.iter().map(NewJobDto::from).collect(),
            };
            let result = self.call_empty(Method::POST, &path, Some(&body)).await;
            return match result {
                Err(error @ Error::Backend { .. }) => Err(error),
                other => Ok(vec![other]),
            };
        }
        let body = BatchCompleteRequest {
            instance: by.instance.clone(),
            leases: done
                .iter()
                .map(|d| LeaseKeyDto {
                    id: d.lease.job_id.0,
                    token: d.lease.token.clone(),
                    result: d.result.clone(),
                    follow_ups: d.follow_ups.iter().map(NewJobDto::from).collect(),
                })
                .collect(),
        };
        let answer: BatchCompleteResponse = self
            .call(
                Method::POST,
                path::COMPLETE_BATCH.plain(),
                &[],
                Some(&body),
                None,
            )
            .await?;
        Ok(answer
            .results
            .into_iter()
            .map(|result| match result {
                None => Ok(()),
                Some(error) => Err(error.into_error(409)),
            })
            .collect())
    }

    async fn fail(
        &self,
        by: &WorkerInstance,
        lease: &LeaseRef,
        failure: Failure,
    ) -> Result<JobState> {
        let body = FailRequest {
            instance: by.instance.clone(),
            token: lease.token.clone(),
            error: ErrorInfoDto::from(&failure.error),
            retry: RetryDto::from(failure.retry),
        };
        let path = path::FAIL.of(lease.job_id);
        state(
            self.call(Method::POST, &path, &[], Some(&body), None)
                .await?,
        )
    }

    async fn release(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<()> {
        let path = path::RELEASE.of(lease.job_id);
        self.call_empty(Method::POST, &path, Some(&lease_body(by, lease)))
            .await
    }

    async fn release_all(&self, by: &WorkerInstance) -> Result<u64> {
        let body = InstanceRequest {
            instance: by.instance.clone(),
        };
        let count: CountDto = self
            .call(
                Method::POST,
                path::RELEASE_ALL.plain(),
                &[],
                Some(&body),
                None,
            )
            .await?;
        Ok(count.count)
    }

    async fn reclaim_expired(&self, _by: &Actor, opts: ReclaimOptions) -> Result<u64> {
        let body = ReclaimRequest { limit: opts.limit };
        let count: CountDto = self
            .call(Method::POST, path::RECLAIM.plain(), &[], Some(&body), None)
            .await?;
        Ok(count.count)
    }

    async fn enqueue_attached(
        &self,
        _by: &Actor,
        job: NewJob,
        file: Upload,
    ) -> Result<(JobRecord, bool)> {
        crate::attachments::enqueue(self, job, file).await
    }

    async fn attach(&self, _by: &Actor, id: JobId, file: Upload) -> Result<AttachmentInfo> {
        crate::attachments::attach(self, id, file).await
    }

    async fn attachment(&self, _by: &Actor, id: JobId) -> Result<Download> {
        crate::attachments::download(self, id).await
    }

    async fn prune(&self, _by: &Actor, opts: PruneOptions) -> Result<u64> {
        let body = PruneRequest { limit: opts.limit };
        let count: CountDto = self
            .call(Method::POST, path::PRUNE.plain(), &[], Some(&body), None)
            .await?;
        Ok(count.count)
    }

    async fn job(&self, _by: &Actor, id: JobId) -> Result<JobRecord> {
        let dto: JobDto = self
            .call(Method::GET, &path::JOB.of(id), &[], NONE, None)
            .await?;
        job_from_dto(dto)
    }

    async fn history(&self, _by: &Actor, id: JobId) -> Result<Vec<HistoryEntry>> {
        let path = path::HISTORY.of(id);
        let rows: Vec<HistoryDto> = self.call(Method::GET, &path, &[], NONE, None).await?;
        rows.into_iter().map(|row| row.into_entry(id)).collect()
    }

    async fn jobs(&self, _by: &Actor, filter: JobFilter) -> Result<Vec<JobRecord>> {
        let query = JobsQuery {
            queue: filter.queue,
            state: filter.state.map(|s| s.as_str().to_owned()),
            class: filter.class,
            class_prefix: filter.class_prefix,
            owner: filter.owner.map(|o| o.to_string()),
            unique_key: filter.unique_key,
            concurrency_key: filter.concurrency_key,
            parent: filter.parent.map(|p| p.0),
            dependants_of: filter.dependants_of.map(|p| p.0),
            batch: filter.batch.map(|b| b.0),
            created_since: filter.created_since,
            created_until: filter.created_until,
            before: filter.before.map(|b| b.0),
            after: filter.after.map(|a| a.0),
            limit: Some(filter.limit),
            body_sha256: None,
        };
        let query = query_pairs(&query);
        let dtos: Vec<JobDto> = self
            .call(Method::GET, path::JOBS.plain(), &query, NONE, None)
            .await?;
        dtos.into_iter().map(job_from_dto).collect()
    }

    async fn counts(&self, _by: &Actor, filter: CountFilter) -> Result<Vec<StateCount>> {
        let query = CountsQuery {
            queue: filter.queue,
            owner: filter.owner.map(|o| o.to_string()),
            body_sha256: None,
        };
        let query = query_pairs(&query);
        let dtos: Vec<StateCountDto> = self
            .call(Method::GET, path::COUNTS.plain(), &query, NONE, None)
            .await?;
        dtos.into_iter().map(StateCount::try_from).collect()
    }

    async fn open_batch(&self, _by: &Actor, batch: NewBatch) -> Result<BatchInfo> {
        let body = NewBatchDto {
            description: batch.description,
            callback: NewJobDto::from(&batch.callback),
        };
        let dto: BatchDto = self
            .call(Method::POST, path::BATCHES.plain(), &[], Some(&body), None)
            .await?;
        dto.try_into()
    }

    async fn close_batch(&self, _by: &Actor, id: BatchId) -> Result<BatchInfo> {
        let dto: BatchDto = self
            .call(Method::POST, &path::BATCH_CLOSE.of(id), &[], NONE, None)
            .await?;
        dto.try_into()
    }

    async fn batch(&self, _by: &Actor, id: BatchId) -> Result<BatchInfo> {
        let dto: BatchDto = self
            .call(Method::GET, &path::BATCH_INFO.of(id), &[], NONE, None)
            .await?;
        dto.try_into()
    }

    async fn cancel_batch(&self, _by: &Actor, id: BatchId) -> Result<u64> {
        let count: CountDto = self
            .call(Method::POST, &path::BATCH_CANCEL.of(id), &[], NONE, None)
            .await?;
        Ok(count.count)
    }

    async fn cancel(&self, _by: &Actor, id: JobId) -> Result<JobState> {
        state(
            self.call(Method::POST, &path::CANCEL.of(id), &[], NONE, None)
                .await?,
        )
    }

    async fn retry(&self, _by: &Actor, id: JobId) -> Result<JobRecord> {
        let dto: JobDto = self
            .call(Method::POST, &path::RETRY.of(id), &[], NONE, None)
            .await?;
        job_from_dto(dto)
    }

    async fn create_queue(&self, _by: &Actor, name: &str, limit: QueueLimit) -> Result<QueueInfo> {
        let (limit, unlimited) = limit_fields(limit);
        let body = CreateQueueRequest {
            name: name.to_owned(),
            limit,
            unlimited,
            limits: RunLimitsDto::default(),
        };
        let dto: QueueDto = self
            .call(Method::POST, path::QUEUES.plain(), &[], Some(&body), None)
            .await?;
        dto.try_into()
    }

    async fn update_queue(
        &self,
        _by: &Actor,
        name: &str,
        update: QueueUpdate,
    ) -> Result<QueueInfo> {
        let (limit, unlimited) = update.limit.map_or((None, false), limit_fields);
        let body = UpdateQueueRequest {
            limit,
            unlimited,
            paused: update.paused,
            retention_ms: update.retention.and_then(Retention::as_millis),
            retain_forever: update.retention == Some(Retention::Forever),
            max_running: update.max_running,
            rate: update.rate.map(|rate| rate.map(RateDto::from)),
            max_running_per_key: update.max_running_per_key,
            rate_per_key: update.rate_per_key.map(|rate| rate.map(RateDto::from)),
        };
        let path = path::QUEUE.of(name);
        let dto: QueueDto = self
            .call(Method::PATCH, &path, &[], Some(&body), None)
            .await?;
        dto.try_into()
    }

    async fn delete_queue(&self, _by: &Actor, name: &str) -> Result<()> {
        let path = path::QUEUE.of(name);
        self.call_empty(Method::DELETE, &path, NONE).await
    }

    async fn queues(&self, _by: &Actor) -> Result<Vec<QueueInfo>> {
        let dtos: Vec<QueueDto> = self
            .call(Method::GET, path::QUEUES.plain(), &[], NONE, None)
            .await?;
        dtos.into_iter().map(QueueInfo::try_from).collect()
    }
}
