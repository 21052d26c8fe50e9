//! Enqueueing inside the host application's own transaction, on every database: committed
//! means the jobs and their first history rows exist, rolled back means neither does, and a
//! refused batch leaves the caller's transaction usable; and callers that go away in the
//! middle of a write leave no pooled connection inside a transaction.

use std::sync::Arc;
use std::time::Duration;

use outsourced_backend_sql::sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};
use outsourced_backend_sql::{Flavor, SqlBackend, SqlConfig, testing};
use outsourced_core::{
    Actor, Backend, BackendExt, Error, JobState, NewJob, QueueLimit, Reason, ReserveOptions,
    TestClock, WorkerInstance,
};
use serde_json::json;

use crate::support::on_every_database;

on_every_database!(
    jobs_enqueued_in_a_committed_transaction_exist_with_their_history,
    a_rolled_back_transaction_leaves_no_job_no_history_and_no_taken_slot,
    a_refused_batch_leaves_the_callers_transaction_usable,
    a_duplicate_in_the_callers_transaction_says_so,
);

/// On every database: a write runs to its end in a task of its own, so no caller's going away
/// cuts it mid-query (on MariaDB a connection cut mid-query stayed unusable until the pool's
/// acquire timeout).
mod callers_that_go_away {
    use crate::support::Server;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        crate::support::on(
            None,
            super::callers_that_go_away_mid_write_leave_no_connection_inside_a_transaction,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        crate::support::on(
            Some(Server::Postgres),
            super::callers_that_go_away_mid_write_leave_no_connection_inside_a_transaction,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        crate::support::on(
            Some(Server::MariaDb),
            super::callers_that_go_away_mid_write_leave_no_connection_inside_a_transaction,
        )
        .await;
    }
}

/// Two backends on one database (an application process and a worker process), and the
/// application's own table.
async fn setup(config: &SqlConfig) -> (SqlBackend, SqlBackend) {
    let clock = Arc::new(TestClock::new());
    let open = || async {
        SqlBackend::open_with_clock(config.clone(), clock.clone())
            .await
            .expect("open the database")
    };
    let (app, worker) = (open().await, open().await);
    let sql = "CREATE TABLE shop_orders (id INTEGER PRIMARY KEY)";
    app.connection()
        .execute_unprepared(sql)
        .await
        .expect("create the application's table");
    (app, worker)
}

fn admin() -> Actor {
    Actor::Admin("root".into())
}

async fn place_order(txn: &DatabaseTransaction, id: i64) {
    let sql = format!("INSERT INTO shop_orders (id) VALUES ({id})");
    txn.execute_unprepared(&sql).await.expect("insert an order");
}

async fn orders(backend: &SqlBackend) -> i64 {
    let db = backend.connection();
    let sql = "SELECT COUNT(*) AS n FROM shop_orders".to_owned();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count orders")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

fn ship(order: i64) -> NewJob {
    NewJob::new("ShipOrder", json!({ "order": order })).queue("shipping")
}

async fn jobs_enqueued_in_a_committed_transaction_exist_with_their_history(config: SqlConfig) {
    let (by, root) = (Actor::application(), admin());
    let (app, worker) = setup(&config).await;
    let created = app.create_queue(&root, "shipping", QueueLimit::Max(10));
    created.await.expect("create the queue");
    let mut wakeups = testing::wakeups(&worker);
    wakeups.borrow_and_update();
    let txn = app.begin().await.expect("begin");
    place_order(&txn, 1).await;
    let jobs = app.enqueue_in(&txn, &by, vec![ship(1)]);
    let job = jobs.await.expect("enqueue in the transaction").remove(0);
    let unseen = worker.job(&root, job.id).await;
    assert!(
        matches!(unseen, Err(Error::NotFound { .. })),
        "invisible before the commit: {unseen:?}"
    );
    txn.commit().await.expect("commit");
    if app.flavor() == Flavor::Postgres {
        // The NOTIFY sent in the transaction reaches the other process at the commit.
        let woken = tokio::time::timeout(Duration::from_secs(30), wakeups.changed()).await;
        assert!(woken.is_ok(), "the worker process was not woken");
    }
    assert_eq!(orders(&worker).await, 1);
    let history = worker.history(&root, job.id).await.expect("history");
    let reasons: Vec<Reason> = history.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [Reason::Enqueued]);
    let me = WorkerInstance::new("w1", "a");
    let opts = ReserveOptions::up_to(5).queues(["shipping"]);
    let reserved = worker.reserve(&me, opts).await.expect("reserve");
    let ids: Vec<_> = reserved.iter().map(|r| r.job.id).collect();
    assert_eq!(ids, [job.id]);
}

async fn a_rolled_back_transaction_leaves_no_job_no_history_and_no_taken_slot(config: SqlConfig) {
    let (by, root) = (Actor::application(), admin());
    let (app, worker) = setup(&config).await;
    let created = app.create_queue(&root, "shipping", QueueLimit::Max(3));
    created.await.expect("create the queue");
    let txn = app.begin().await.expect("begin");
    place_order(&txn, 1).await;
    let jobs = app.enqueue_in(&txn, &by, (1..=3).map(ship).collect());
    let jobs = jobs.await.expect("enqueue in the transaction");
    txn.rollback().await.expect("roll back");
    assert_eq!(orders(&worker).await, 0);
    for job in &jobs {
        let gone = worker.job(&root, job.id).await;
        assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
        let history = worker.history(&root, job.id).await;
        assert!(
            matches!(history, Err(Error::NotFound { .. })),
            "{history:?}"
        );
    }
    let info = worker.queue(&root, "shipping").await.expect("the queue");
    assert_eq!(info.counts.total(), 0);
    // The three slots are free again: a full batch fits.
    let again = app.enqueue_batch(&by, (1..=3).map(ship).collect());
    assert_eq!(again.await.map(|ids| ids.len()).ok(), Some(3));
}

async fn a_refused_batch_leaves_the_callers_transaction_usable(config: SqlConfig) {
    let (by, root) = (Actor::application(), admin());
    let (app, worker) = setup(&config).await;
    for (queue, limit) in [("billing", 5), ("shipping", 1)] {
        let created = app.create_queue(&root, queue, QueueLimit::Max(limit));
        created.await.expect("create the queue");
    }
    let txn = app.begin().await.expect("begin");
    place_order(&txn, 1).await;
    // Billing has room, shipping not: the whole batch is refused, billing's slot included.
    let batch = vec![
        NewJob::new("Invoice", json!([1])).queue("billing"),
        ship(1),
        ship(2),
    ];
    let refused = app.enqueue_in(&txn, &by, batch).await;
    assert!(
        matches!(&refused, Err(Error::QueueFull { queue, .. }) if queue == "shipping"),
        "{refused:?}"
    );
    let jobs = app.enqueue_in(&txn, &by, vec![ship(1)]);
    let kept = jobs.await.expect("the transaction goes on").remove(0);
    place_order(&txn, 2).await;
    txn.commit().await.expect("commit");
    assert_eq!(orders(&worker).await, 2);
    let billing = worker.queue(&root, "billing").await.expect("billing");
    assert_eq!(billing.counts.total(), 0, "the refused batch left nothing");
    let shipping = worker.queue(&root, "shipping").await.expect("shipping");
    assert_eq!(shipping.counts.get(JobState::Available), 1);
    let stored = worker.job(&root, kept.id).await.expect("the kept job");
    assert_eq!(stored.state, JobState::Available);
}

/// Callers that go away at any moment of a write (reserves and unique enqueues cut short
/// after ever longer timeouts) leave no pooled connection inside a transaction, and no job leased to nobody:
/// the claim runs to its end in a task of its own and gives back what its caller did not
/// stay for. With one connection, each check gets it only once the cut-short write has given
/// it back.
async fn callers_that_go_away_mid_write_leave_no_connection_inside_a_transaction(
    mut config: SqlConfig,
) {
    config.max_connections = 1;
    let backend = SqlBackend::open(config).await.expect("open the database");
    let admin = Actor::Admin("root".into());
    backend
        .create_queue(&admin, "cut", QueueLimit::default())
        .await
        .expect("a queue");
    let producer = Actor::Producer("shop".into());
    let jobs: Vec<NewJob> = (0..400)
        .map(|i| NewJob::new("Send", json!([i])).queue("cut"))
        .collect();
    backend
        .enqueue_batch(&producer, jobs)
        .await
        .expect("jobs to lease");
    let worker = WorkerInstance::new("w1", "a");
    let mut taken = 0;
    for micros in 0..400u64 {
        let reserve = backend.reserve(&worker, ReserveOptions::up_to(1).queues(["cut"]));
        if let Ok(Ok(jobs)) = tokio::time::timeout(Duration::from_micros(micros * 5), reserve).await
        {
            taken += jobs.len();
        }
        // At once: the next write's BEGIN would end a transaction left open.
        assert!(
            !left_open(&backend).await,
            "a reserve cut short after {micros}x5 us left a pooled connection inside a transaction"
        );
    }
    // Jobs leased for callers that went away are given back by their claim's task, as soon
    // as it finds no one to answer: in the end only the jobs handed out are running.
    let running = || async {
        let counts = backend.counts(&admin, Default::default()).await;
        outsourced_core::by_state(&counts.expect("counts")).get(JobState::Running)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while running().await != taken as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} jobs running, {taken} handed out",
            running().await
        );
        tokio::task::yield_now().await;
    }
    // Unique enqueues write in a transaction of their own (not in the group commit's task):
    // cut short the same way, they too leave no connection inside a transaction.
    for micros in 0..200u64 {
        let once = outsourced_core::Unique::key(format!("cut-{micros}"));
        let job = NewJob::new("Send", json!([micros]))
            .queue("cut")
            .unique(once);
        let enqueue = backend.enqueue(&producer, job);
        let _ = tokio::time::timeout(Duration::from_micros(micros * 5), enqueue).await;
        assert!(
            !left_open(&backend).await,
            "a unique enqueue cut short after {micros}x5 us left a pooled connection inside a transaction"
        );
    }
    let job = NewJob::new("Send", json!([])).queue("cut");
    let job = backend
        .enqueue(&producer, job)
        .await
        .expect("an enqueue after it all");
    assert_eq!(job.state, JobState::Available);
}

