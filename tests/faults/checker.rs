//! The after-run checker (reliability-cases.md §7): every acknowledged enqueue is stored and
//! ended exactly once, every job of the run has ended with nothing leased, and every history
//! is whole: numbered from 1 without gaps, each row starting where the one before ended,
//! attempts counted right, and every attempt but the last ended by a row that says how (the
//! lease expired, a retry, a release).

use std::collections::{HashMap, HashSet};

use outsourced_backend_sql::SqlBackend;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_core::{Backend, HistoryEntry, JobFilter, JobId, JobRecord, JobState, Reason};

use crate::cluster::{QUEUE, admin, say};

/// What the checker counted.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Jobs in the queue.
    pub(crate) jobs: usize,
    /// Attempts ended by an expired lease.
    pub(crate) expired: usize,
    /// Attempts made, over all jobs.
    pub(crate) attempts: usize,
    /// Every job's history, by id.
    pub(crate) histories: HashMap<JobId, Vec<HistoryEntry>>,
}

/// Checks the run's database; `acknowledged` are the enqueues the server answered 2xx.
/// Every job must have succeeded.
pub(crate) async fn check(scenario: &str, sql: &SqlBackend, acknowledged: &[JobId]) -> Report {
    let jobs = all_jobs(sql).await;
    let ids: HashSet<JobId> = jobs.iter().map(|job| job.id).collect();
    for id in acknowledged {
        assert!(ids.contains(id), "acknowledged job {id} was lost");
    }
    let unique: HashSet<&JobId> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len(), "an id acknowledged twice");
    // Every enqueue that was tried again carried its unique key: none is stored twice.
    assert_eq!(
        jobs.len(),
        acknowledged.len(),
        "jobs stored that no enqueue acknowledged (a retried enqueue stored twice)"
    );
    let mut report = Report {
        jobs: jobs.len(),
        ..Report::default()
    };
    for job in &jobs {
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "job {} ended {}",
            job.id,
            job.state
        );
        assert!(job.lease.is_none(), "job {} still holds a lease", job.id);
        let history = sql.history(&admin(), job.id).await.expect("a history");
        let (attempts, expired) = check_history(job, &history);
        report.attempts += attempts;
        report.expired += expired;
        report.histories.insert(job.id, history);
    }
    integrity(sql).await;
    say(
        scenario,
        format!(
            "checked {} jobs, each acknowledged once (retried enqueues stored nothing \
             twice): each succeeded exactly once, nothing leased, every history gap-free \
             with {} attempts, {} of them ended by an expired lease",
            report.jobs, report.attempts, report.expired
        ),
    );
    report
}

/// Checks one job's history; returns its attempts and how many ended by expiry.
fn check_history(job: &JobRecord, history: &[HistoryEntry]) -> (usize, usize) {
    let id = job.id;
    let seqs: Vec<u32> = history.iter().map(|row| row.seq).collect();
    let expected: Vec<u32> = (1..=history.len() as u32).collect();
    assert_eq!(seqs, expected, "job {id}: history numbered with gaps");
    assert_eq!(
        history[0].reason,
        Reason::Enqueued,
        "job {id} starts enqueued"
    );
    assert_eq!(history[0].from, None);
    for pair in history.windows(2) {
        assert_eq!(
            pair[1].from,
            Some(pair[0].to),
            "job {id}: {pair:?} do not join"
        );
    }
    let mut attempt = 0;
    let mut expired = 0;
    let mut open = false;
    for row in &history[1..] {
        match row.reason {
            Reason::Reserved => {
                assert!(!open, "job {id}: leased again while leased: {history:?}");
                attempt += 1;
                assert_eq!(row.attempt, attempt, "job {id}: attempts counted wrong");
                open = true;
            }
            Reason::LeaseExpired | Reason::RetryScheduled | Reason::Completed => {
                assert!(
                    open,
                    "job {id}: an attempt ended without a lease: {history:?}"
                );
                expired += usize::from(row.reason == Reason::LeaseExpired);
                open = false;
            }
            Reason::Released => {
                // Given back: the attempt is not counted.
                assert!(open, "job {id}: released without a lease");
                attempt -= 1;
                open = false;
            }
            other => panic!("job {id}: unexpected {other} in {history:?}"),
        }
    }
    let completed = history.iter().filter(|row| row.reason == Reason::Completed);
    assert_eq!(completed.count(), 1, "job {id} completed once: {history:?}");
    assert_eq!(
        history.last().map(|row| row.reason),
        Some(Reason::Completed)
    );
    assert_eq!(
        job.attempts, attempt,
        "job {id}: its attempts and its history agree"
    );
    (attempt as usize, expired)
}

async fn all_jobs(sql: &SqlBackend) -> Vec<JobRecord> {
    let mut jobs = Vec::new();
    let mut before = None;
    loop {
        let filter = JobFilter {
            queue: Some(QUEUE.into()),
            before,
            limit: 500,
            ..JobFilter::default()
        };
        let page = sql.jobs(&admin(), filter).await.expect("a page of jobs");
        let Some(last) = page.last() else {
            return jobs;
        };
        before = Some(last.id);
        jobs.extend(page);
    }
}

/// SQLite's own check of the file: `PRAGMA integrity_check` says `ok`.
async fn integrity(sql: &SqlBackend) {
    if sql.flavor() != outsourced_backend_sql::Flavor::Sqlite {
        return;
    }
    let db = sql.connection();
    let statement = Statement::from_string(db.get_database_backend(), "PRAGMA integrity_check");
    let row = db.query_one_raw(statement).await.expect("integrity_check");
    let verdict: String = row
        .and_then(|row| row.try_get_by_index(0).ok())
        .unwrap_or_default();
    assert_eq!(verdict, "ok", "SQLite's integrity check");
}
