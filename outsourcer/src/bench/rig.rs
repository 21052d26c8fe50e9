//! What a scenario runs against: producers and workers calling the SQL backend in this
//! process, or calling `outsourced-server` over loopback through `HttpBackend`, every request
//! signed with OAuth 1.0a as in production (the server runs in this process too).

use std::sync::Arc;

use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, Error, QueueLimit, Result};
use outsourced_server::{AppState, ServerConfig, router, serve};
use tokio::sync::oneshot;

/// The backend's name for the bench's producer and worker.
pub(crate) const PRODUCER: &str = "bench-producer";
pub(crate) const WORKER: &str = "bench-worker";

/// Producers and workers of one run.
pub(crate) struct Rig {
    /// "sql" or "http".
    pub(crate) via: &'static str,
    /// The database, for setting up and checking (never timed).
    pub(crate) sql: SqlBackend,
    /// What producers call.
    pub(crate) producer: Arc<dyn Backend>,
    /// What each worker calls (HTTP: a client, and so a connection pool, of its own).
    workers: Vec<Arc<dyn Backend>>,
    directory: Option<Directory>,
    _server: Option<oneshot::Sender<()>>,
}

impl Rig {
    /// Everything in-process on the SQL backend.
    pub(crate) fn sql(sql: &SqlBackend, workers: usize) -> Rig {
        let backend: Arc<dyn Backend> = Arc::new(sql.clone());
        Rig {
            via: "sql",
            sql: sql.clone(),
            producer: backend.clone(),
            workers: vec![backend; workers],
            directory: None,
            _server: None,
        }
    }

    /// A server on a free loopback port over `sql`, a producer and `workers` worker clients.
    pub(crate) async fn http(sql: &SqlBackend, workers: usize) -> Result<Rig> {
        let key = ServerKey::generate();
        let directory = Directory::new(sql.clone());
        let mut credentials = Vec::new();
        for (role, name) in [(Role::Producer, PRODUCER), (Role::Worker, WORKER)] {
            if directory.get(role, name).await.is_ok() {
                directory.delete(role, name).await?;
            }
            credentials.push(directory.create(&key, role, name).await?.1);
        }
        let state = AppState::new(sql.clone(), key, ServerConfig::default(), false);
        let io = |e: std::io::Error| Error::invalid(format!("cannot serve: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io)?;
        let url = format!("http://{}/outsourced", listener.local_addr().map_err(io)?);
        let app = axum::Router::new().nest("/outsourced", router(state));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let header_timeout = ServerConfig::default().header_timeout;
        tokio::spawn(serve(listener, app, None, header_timeout, shutdown));
        let client = |i: usize| -> Result<Arc<dyn Backend>> {
            let c = &credentials[i];
            let config = HttpConfig::new(&url, &c.consumer_key, &c.consumer_secret);
            Ok(Arc::new(HttpBackend::new(config)?))
        };
        Ok(Rig {
            via: "http",
            sql: sql.clone(),
            producer: client(0)?,
            workers: (0..workers).map(|_| client(1)).collect::<Result<_>>()?,
            directory: Some(directory),
            _server: Some(stop),
        })
    }

    /// The workers' backends.
    pub(crate) fn workers(&self) -> &[Arc<dyn Backend>] {
        &self.workers
    }

    /// Who the producer is.
    pub(crate) fn producer_actor(&self) -> Actor {
        Actor::Producer(PRODUCER.into())
    }

    /// A fresh unbounded queue for one scenario, granted to the producer and the worker.
    pub(crate) async fn queue(&self, scenario: &str) -> Result<String> {
        let name = format!("bench-{scenario}-{}-{}", self.via, unique());
        let admin = Actor::Admin("bench".into());
        self.sql
            .create_queue(&admin, &name, QueueLimit::Unlimited)
            .await?;
        if let Some(directory) = &self.directory {
            directory.grant(Role::Producer, PRODUCER, &name).await?;
            directory.grant(Role::Worker, WORKER, &name).await?;
        }
        Ok(name)
    }
}

/// A short suffix that keeps runs on one database apart.
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:06x}", nanos % 0xff_ffff)
}
