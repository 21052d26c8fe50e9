//! Lookups, history, listings and counts (F3, F8).

use std::time::Duration;

use super::harness::{Harness, noop, ok};
use crate::{
    Actor, Backend, BackendExt, CountFilter, Error, JobFilter, JobId, JobState, Owner, Reason,
    RetryPlan, StateCount,
};

fn backend(h: &Harness) -> &dyn Backend {
    h.admin.backend.as_ref()
}

pub(crate) async fn lookups_of_unknown_jobs_are_not_found(h: &Harness) {
    let missing = JobId(987_654);
    assert_error!(backend(h).job(&h.admin.actor, missing).await, Error::NotFound { id } if id == missing);
    assert_error!(
        backend(h).history(&h.admin.actor, missing).await,
        Error::NotFound { .. }
    );
}

pub(crate) async fn history_is_complete_and_gap_free(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let first = h.w(0).reserve_one(&[&queue]).await;
    ok(
        h.w(0)
            .fail(&first, "boom", RetryPlan::After(Duration::ZERO))
            .await,
        "fail",
    );
    let second = h.w(1).reserve_one(&[&queue]).await;
    ok(h.w(1).release(&second).await, "release");
    let third = h.w(1).reserve_one(&[&queue]).await;
    ok(h.w(1).complete(&third).await, "complete");
    let history = h.history(job.id).await;
    let rows: Vec<(u32, Option<JobState>, JobState, Reason, u32)> = history
        .iter()
        .map(|r| (r.seq, r.from, r.to, r.reason, r.attempt))
        .collect();
    use JobState::*;
    assert_eq!(
        rows,
        [
            (1, None, Available, Reason::Enqueued, 0),
            (2, Some(Available), Running, Reason::Reserved, 1),
            (3, Some(Running), Retrying, Reason::RetryScheduled, 1),
            (4, Some(Retrying), Running, Reason::Reserved, 2),
            (5, Some(Running), Available, Reason::Released, 2),
            (6, Some(Available), Running, Reason::Reserved, 2),
            (7, Some(Running), Succeeded, Reason::Completed, 2),
        ]
    );
    let actors: Vec<&Actor> = history.iter().map(|r| &r.actor).collect();
    assert_eq!(actors[0], &h.producer.actor);
    assert_eq!(actors[2], &Actor::Worker(h.w(0).id.clone()));
    assert_eq!(actors[6], &Actor::Worker(h.w(1).id.clone()));
    assert!(
        history
            .iter()
            .all(|r| r.at == h.now() && r.job_id == job.id)
    );
}