/// Whether the backend's one connection is inside a transaction. On PostgreSQL, statements
/// outside a transaction each get a transaction id of their own, and two inside one share it;
/// MariaDB says it of the session itself. SQLite and MySQL have no such check: there the
/// backend only has to keep working.
async fn left_open(backend: &SqlBackend) -> bool {
    let (sql, times) = match backend.flavor() {
        Flavor::MariaDb => ("SELECT CAST(@@in_transaction AS SIGNED)", 1),
        Flavor::Postgres => ("SELECT pg_current_xact_id()::text::int8", 2),
        Flavor::MySql | Flavor::Sqlite => return false,
    };
    let db = backend.connection();
    let mut answers = Vec::new();
    for _ in 0..times {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("a query")
            .expect("a row");
        answers.push(row.try_get_by_index::<i64>(0).expect("a number"));
    }
    match backend.flavor() {
        Flavor::Postgres => answers[0] == answers[1],
        _ => answers[0] != 0,
    }
}

/// A unique job enqueued in the caller's transaction: `enqueue_each_in` says which jobs were
/// duplicates (their records are the holder's), and a duplicate stores nothing.
async fn a_duplicate_in_the_callers_transaction_says_so(config: SqlConfig) {
    let (by, root) = (Actor::application(), admin());
    let (app, worker) = setup(&config).await;
    let created = app.create_queue(&root, "shipping", QueueLimit::Max(10));
    created.await.expect("create the queue");
    let once = || ship(7).unique(outsourced_core::Unique::key("order-7"));
    let txn = app.begin().await.expect("begin");
    let first = app.enqueue_each_in(&txn, &by, vec![once()]).await;
    let (first, duplicate) = first.expect("enqueue in the transaction").remove(0);
    assert!(!duplicate);
    txn.commit().await.expect("commit");
    let txn = app.begin().await.expect("begin");
    let again = app.enqueue_each_in(&txn, &by, vec![once(), ship(8)]).await;
    let again = again.expect("enqueue again");
    txn.commit().await.expect("commit");
    let flags: Vec<bool> = again.iter().map(|(_, duplicate)| *duplicate).collect();
    assert_eq!(flags, [true, false]);
    assert_eq!(again[0].0.id, first.id, "the holder answers");
    let shipping = worker.queue(&root, "shipping").await.expect("the queue");
    assert_eq!(shipping.counts.total(), 2, "the duplicate stored nothing");
}
