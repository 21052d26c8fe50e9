//! Authorization: who may see and touch what. Denials of a job or queue the caller may not
//! see are 404 whether or not it exists, so they reveal nothing.

use outsourced_backend_http::wire::NewJobDto;
use outsourced_backend_sql::Role;
use outsourced_core::{
    Actor, Backend, BatchId, BatchInfo, Error, JobId, JobRecord, NewJob, WorkerInstance,
};

use super::roles::{Route, permit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The actor the backend records for a caller that is not acting as a worker instance.
pub(crate) fn actor(caller: &Caller) -> Actor {
    let name = caller.principal.name.clone();
    match caller.principal.role {
        Role::Producer => Actor::Producer(name),
        Role::Admin => Actor::Admin(name),
        Role::Worker => Actor::Worker(WorkerInstance::new(name, "-")),
    }
}

/// The worker instance of a worker's request on `route` (one of the workers' routes): its
/// authenticated name and the instance id it sends.
pub(crate) fn instance(caller: &Caller, route: Route, instance: &str) -> ApiResult<WorkerInstance> {
    permit(caller, route)?;
    let ok = !instance.is_empty()
        && instance.len() <= 64
        && instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(ApiError::bad_request(
            "instance must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(WorkerInstance::new(caller.principal.name.clone(), instance))
}

/// A reserve's worker instance (see [`instance`]), refused when the request names another
/// worker than its credentials' (a config that holds another worker's keys).
pub(crate) fn reserving(
    caller: &Caller,
    worker: Option<&str>,
    instance_id: &str,
) -> ApiResult<WorkerInstance> {
    let by = instance(caller, Route::Reserve, instance_id)?;
    match worker {
        // Quoted as Rust quotes it: the name is the client's, control characters and all.
        Some(named) if named != by.worker => Err(ApiError::bad_request(format!(
            "these credentials are worker {}'s, and the request names worker {named:?}: a worker's config holds its own keys (`outsourcer worker config NAME -o FILE` writes them)",
            by.worker,
        ))),
        _ => Ok(by),
    }
}

/// Whether the caller may use a queue: an admin any, a worker those it is hired for, a
/// producer those it was granted.
pub(crate) fn may_use_queue(caller: &Caller, queue: &str) -> bool {
    caller.principal.role == Role::Admin || caller.principal.queues.iter().any(|q| q == queue)
}

/// A queue the caller may use, else `UnknownQueue` (404) as if it did not exist: its
/// message says either may be why, whether or not it exists, so it tells nothing (or names
/// the caller's own queue that the name is a typo of).
pub(crate) fn queue_access(caller: &Caller, queue: &str) -> ApiResult<()> {
    if may_use_queue(caller, queue) {
        return Ok(());
    }
    let unknown = Error::UnknownQueue {
        queue: queue.to_owned(),
    };
    // Only among the queues it was granted: naming another would tell that it exists.
    let message = match outsourced_core::closest_name(queue, &caller.principal.queues) {
        Some(meant) => format!("{unknown}: did you mean {meant}?"),
        None => format!(
            "{unknown}, or one this {} was not granted (`outsourcer producer grant NAME {queue}`)",
            caller.principal.role
        ),
    };
    Err(ApiError::from(unknown).with_message(message))
}

fn not_found(id: JobId) -> ApiError {
    Error::NotFound { id }.into()
}

/// A job the caller may read: an admin any; a producer those it enqueued; a worker those whose
/// lease it holds. Otherwise 404.
pub(crate) async fn readable_job(
    state: &AppState,
    caller: &Caller,
    id: JobId,
) -> ApiResult<JobRecord> {
    let admin = Actor::Admin("server".into());
    let job = state.backend().job(&admin, id).await?;
    let visible = match caller.principal.role {
        Role::Admin => true,
        Role::Producer => job.enqueued_by == actor(caller),
        Role::Worker => job
            .lease
            .as_ref()
            .is_some_and(|l| l.holder.worker == caller.principal.name),
    };
    if visible { Ok(job) } else { Err(not_found(id)) }
}

/// A worker may report on jobs of the queues it is hired for (stale leases are then the
/// backend's 409); any other job is 404.
pub(crate) async fn lease_access(state: &AppState, caller: &Caller, id: JobId) -> ApiResult<()> {
    let admin = Actor::Admin("server".into());
    match state.backend().job(&admin, id).await {
        Ok(job) if may_use_queue(caller, &job.queue) => Ok(()),
        Ok(_) | Err(Error::NotFound { .. }) => Err(not_found(id)),
        Err(error) => Err(error.into()),
    }
}

/// The jobs a new job of `owner` may wait for: an admin's, any; anyone else's, those it
/// enqueued. Another's is refused in the words the backend uses for a job that does not exist,
/// so that nothing about it shows.
pub(crate) async fn dependencies_of(
    state: &AppState,
    owner: &Actor,
    on: &[JobId],
) -> Result<(), Error> {
    if matches!(owner, Actor::Admin(_)) {
        return Ok(());
    }
    let admin = Actor::Admin("server".into());
    for &id in on {
        match state.backend().job(&admin, id).await {
            Ok(job) if job.enqueued_by == *owner => {}
            Ok(_) | Err(Error::NotFound { .. }) => {
                return Err(Error::invalid(format!(
                    "job {id}, which this job would depend on, does not exist"
                )));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Batch `id` if `owner` opened it (an admin: any batch), else `Unknown` as if it did not
/// exist.
pub(crate) async fn batch_of(
    state: &AppState,
    owner: &Actor,
    id: BatchId,
) -> Result<BatchInfo, Error> {
    let admin = Actor::Admin("server".into());
    let batch = state.backend().batch(&admin, id).await?;
    if matches!(owner, Actor::Admin(_)) || batch.created_by == *owner {
        return Ok(batch);
    }
    Err(Error::Unknown {
        kind: "batch",
        name: id.to_string(),
    })
}

/// What a new job of `owner` may name beyond its queue: the jobs it waits for and its batch.
pub(crate) async fn links_of(state: &AppState, owner: &Actor, job: &NewJob) -> Result<(), Error> {
    dependencies_of(state, owner, &job.depends_on).await?;
    if let Some(batch) = job.batch {
        batch_of(state, owner, batch).await?;
    }
    Ok(())
}

/// The follow-ups a worker's success on job `id` may store, as jobs: into the queues the job's
/// producer may enqueue into now (an admin's jobs: any; a producer principal's: those granted
/// to it, none while it is locked; anyone else's: none). A follow-up into another queue is
/// `UnknownQueue`, as a producer's enqueue there would be, and says that a grant to the job's
/// producer may be what is missing; one that is not a job is `InvalidInput`.
pub(crate) async fn follow_ups(
    state: &AppState,
    id: JobId,
    asked: Vec<NewJobDto>,
) -> ApiResult<Vec<NewJob>> {
    let jobs = asked
        .into_iter()
        .map(NewJob::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    if jobs.is_empty() {
        return Ok(jobs);
    }
    let admin = Actor::Admin("server".into());
    let owner = state.backend().job(&admin, id).await?.enqueued_by;
    for job in &jobs {
        links_of(state, &owner, job).await?;
    }
    let allowed = match &owner {
        Actor::Admin(_) => return Ok(jobs),
        Actor::Producer(name) => match state.directory().get(Role::Producer, name).await {
            Ok(producer) if !producer.locked => producer.queues,
            Err(error @ Error::Backend { .. }) => return Err(error.into()),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let Some(refused) = jobs.iter().find(|job| !allowed.contains(&job.queue)) else {
        return Ok(jobs);
    };
    let queue = refused.queue.clone();
    let hint = match &owner {
        Actor::Producer(name) => format!(
            "or one that job {id}'s producer {name} was not granted (`outsourcer producer grant {name} {queue}`)"
        ),
        // Only a producer principal is granted queues; the rest enqueue follow-ups nowhere.
        other => format!(
            "or one that job {id}'s producer ({other}) may not enqueue into: only an admin's or a producer principal's jobs have follow-ups"
        ),
    };
    let unknown = Error::UnknownQueue { queue };
    let message = format!("a follow-up into {unknown}: {hint}");
    Err(ApiError::from(unknown).with_message(message))
}