pub(crate) async fn jobs_are_listed_by_class_prefix(h: &Harness) {
    let queue = h.queue().await;
    let mut ids = std::collections::BTreeMap::new();
    for class in [
        "Mail::Welcome",
        "Mail::Reset",
        "Mailer",
        "Mail_x",
        "MailAx",
        "Report",
    ] {
        let mut job = noop().queue(&queue);
        job.class = class.into();
        ids.insert(class, h.enqueue(job).await.id);
    }
    let listed = |prefix: &str| {
        let filter = JobFilter {
            class_prefix: Some(prefix.into()),
            queue: Some(queue.clone()),
            ..JobFilter::default()
        };
        async move {
            let jobs = ok(backend(h).jobs(&h.admin.actor, filter).await, "list jobs");
            jobs.iter().map(|j| j.class.clone()).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("Mail::").await, ["Mail::Reset", "Mail::Welcome"]);
    assert_eq!(
        listed("Mail").await,
        ["MailAx", "Mail_x", "Mailer", "Mail::Reset", "Mail::Welcome"]
    );
    // Taken literally: `_` and `%` are no wildcards.
    assert_eq!(listed("Mail_").await, ["Mail_x"]);
    assert!(listed("Mail%").await.is_empty());
    assert!(listed("Mail::Welcome!").await.is_empty());
    assert_eq!(ids.len(), 6);
}

pub(crate) async fn jobs_filter_and_page_newest_first(h: &Harness) {
    let (a, b) = (h.queue().await, h.queue().await);
    let alice = Owner::new("User", "alice");
    let mut ids = Vec::new();
    for i in 0..6 {
        let queue = if i % 2 == 0 { &a } else { &b };
        let class = if i < 3 { "Mail" } else { "Report" };
        let mut job = noop().queue(queue);
        job.class = class.into();
        if i % 3 == 0 {
            job = job.owner(alice.clone());
        }
        ids.push(h.enqueue(job).await.id);
    }
    let run = h.w(0).reserve_one(&[&a]).await;
    ok(h.w(0).complete(&run).await, "complete");
    let list = |filter: JobFilter| async move {
        let jobs = ok(backend(h).jobs(&h.admin.actor, filter).await, "list jobs");
        jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    };
    let all = list(JobFilter::default()).await;
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    assert_eq!(all, newest_first);
    let in_a = list(JobFilter {
        queue: Some(a.clone()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(in_a, [ids[4], ids[2], ids[0]]);
    let reports = list(JobFilter {
        class: Some("Report".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(reports, [ids[5], ids[4], ids[3]]);
    let owned = list(JobFilter {
        owner: Some(alice.clone()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(owned, [ids[3], ids[0]]);
    let done = list(JobFilter {
        state: Some(JobState::Succeeded),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(done, [run.job.id]);
    // Cursor paging: two pages of three, then nothing.
    let page = |before| JobFilter {
        before,
        limit: 3,
        ..JobFilter::default()
    };
    let first = list(page(None)).await;
    let second = list(page(first.last().copied())).await;
    assert_eq!([first.clone(), second.clone()].concat(), newest_first);
    assert!(list(page(second.last().copied())).await.is_empty());
    // And back: the page just newer than the second page's first job is the first page.
    let back = |after| JobFilter {
        after,
        limit: 3,
        ..JobFilter::default()
    };
    assert_eq!(list(back(second.first().copied())).await, first);
    assert_eq!(
        list(back(Some(newest_first[4]))).await,
        newest_first[1..4].to_vec(),
        "the three just newer, newest first"
    );
    assert!(list(back(first.first().copied())).await.is_empty());
}

pub(crate) async fn jobs_filter_by_enqueue_time(h: &Harness) {
    let queue = h.queue().await;
    let start = h.now();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.enqueue(noop().queue(&queue)).await.id);
        h.advance(Duration::from_secs(60));
    }
    let minute = chrono::Duration::seconds(60);
    let list = |since, until| {
        let filter = JobFilter {
            queue: Some(queue.clone()),
            created_since: since,
            created_until: until,
            ..JobFilter::default()
        };
        async move {
            let jobs = ok(backend(h).jobs(&h.admin.actor, filter).await, "list jobs");
            jobs.iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Some(start + minute), None).await, [ids[2], ids[1]]);
    assert_eq!(list(None, Some(start + minute)).await, [ids[0]]);
    let window = list(Some(start + minute), Some(start + minute * 2)).await;
    assert_eq!(window, [ids[1]], "since is inclusive, until exclusive");
    assert!(list(Some(start + minute * 3), None).await.is_empty());
}

pub(crate) async fn counts_by_queue_state_and_owner(h: &Harness) {
    let (a, b) = (h.queue().await, h.queue().await);
    let bob = Owner::new("User", "bob");
    h.enqueue(noop().queue(&a).owner(bob.clone())).await;
    h.enqueue(noop().queue(&a).owner(bob.clone())).await;
    h.enqueue(noop().queue(&b).owner(bob.clone())).await;
    h.enqueue(noop().queue(&b)).await;
    let run = h.w(0).reserve_one(&[&a]).await;
    ok(h.w(0).complete(&run).await, "complete");
    let counts = |filter: CountFilter| async move {
        let mut groups = ok(backend(h).counts(&h.admin.actor, filter).await, "count");
        groups.sort_by(|x, y| (&x.queue, x.state).cmp(&(&y.queue, y.state)));
        groups
    };
    let group = |queue: &str, state, count| StateCount {
        queue: queue.to_owned(),
        state,
        count,
    };
    let in_a = counts(CountFilter {
        queue: Some(a.clone()),
        ..CountFilter::default()
    })
    .await;
    assert_eq!(
        in_a,
        [
            group(&a, JobState::Available, 1),
            group(&a, JobState::Succeeded, 1)
        ]
    );
    let bobs = counts(CountFilter {
        owner: Some(bob.clone()),
        ..CountFilter::default()
    })
    .await;
    assert_eq!(
        bobs,
        [
            group(&a, JobState::Available, 1),
            group(&a, JobState::Succeeded, 1),
            group(&b, JobState::Available, 1),
        ]
    );
    let per_state = ok(
        backend(h).owner_counts(&h.admin.actor, &bob).await,
        "owner counts",
    );
    assert_eq!(
        (per_state.get(JobState::Available), per_state.total()),
        (2, 3)
    );
    let nobody = ok(
        backend(h)
            .owner_counts(&h.admin.actor, &Owner::new("User", "nobody"))
            .await,
        "owner counts",
    );
    assert_eq!(nobody.total(), 0);
}
