//! The conformance suite through the HTTP backend: each caller a client with its own OAuth
//! credentials, against a real server on 127.0.0.1:0 over the SQL backend, whose clock the
//! harness moves (the OAuth timestamps stay on the wall clock).

use std::sync::Arc;
use std::time::Duration;

use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Credentials, Directory, Role, ServerKey, SqlBackend};
use outsourced_core::conformance::{self, Client, Harness, WorkerClient};
use outsourced_core::{Actor, Backend, DEFAULT_QUEUE, TestClock, WorkerInstance};
use outsourced_server::{AppState, ServerConfig};

use crate::support::test_config;

/// A running server; dropping it shuts the server down.
pub(crate) struct RunningServer {
    pub(crate) url: String,
    pub(crate) sql: SqlBackend,
    pub(crate) key: ServerKey,
    /// Its state (`drain` stops its long polls).
    pub(crate) state: AppState,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl RunningServer {
    /// A server mounted under `/outsourced` over `sql`.
    pub(crate) async fn start(sql: SqlBackend, config: ServerConfig) -> RunningServer {
        Self::start_with_tls(sql, config, None).await
    }

    /// The same, over TLS when `tls` is given (the URL is then `https://localhost:PORT`).
    pub(crate) async fn start_with_tls(
        sql: SqlBackend,
        config: ServerConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> RunningServer {
        let key = ServerKey::generate();
        let https = tls.is_some();
        let state = AppState::new(sql.clone(), key.clone(), config.clone(), https);
        let app = axum::Router::new().nest("/outsourced", outsourced_server::router(state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        tokio::spawn(async move {
            outsourced_server::serve(listener, app, tls, &config, shutdown).await
        });
        let url = match https {
            true => format!("https://localhost:{}/outsourced", addr.port()),
            false => format!("http://{addr}/outsourced"),
        };
        RunningServer {
            url,
            sql,
            key,
            state,
            _stop: stop,
        }
    }

    pub(crate) fn directory(&self) -> Directory {
        Directory::new(self.sql.clone())
    }

    /// Creates a principal and returns a client signed with its credentials.
    pub(crate) async fn client(&self, role: Role, name: &str) -> (Arc<HttpBackend>, Credentials) {
        let (_, credentials) = self
            .directory()
            .create(&self.key, role, name)
            .await
            .expect("a principal");
        // Idempotency keys on every enqueue, as by default (the plain path is what
        // hand-signed requests take).
        let config = HttpConfig::new(
            &self.url,
            &credentials.consumer_key,
            &credentials.consumer_secret,
        );
        assert!(config.idempotent_enqueues, "on by default");
        (
            Arc::new(HttpBackend::new(config).expect("a client")),
            credentials,
        )
    }

    /// Hires both test workers for `queue` and grants it to the producer.
    pub(crate) async fn open_queue(directory: &Directory, queue: &str) {
        for worker in ["w1", "w2"] {
            directory
                .grant(Role::Worker, worker, queue)
                .await
                .expect("hire");
        }
        directory
            .grant(Role::Producer, "shop", queue)
            .await
            .expect("grant");
    }
}

/// A harness whose producer, workers and admin are HTTP clients of one server.
pub(crate) async fn http_harness(sql_url: &str) -> Harness {
    http_harness_with(test_config(sql_url)).await
}

/// The same over a database opened with `config`.
pub(crate) async fn http_harness_with(config: outsourced_backend_sql::SqlConfig) -> Harness {
    let clock = Arc::new(TestClock::new());
    let lease = config.lease;
    let sql = SqlBackend::open_with_clock(config, clock.clone())
        .await
        .expect("open the database");
    let server = RunningServer::start(sql, ServerConfig::default()).await;
    let (producer, _) = server.client(Role::Producer, "shop").await;
    let (w1, _) = server.client(Role::Worker, "w1").await;
    let (w2, _) = server.client(Role::Worker, "w2").await;
    let (admin, _) = server.client(Role::Admin, "root").await;
    let directory = server.directory();
    RunningServer::open_queue(&directory, DEFAULT_QUEUE).await;
    let as_backend = |b: &Arc<HttpBackend>| -> Arc<dyn Backend> { b.clone() };
    let worker = |backend: &Arc<HttpBackend>, name: &str, instance: &str| WorkerClient {
        backend: as_backend(backend),
        id: WorkerInstance::new(name, instance),
    };
    let workers = vec![
        worker(&w1, "w1", "a"),
        worker(&w2, "w2", "b"),
        worker(&w1, "w1", "c"),
    ];
    let producer = Client {
        backend: as_backend(&producer),
        actor: Actor::Producer("shop".into()),
    };
    let admin = Client {
        backend: as_backend(&admin),
        actor: Actor::Admin("root".into()),
    };
    let hook: conformance::QueueHook = Arc::new(move |queue: String| {
        let directory = directory.clone();
        Box::pin(async move { RunningServer::open_queue(&directory, &queue).await })
    });
    let invariant = crate::support::counts_agree(server.sql.clone());
    Harness::new(producer, workers, admin, clock, lease)
        .with_queue_hook(hook)
        .with_invariant(invariant)
        .keep(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_http_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let n = std::sync::atomic::AtomicU32::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = dir.path().join(format!("h{i}.db"));
        async move { http_harness(&format!("sqlite://{}", file.display())).await }
    };
    conformance::run("http over sqlite", make).await;
    outsourced_worker::conformance::run("http over sqlite, worker", make).await;
    // Keep the last server's tasks from outliving the test's runtime in a noisy way.
    tokio::time::sleep(Duration::from_millis(0)).await;
}
