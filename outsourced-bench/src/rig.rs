//! What a scenario runs against: producers and workers calling the SQL backend in this
//! process (`sql`), or, as in production (`http`), `outsourcer serve` in a process of its own
//! on the same database, `outsourced-bench worker` processes talking to it over loopback, and
//! producers in this process through `HttpBackend`, every request signed with OAuth 1.0a.

use std::sync::Arc;

use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Credentials, Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, Error, QueueLimit, Result};
use outsourced_worker::{Shutdown, ShutdownTrigger, Stage, Worker, WorkerOptions};
use tokio::process::Child;
use tokio::task::JoinHandle;

use super::procs::{self, Signer};
use super::scenarios::{Crew, registry, take_waits};

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
    /// How many workers (SQL: in this process; HTTP: processes).
    pub(crate) workers: usize,
    server: Option<Server>,
}

/// The HTTP rig's server process and what its workers sign with.
pub(crate) struct Server {
    pub(crate) process: Child,
    url: String,
    worker: Credentials,
    directory: Directory,
    _key_dir: tempfile::TempDir,
}

/// Workers at work on a queue.
pub(crate) enum Running {
    /// Tasks of this process, stopped by a trigger.
    InProcess(
        ShutdownTrigger,
        Vec<JoinHandle<Result<outsourced_worker::WorkOff>>>,
    ),
    /// Worker processes, stopped by SIGTERM.
    Processes(Vec<Child>),
}

impl Rig {
    /// Everything in-process on the SQL backend.
    pub(crate) fn sql(sql: &SqlBackend, workers: usize) -> Rig {
        Rig {
            via: "sql",
            sql: sql.clone(),
            producer: Arc::new(sql.clone()),
            workers,
            server: None,
        }
    }

    /// `outsourcer serve` on `database` (the database of `sql`), a producer in this process
    /// and `workers` worker processes for each scenario.
    pub(crate) async fn http(sql: &SqlBackend, database: &str, workers: usize) -> Result<Rig> {
        let key = ServerKey::generate();
        let key_dir = tempfile::tempdir().map_err(|e| Error::invalid(format!("{e}")))?;
        let key_file = key_dir.path().join("server.key");
        outsourced_backend_sql::store::secrets::write_private(&key_file, &key.to_base64())?;
        let directory = Directory::new(sql.clone());
        let mut credentials = Vec::new();
        for (role, name) in [(Role::Producer, PRODUCER), (Role::Worker, WORKER)] {
            if directory.get(role, name).await.is_ok() {
                directory.delete(role, name).await?;
            }
            credentials.push(directory.create(&key, role, name).await?.1);
        }
        let (process, url) = procs::serve(database, &key_file).await?;
        let producer = &credentials[0];
        let config = HttpConfig::new(&url, &producer.consumer_key, &producer.consumer_secret);
        Ok(Rig {
            via: "http",
            sql: sql.clone(),
            producer: Arc::new(HttpBackend::new(config)?),
            workers,
            server: Some(Server {
                process,
                url,
                worker: credentials.swap_remove(1),
                directory,
                _key_dir: key_dir,
            }),
        })
    }

    /// The server process, on the HTTP rig.
    pub(crate) fn server(&self) -> Option<&Server> {
        self.server.as_ref()
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
        if let Some(server) = &self.server {
            server
                .directory
                .grant(Role::Producer, PRODUCER, &name)
                .await?;
            server.directory.grant(Role::Worker, WORKER, &name).await?;
        }
        Ok(name)
    }

    /// Starts the rig's workers on `queue`; with `exit_when_done` they stop once it is empty.
    pub(crate) fn start(&self, queue: &str, crew: Crew, exit_when_done: bool) -> Result<Running> {
        self.start_n(queue, crew, self.workers, exit_when_done)
    }

    /// Starts `n` workers (HTTP: one process each).
    pub(crate) fn start_n(
        &self,
        queue: &str,
        crew: Crew,
        n: usize,
        exit_when_done: bool,
    ) -> Result<Running> {
        let Some(server) = &self.server else {
            return Ok(self.in_process(queue, crew, n, exit_when_done));
        };
        let signer = server.signer();
        let children = (0..n)
            .map(|_| procs::worker(&signer, queue, crew, 1, exit_when_done))
            .collect::<Result<_>>()?;
        Ok(Running::Processes(children))
    }

    fn in_process(&self, queue: &str, crew: Crew, n: usize, exit_when_done: bool) -> Running {
        let (trigger, shutdown) = Shutdown::manual();
        let tasks = (0..n)
            .map(|_| {
                let options = WorkerOptions {
                    queues: vec![queue.to_owned()],
                    concurrency: crew.concurrency,
                    batch: crew.batch,
                    exit_on_complete: exit_when_done,
                    ..WorkerOptions::default()
                };
                let backend: Arc<dyn Backend> = Arc::new(self.sql.clone());
                let worker = Worker::new(backend, WORKER)
                    .registry(registry())
                    .options(options);
                let shutdown = shutdown.clone();
                tokio::spawn(async move { worker.run(shutdown).await })
            })
            .collect();
        Running::InProcess(trigger, tasks)
    }
}

impl Server {
    /// What a worker process signs with.
    pub(crate) fn signer(&self) -> Signer<'_> {
        Signer {
            url: &self.url,
            key: &self.worker.consumer_key,
            secret: &self.worker.consumer_secret,
        }
    }
}

impl Running {
    /// Waits for workers started with `exit_when_done` to stop by themselves; returns the
    /// enqueue-to-start waits their jobs noted (microseconds).
    pub(crate) async fn finish(self) -> Result<Vec<i64>> {
        match self {
            Running::InProcess(_trigger, tasks) => {
                for task in tasks {
                    task.await
                        .map_err(|e| Error::invalid(format!("a worker panicked: {e}")))??;
                }
                Ok(take_waits())
            }
            Running::Processes(children) => {
                let mut waits = Vec::new();
                for child in children {
                    waits.extend(procs::waits_of(child).await?);
                }
                Ok(waits)
            }
        }
    }

    /// Stops the workers as a shutdown signal would, then as [`finish`](Self::finish).
    pub(crate) async fn stop(self) -> Result<Vec<i64>> {
        match &self {
            Running::InProcess(trigger, _) => trigger.advance(Stage::Draining),
            Running::Processes(children) => {
                for child in children {
                    procs::terminate(child).await?;
                }
            }
        }
        self.finish().await
    }

    /// The worker processes' ids (none in-process).
    pub(crate) fn pids(&self) -> Vec<u32> {
        match self {
            Running::InProcess(..) => Vec::new(),
            Running::Processes(children) => children.iter().filter_map(Child::id).collect(),
        }
    }
}

/// A short suffix that keeps runs on one database apart.
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:06x}", nanos % 0xff_ffff)
}
