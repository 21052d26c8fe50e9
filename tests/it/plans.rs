//! The claim query reads the reserve index of its queue on every database, with a backlog of
//! finished jobs beside the waiting ones (on PostgreSQL the reserve indexes are partial, holding
//! waiting jobs only: the claim's conditions must imply theirs for the planner to use them).

use outsourced_backend_sql::sea_orm::ConnectionTrait;
use outsourced_backend_sql::{Flavor, SqlBackend, SqlConfig, testing};
use outsourced_core::{
    Actor, Backend, Completion, NewJob, QueueLimit, ReserveOptions, WorkerInstance,
};
use serde_json::json;

use crate::support::on_every_database;

on_every_database!(the_claim_reads_its_queues_reserve_index);

async fn the_claim_reads_its_queues_reserve_index(config: SqlConfig) {
    let sql = SqlBackend::open(config).await.expect("open");
    let admin = Actor::Admin("root".into());
    for queue in ["q", "other"] {
        let created = sql.create_queue(&admin, queue, QueueLimit::Unlimited);
        created.await.expect("a queue");
    }
    let jobs: Vec<NewJob> = ["q", "other"]
        .iter()
        .flat_map(|queue| (0..1000).map(|_| NewJob::new("Work", json!([])).queue(*queue)))
        .collect();
    sql.enqueue_batch(&admin, jobs).await.expect("stored");
    // Half of them finished: rows the claim must not wade through.
    let me = WorkerInstance::new("w", "i");
    for _ in 0..10 {
        let reserved = sql.reserve(&me, ReserveOptions::up_to(100)).await;
        let done: Vec<Completion> = reserved
            .expect("reserve")
            .iter()
            .map(|r| r.lease.to_ref().into())
            .collect();
        sql.complete_batch(&me, &done).await.expect("complete");
    }
    if sql.flavor() == Flavor::Postgres {
        // Statistics, as autovacuum would have gathered them by now in a real database.
        let analyzed = sql
            .connection()
            .execute_unprepared("ANALYZE outsourced_jobs");
        analyzed.await.expect("analyze");
    }
    let opts = ReserveOptions::up_to(10).queues(["q"]);
    let plan = testing::reserve_plan(&sql, &opts).await.expect("a plan");
    assert!(
        plan.iter()
            .any(|line| line.contains("outsourced_jobs_queue_reserve")),
        "{:?}: the claim should read the queue's reserve index:\n{}",
        sql.flavor(),
        plan.join("\n")
    );
}
