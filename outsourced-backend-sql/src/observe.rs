//! Telling the backend's [`Observer`] what happened, once it is committed.
//!
//! The code that changes jobs records events as it goes (`record`), into a buffer that
//! [`SqlBackend::observed`] opens around one backend call; when the call succeeds, and so its
//! transaction committed, the events go to the observer. A call that fails drops them, so
//! nothing rolled back is ever counted. Without an observer nothing is buffered.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::SqlBackend;
use crate::convert::time;
use crate::entity::job;
use outsourced_core::{Event, JobEvent, Outcome, Result};

tokio::task_local! {
    static PENDING: RefCell<Vec<Pending>>;
}

/// What happened, kept until the commit.
pub(crate) enum Happened {
    Enqueued,
    Started(Duration),
    Ended(Outcome, Duration),
    Retried,
}

struct Pending {
    queue: String,
    class: String,
    happened: Happened,
}

impl Pending {
    fn event(&self) -> JobEvent<'_> {
        let (queue, class) = (self.queue.as_str(), self.class.as_str());
        match self.happened {
            Happened::Enqueued => JobEvent::Enqueued { queue, class },
            Happened::Started(waited) => JobEvent::Started {
                queue,
                class,
                waited,
            },
            Happened::Ended(outcome, ran) => JobEvent::Ended {
                queue,
                class,
                outcome,
                ran,
            },
            Happened::Retried => JobEvent::Retried { queue, class },
        }
    }
}

/// Records that `happened` to the job in `row`, if a call is being observed.
pub(crate) fn record(row: &job::Model, happened: Happened) {
    let _ = PENDING.try_with(|pending| {
        pending.borrow_mut().push(Pending {
            queue: row.queue.clone(),
            class: row.class.clone(),
            happened,
        });
    });
}

/// How many events the observed call has recorded so far (0 when none is observed).
pub(crate) fn mark() -> usize {
    PENDING
        .try_with(|pending| pending.borrow().len())
        .unwrap_or(0)
}

/// Forgets the events recorded since `mark`: their transaction was rolled back.
pub(crate) fn forget_since(mark: usize) {
    let _ = PENDING.try_with(|pending| pending.borrow_mut().truncate(mark));
}

/// Records the end of an attempt, or an admin's retry, for a step of a job's transition from
/// `from` at `now`.
pub(crate) fn record_step(row: &job::Model, event: Event, now: DateTime<Utc>) {
    let ran = row
        .started_at
        .map(|started| (now - time(started)).to_std().unwrap_or_default())
        .unwrap_or_default();
    let outcome = match event {
        Event::Complete => Outcome::Completed,
        Event::Fail { retry: true } => Outcome::RetryScheduled,
        Event::Fail { retry: false } => Outcome::Failed,
        Event::Expire { .. } => Outcome::Reclaimed,
        Event::Release => Outcome::Released,
        Event::Cancel if row.state == "running" => Outcome::Released,
        Event::Retry => return record(row, Happened::Retried),
        _ => return,
    };
    record(row, Happened::Ended(outcome, ran));
}

impl SqlBackend {
    /// Runs one backend call, and when it succeeds tells the observer what it did. (Boxed:
    /// the calls are deep futures, and this keeps the caller's small.)
    pub(crate) fn observed<'a, T: Send + 'a>(
        &'a self,
        call: impl Future<Output = Result<T>> + Send + 'a,
    ) -> Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>> {
        Box::pin(async move {
            let Some(observer) = self.observer() else {
                return call.await;
            };
            let (result, pending) = PENDING
                .scope(RefCell::new(Vec::new()), async {
                    let result = call.await;
                    (result, PENDING.with(RefCell::take))
                })
                .await;
            if result.is_ok() {
                for one in &pending {
                    observer.observe(one.event());
                }
            }
            result
        })
    }
}
