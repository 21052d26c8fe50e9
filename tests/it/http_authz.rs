//! The authorization matrix: every route against the rightful worker, a worker of another
//! queue, a producer, another producer, no credentials, and an admin.

use outsourced_backend_sql::{Credentials, Role, SqlBackend};
use outsourced_core::{
    Actor, Backend, JobId, NewBatch, NewJob, QueueLimit, ReserveOptions, Upload, WorkerInstance,
};
use outsourced_server::{Grant, ROLES, Route, ServerConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::http::RunningServer;
use crate::signing::Signed;
use crate::support::test_config;

/// The callers, in the order of every row below.
const CALLERS: [&str; 6] = [
    "worker",
    "other worker",
    "producer",
    "other producer",
    "nobody",
    "admin",
];

/// The role of each caller of [`CALLERS`] (none for the unsigned one).
const ROLE_OF: [Option<Role>; 6] = [
    Some(Role::Worker),
    Some(Role::Worker),
    Some(Role::Producer),
    Some(Role::Producer),
    None,
    Some(Role::Admin),
];

struct World {
    server: RunningServer,
    callers: Vec<Option<Credentials>>,
    running: JobId,
    token: String,
    waiting: JobId,
    /// A batch the producer `shop` opened.
    batch: i64,
    /// The routes [`World::row`] has checked.
    exercised: std::sync::Mutex<Vec<Route>>,
}

impl World {
    async fn new() -> World {
        let sql = SqlBackend::open(test_config("sqlite::memory:"))
            .await
            .expect("open");
        let server = RunningServer::start(sql, ServerConfig::default()).await;
        let admin = Actor::Admin("root".into());
        for queue in ["a", "b"] {
            server
                .sql
                .create_queue(&admin, queue, QueueLimit::default())
                .await
                .expect("a queue");
        }
        let mut callers = Vec::new();
        for (role, name, queue) in [
            (Role::Worker, "w1", Some("a")),
            (Role::Worker, "w2", Some("b")),
            (Role::Producer, "shop", Some("a")),
            (Role::Producer, "shop2", Some("b")),
        ] {
            let (_, credentials) = server.client(role, name).await;
            if let Some(queue) = queue {
                server
                    .directory()
                    .grant(role, name, queue)
                    .await
                    .expect("access");
            }
            callers.push(Some(credentials));
        }
        callers.push(None);
        callers.push(Some(server.client(Role::Admin, "root").await.1));
        let shop = Actor::Producer("shop".into());
        let job = |queue: &str| NewJob::new("Work", json!([])).queue(queue);
        let file = Upload::from_bytes(b"the running job's file".to_vec());
        let running = server.sql.enqueue_with_attachment(&shop, job("a"), file);
        let running = running.await.expect("a job").id;
        let w1 = WorkerInstance::new("w1", "i");
        let reserved = server
            .sql
            .reserve(&w1, ReserveOptions::up_to(1).queues(["a"]))
            .await
            .expect("reserve");
        let token = reserved[0].lease.token.clone();
        let waiting = server.sql.enqueue(&shop, job("a")).await.expect("a job").id;
        server
            .sql
            .enqueue(&Actor::Producer("shop2".into()), job("b"))
            .await
            .expect("a job");
        let callback = NewJob::new("Report", json!({})).queue("a");
        let batch = server.sql.open_batch(&shop, NewBatch::new(callback));
        let batch = batch.await.expect("a batch").counts.id.0;
        World {
            server,
            callers,
            running,
            token,
            waiting,
            batch,
            exercised: std::sync::Mutex::default(),
        }
    }

    /// Calls a route as caller `i`; returns the status and the JSON answer.
    async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/v1/{path}", self.server.url);
        let response = match &self.callers[i] {
            Some(c) => {
                Signed::new(method, &url, &c.consumer_key, body)
                    .sign(&c.consumer_secret)
                    .send()
                    .await
            }
            None => {
                let request = reqwest::Client::new().request(method, url);
                let request = match body {
                    Some(body) => request.json(&body),
                    None => request,
                };
                request.send().await.expect("an answer")
            }
        };
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Checks a route's status for every caller (`expected` in the order of [`CALLERS`]),
    /// and first that the expected 403s are exactly the roles `ROLES` refuses on `route`.
    async fn row(
        &self,
        route: Route,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: [u16; 6],
    ) {
        self.exercised.lock().expect("not poisoned").push(route);
        for (i, want) in expected.into_iter().enumerate() {
            if let Some(role) = ROLE_OF[i] {
                let refused = route.grant(role) == Grant::Refused;
                assert_eq!(
                    want == 403,
                    refused,
                    "{method} {path} as {}: this row disagrees with ROLES",
                    CALLERS[i]
                );
            }
        }
        for (i, want) in expected.into_iter().enumerate() {
            let (got, answer) = self.call(i, method.clone(), path, body.clone()).await;
            assert_eq!(got, want, "{method} {path} as {}: {answer}", CALLERS[i]);
        }
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_table_says() {
    let w = World::new().await;
    let (running, waiting) = (w.running.0, w.waiting.0);
    let lease = json!({"instance": "i", "token": w.token});
    //                                                          w1   w2   shop shop2 none admin
    w.row(
        Route::ReadJob,
        Method::GET,
        &format!("jobs/{running}"),
        None,
        [200, 404, 200, 404, 401, 200],
    )
    .await;
    w.row(
        Route::ReadJob,
        Method::GET,
        &format!("jobs/{running}/history"),
        None,
        [200, 404, 200, 404, 401, 200],
    )
    .await;
    w.row(
        Route::ReadJob,
        Method::GET,
        &format!("jobs/{waiting}"),
        None,
        [404, 404, 200, 404, 401, 200],
    )
    .await;
    w.row(
        Route::ListJobs,
        Method::GET,
        "jobs",
        None,
        [403, 403, 200, 200, 401, 200],
    )
    .await;
    w.row(
        Route::ListJobs,
        Method::GET,
        "counts",
        None,
        [403, 403, 200, 200, 401, 200],
    )
    .await;
    w.row(
        Route::Maintain,
        Method::POST,
        "reclaim",
        Some(json!({"limit": 10})),
        [403, 403, 403, 403, 401, 200],
    )
    .await;
    w.row(
        Route::Maintain,
        Method::POST,
        "prune",
        Some(json!({"limit": 10})),
        [403, 403, 403, 403, 401, 200],
    )
    .await;
    w.row(
        Route::Maintain,
        Method::POST,
        &format!("jobs/{waiting}/retry"),
        None,
        [403, 403, 403, 403, 401, 409],
    )
    .await;
    w.row(
        Route::ManageQueues,
        Method::POST,
        "queues",
        Some(json!({"name": "c"})),
        [403, 403, 403, 403, 401, 201],
    )
    .await;
    w.row(
        Route::ManageQueues,
        Method::PATCH,
        "queues/c",
        Some(json!({"paused": true})),
        [403, 403, 403, 403, 401, 200],
    )
    .await;
    w.row(
        Route::Lease,
        Method::POST,
        &format!("jobs/{running}/heartbeat"),
        Some(lease.clone()),
        [200, 404, 403, 403, 401, 403],
    )
    .await;
    let enqueue = json!({"class": "Work", "queue": "a"});
    w.row(
        Route::Enqueue,
        Method::POST,
        "jobs",
        Some(enqueue),
        [403, 403, 201, 404, 401, 201],
    )
    .await;
    // Attachments: read by the lease holder, the producer and admins; attached (once, before
    // any worker leases the job) by the producer or an admin.
    w.row(
        Route::ReadJob,
        Method::GET,
        &format!("jobs/{running}/attachment"),
        None,
        [200, 404, 200, 404, 401, 200],
    )
    .await;
    w.row(
        Route::Attach,
        Method::PUT,
        &format!("jobs/{waiting}/attachment"),
        Some(json!({"a": "file"})),
        [403, 403, 201, 404, 401, 409],
    )
    .await;
    w.row(
        Route::ReadJob,
        Method::GET,
        &format!("jobs/{waiting}/attachment"),
        None,
        [404, 404, 200, 404, 401, 200],
    )
    .await;
    w.row(
        Route::Attach,
        Method::PUT,
        &format!("jobs/{running}/attachment"),
        Some(json!({"a": "file"})),
        [403, 403, 409, 404, 401, 409],
    )
    .await;
    // Cancel a job: its producer and admins only (the waiting job is cancelled by the first).
    w.row(
        Route::Cancel,
        Method::POST,
        &format!("jobs/{waiting}/cancel"),
        None,
        [403, 403, 200, 404, 401, 200],
    )
    .await;
    // Reports on a lease: only the worker whose queue it is, with the token.
    let failure = json!({"instance": "i", "token": w.token, "error": {"message": "x"}, "retry": {"kind": "backoff"}});
    for (route, body, rightful) in [
        ("fail", failure, 200),
        ("release", lease.clone(), 409),
        ("complete", lease.clone(), 409),
    ] {
        // The rightful worker's failure ends the attempt, so its release and complete are stale.
        let path = format!("jobs/{running}/{route}");
        w.row(
            Route::Lease,
            Method::POST,
            &path,
            Some(body),
            [rightful, 404, 403, 403, 401, 403],
        )
        .await;
    }
    let batch = json!({"instance": "i", "leases": [{"id": running, "token": w.token}]});
    w.row(
        Route::Lease,
        Method::POST,
        "complete",
        Some(batch),
        [200, 200, 403, 403, 401, 403],
    )
    .await;
    let (_, answer) = w
        .call(
            1,
            Method::POST,
            "complete",
            Some(json!({"instance": "i", "leases": [{"id": running, "token": w.token}]})),
        )
        .await;
    assert_eq!(
        answer["results"][0]["code"], "not_found",
        "another queue's job is not found"
    );
    w.row(
        Route::ReleaseAll,
        Method::POST,
        "release-all",
        Some(json!({"instance": "i"})),
        [200, 200, 403, 403, 401, 403],
    )
    .await;
    let reserve = json!({"instance": "i", "limit": 1});
    for path in ["reserve", "reserve/due"] {
        w.row(
            Route::Reserve,
            Method::POST,
            path,
            Some(reserve.clone()),
            [200, 200, 403, 403, 401, 403],
        )
        .await;
    }
    let every_role = [200, 200, 200, 200, 401, 200];
    w.row(Route::ListQueues, Method::GET, "queues", None, every_role)
        .await;
    // Batches: the producer's own (another producer's is 404, as if absent); a callback only
    // into a queue the caller may enqueue into.
    let (batch, own) = (w.batch, [403, 403, 200, 404, 401, 200]);
    let path = format!("batches/{batch}");
    w.row(Route::Batches, Method::GET, &path, None, own).await;
    let open = json!({"callback": {"class": "Report", "queue": "a", "args": {}}});
    let opened = [403, 403, 201, 404, 401, 201];
    w.row(Route::Batches, Method::POST, "batches", Some(open), opened)
        .await;
    let path = format!("batches/{batch}/close");
    w.row(Route::Batches, Method::POST, &path, None, own).await;
    let path = format!("batches/{batch}/cancel");
    w.row(Route::Batches, Method::POST, &path, None, own).await;
    let exercised = w.exercised.lock().expect("not poisoned").clone();
    for rule in ROLES {
        assert!(
            exercised.contains(&rule.route),
            "no row checks {:?}",
            rule.route
        );
    }
}

#[tokio::test]
async fn each_role_sees_only_its_queues_and_jobs() {
    let w = World::new().await;
    let names = |answer: &Value| -> Vec<String> {
        answer.as_array().map_or_else(Vec::new, |list| {
            list.iter()
                .filter_map(|q| q["name"].as_str().map(str::to_owned))
                .collect()
        })
    };
    let expected: [&[&str]; 6] = [&["a"], &["b"], &["a"], &["b"], &[], &["a", "b", "default"]];
    for (i, want) in expected.iter().enumerate().filter(|(i, _)| *i != 4) {
        let (status, answer) = w.call(i, Method::GET, "queues", None).await;
        assert_eq!(
            (status, names(&answer)),
            (200, want.iter().map(|s| s.to_string()).collect()),
            "{}",
            CALLERS[i]
        );
    }
    let (_, jobs) = w.call(3, Method::GET, "jobs", None).await;
    let by: Vec<&str> = jobs.as_array().map_or_else(Vec::new, |l| {
        l.iter().filter_map(|j| j["enqueued_by"].as_str()).collect()
    });
    assert_eq!(
        by,
        ["producer:shop2"],
        "a producer lists only what it enqueued"
    );
    // A worker of another queue reserving that queue gets nothing, and learns nothing.
    let (status, answer) = w
        .call(
            1,
            Method::POST,
            "reserve",
            Some(json!({"instance": "i", "limit": 5, "queues": ["a"]})),
        )
        .await;
    assert_eq!((status, answer["jobs"].clone()), (200, json!([])));
    let (status, answer) = w
        .call(
            0,
            Method::POST,
            "reserve",
            Some(json!({"instance": "i", "limit": 5})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["jobs"].as_array().map(Vec::len),
        Some(1),
        "the rightful worker gets its queue's job"
    );
    for i in [2, 3, 5] {
        let (status, _) = w
            .call(
                i,
                Method::POST,
                "reserve",
                Some(json!({"instance": "i", "limit": 5})),
            )
            .await;
        assert_eq!(status, 403, "{} may not reserve", CALLERS[i]);
    }
}

#[tokio::test]
async fn a_producer_links_its_jobs_only_to_its_own_jobs_and_batches() {
    let w = World::new().await;
    let (shop, shop2) = (2, 3);
    // The other producer may not wait for shop's job, nor join shop's batch: refused as if
    // neither existed, and nothing is stored.
    let after = json!({"class": "Next", "queue": "b", "depends_on": [w.waiting.0]});
    let (status, answer) = w.call(shop2, Method::POST, "jobs", Some(after)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{answer}"
    );
    let join = json!({"class": "Next", "queue": "b", "batch": w.batch});
    let (status, answer) = w.call(shop2, Method::POST, "jobs", Some(join)).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = w.call(shop2, Method::GET, "jobs", None).await;
    assert_eq!((status, answer.as_array().map(Vec::len)), (200, Some(1)));
    // Its owner may do both: the job waits for the other, in the batch.
    let both =
        json!({"class": "Next", "queue": "a", "depends_on": [w.waiting.0], "batch": w.batch});
    let (status, answer) = w.call(shop, Method::POST, "jobs", Some(both)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["state"], "pending");
    assert_eq!(answer["batch"], w.batch);
    assert_eq!(answer["dependencies"], json!([w.waiting.0]));
}

#[tokio::test]
async fn follow_ups_go_where_the_jobs_producer_may_enqueue() {
    let w = World::new().await;
    let complete = |queue: &str| {
        json!({
            "instance": "i",
            "token": w.token,
            "follow_ups": [{"class": "Next", "queue": queue, "args": [1]}],
        })
    };
    let path = format!("jobs/{}/complete", w.running.0);
    // The job's producer (shop) may enqueue into `a` only: a follow-up into `b` is refused as
    // shop's own enqueue there would be, and the success with it; the job still runs.
    let (status, answer) = w.call(0, Method::POST, &path, Some(complete("b"))).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_queue"))
    );
    let said = answer["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("producer shop was not granted")
            && said.contains("outsourcer producer grant shop b"),
        "says what to grant: {said}"
    );
    let admin = Actor::Admin("root".into());
    let job = w.server.sql.job(&admin, w.running).await.expect("the job");
    assert_eq!(job.state.as_str(), "running");
    // In a batch, that lease alone is refused.
    let batch = json!({"instance": "i", "leases": [{
        "id": w.running.0, "token": w.token,
        "follow_ups": [{"class": "Next", "queue": "b"}],
    }]});
    let (status, answer) = w.call(0, Method::POST, "complete", Some(batch)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["results"][0]["code"], "unknown_queue", "{answer}");
    let said = answer["results"][0]["message"].as_str().unwrap_or_default();
    assert!(said.contains("was not granted"), "{said}");

    let (status, answer) = w.call(0, Method::POST, &path, Some(complete("a"))).await;
    assert_eq!(status, 204, "{answer}");
    let (_, listed) = w
        .call(
            2,
            Method::GET,
            &format!("jobs?parent={}", w.running.0),
            None,
        )
        .await;
    assert_eq!(listed[0]["parent"], w.running.0, "{listed}");
    assert_eq!(
        listed[0]["enqueued_by"], "producer:shop",
        "shop sees it as its own"
    );

    // An admin's job may ask for follow-ups in any queue.
    let queued = w
        .server
        .sql
        .enqueue(&admin, NewJob::new("Work", json!([])).queue("a"));
    let id = queued.await.expect("a job").id;
    let w1 = WorkerInstance::new("w1", "i");
    let reserved = w
        .server
        .sql
        .reserve(&w1, ReserveOptions::up_to(5).queues(["a"]));
    let reserved = reserved.await.expect("reserve");
    let lease = reserved
        .iter()
        .find(|r| r.job.id == id)
        .expect("the admin's job");
    let body = json!({
        "instance": "i",
        "token": lease.lease.token,
        "follow_ups": [{"class": "Next", "queue": "b"}],
    });
    let path = format!("jobs/{}/complete", id.0);
    let (status, answer) = w.call(0, Method::POST, &path, Some(body)).await;
    assert_eq!(status, 204, "{answer}");
}
