//! Pruning on every database, at the level of the tables: nothing of a pruned job is left (no
//! history row, no upload, no chunk), every live job stays whole, and uploads abandoned by a
//! dead process go after a day. The dashboard's delete of finished jobs leaves nothing either,
//! and no live job goes.

use std::sync::Arc;
use std::time::Duration;

use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_backend_sql::{SqlBackend, SqlConfig, testing};
use outsourced_core::{
    Actor, Backend, NewJob, PruneOptions, QueueLimit, QueueUpdate, ReserveOptions, Retention,
    TestClock, Upload, WorkerInstance,
};
use serde_json::json;

use crate::support::on_every_database;

on_every_database!(
    pruning_leaves_no_orphan_rows,
    deleting_finished_jobs_leaves_no_orphan_rows
);

async fn rows(backend: &SqlBackend, sql: &str) -> i64 {
    let db = backend.connection();
    let statement = Statement::from_string(db.get_database_backend(), sql.to_owned());
    let row = db
        .query_one_raw(statement)
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index(0).expect("a count")
}

async fn pruning_leaves_no_orphan_rows(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let backend = SqlBackend::open_with_clock(config, clock.clone())
        .await
        .expect("open");
    let admin = Actor::Admin("root".into());
    let created = backend.create_queue(&admin, "files", QueueLimit::Unlimited);
    created.await.expect("a queue");
    let update = QueueUpdate {
        retention: Some(Retention::For(Duration::from_secs(3600))),
        ..QueueUpdate::default()
    };
    backend
        .update_queue(&admin, "files", update)
        .await
        .expect("retention");
    let shop = Actor::Producer("shop".into());
    // Three jobs with 2.5 MiB attachments (three chunks each): two finish, one stays live.
    let mut ids = Vec::new();
    for i in 0..3 {
        let file = Upload::from_bytes(vec![i as u8; 5 << 19]);
        let job = NewJob::new("Scan", json!([i])).queue("files");
        let stored = backend.enqueue_with_attachment(&shop, job, file).await;
        ids.push(stored.expect("enqueue").id);
    }
    let me = WorkerInstance::new("w1", "a");
    let run = backend
        .reserve(&me, ReserveOptions::up_to(2).queues(["files"]))
        .await;
    let leases: Vec<outsourced_core::Completion> = run
        .expect("reserve")
        .iter()
        .map(|r| r.lease.to_ref().into())
        .collect();
    backend
        .complete_batch(&me, &leases)
        .await
        .expect("complete");
    testing::abandoned_upload(&backend, vec![9u8; 1000])
        .await
        .expect("an upload");
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_uploads").await,
        4
    );
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_upload_chunks").await,
        10
    );
    clock.advance(Duration::from_secs(2 * 3600));
    let pruned = backend.prune(&admin, PruneOptions::default()).await;
    assert_eq!(pruned.expect("prune"), 2);
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_jobs").await,
        1
    );
    let history = "SELECT COUNT(DISTINCT job_id) FROM outsourced_job_history";
    assert_eq!(
        rows(&backend, history).await,
        1,
        "only the live job's history"
    );
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_uploads").await,
        2
    );
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_upload_chunks").await,
        4
    );
    let live = backend
        .attachment(&admin, ids[2])
        .await
        .expect("the live job's file");
    assert_eq!(live.bytes().await.expect("read").len(), 5 << 19);
    // A day on, the abandoned upload goes too; the live job's stays.
    clock.advance(Duration::from_secs(24 * 3600));
    backend
        .prune(&admin, PruneOptions::default())
        .await
        .expect("prune");
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_uploads").await,
        1
    );
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_upload_chunks").await,
        3
    );
}

async fn deleting_finished_jobs_leaves_no_orphan_rows(config: SqlConfig) {
    let backend = SqlBackend::open(config).await.expect("open");
    let admin = Actor::Admin("root".into());
    let created = backend.create_queue(&admin, "files", QueueLimit::Unlimited);
    created.await.expect("a queue");
    let shop = Actor::Producer("shop".into());
    let mut ids = Vec::new();
    for i in 0..3 {
        let file = Upload::from_bytes(vec![i as u8; 1000]);
        let job = NewJob::new("Scan", json!([i])).queue("files");
        let stored = backend.enqueue_with_attachment(&shop, job, file).await;
        ids.push(stored.expect("enqueue").id);
    }
    let me = WorkerInstance::new("w1", "a");
    let run = backend.reserve(&me, ReserveOptions::up_to(2).queues(["files"]));
    let leases: Vec<outsourced_core::Completion> = (run.await.expect("reserve"))
        .iter()
        .map(|r| r.lease.to_ref().into())
        .collect();
    let done = backend.complete_batch(&me, &leases).await;
    done.expect("complete");
    // Asked for all three, it deletes the two that finished.
    let deleted = backend.delete_finished(&ids).await.expect("delete");
    assert_eq!(deleted, 2);
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_jobs").await,
        1
    );
    let history = "SELECT COUNT(DISTINCT job_id) FROM outsourced_job_history";
    assert_eq!(
        rows(&backend, history).await,
        1,
        "only the live job's history"
    );
    assert_eq!(
        rows(&backend, "SELECT COUNT(*) FROM outsourced_uploads").await,
        1
    );
    let live = backend.job(&admin, ids[2]).await.expect("the live job");
    assert!(live.state.is_live());
    assert_eq!(backend.delete_finished(&ids).await.expect("delete"), 0);
    testing::counts_agree(&backend)
        .await
        .expect("the kept counts");
    // Folded, the ledger is empty and the summary alone says the same.
    assert_eq!(testing::fold_counts(&backend).await.expect("a fold"), 0);
    testing::counts_agree(&backend)
        .await
        .expect("the folded counts");
    // The check can fail: a ledger row that no job backs is found out.
    let db = backend.connection();
    let bogus =
        "INSERT INTO outsourced_state_deltas (queue, state, n) VALUES ('files', 'failed', 1)";
    let statement = Statement::from_string(db.get_database_backend(), bogus.to_owned());
    db.execute_raw(statement).await.expect("a bogus row");
    assert!(testing::counts_agree(&backend).await.is_err());
}
