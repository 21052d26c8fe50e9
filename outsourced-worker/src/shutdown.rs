//! Shutdown: the first SIGTERM or SIGINT drains (stop reserving, let running jobs finish
//! within the grace period, release the rest); a second one stops at once.

use std::sync::Arc;

use tokio::sync::watch;

/// How far a shutdown has gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Working.
    Running,
    /// Reserve nothing more; let running jobs finish within the grace period.
    Draining,
    /// Stop running jobs now and release them.
    Now,
}

/// The worker's view of shutdown requests.
#[derive(Clone, Debug)]
pub struct Shutdown {
    stage: watch::Receiver<Stage>,
    /// Keeps the channel open for a shutdown nobody can trigger.
    _keep: Option<Arc<watch::Sender<Stage>>>,
}

/// The side that requests a shutdown.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger(watch::Sender<Stage>);

impl Shutdown {
    /// A shutdown requested by hand, through the returned trigger.
    pub fn manual() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(Stage::Running);
        let shutdown = Shutdown {
            stage: rx,
            _keep: None,
        };
        (ShutdownTrigger(tx), shutdown)
    }

    /// A shutdown that is never requested.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(Stage::Running);
        Shutdown {
            stage: rx,
            _keep: Some(Arc::new(tx)),
        }
    }

    /// A shutdown requested by SIGTERM or SIGINT (ctrl-c): the first drains, the second stops.
    pub fn on_signals() -> Shutdown {
        Shutdown::on_signals_saying([
            "Stopping: running jobs may finish (a second Ctrl-C or SIGTERM stops at once)",
            "Stopping at once: running jobs are given back",
        ])
    }

    /// The same, logging `said[0]` at the first signal and `said[1]` at the second (a server
    /// has requests to finish, not jobs).
    pub fn on_signals_saying(said: [&'static str; 2]) -> Shutdown {
        let (trigger, shutdown) = Shutdown::manual();
        // Registered now, not in the task: a signal that arrives before the task first runs
        // would otherwise meet the default action and kill the process outright.
        let mut signals = Signals::new();
        tokio::spawn(async move {
            let stages = [(Stage::Draining, said[0]), (Stage::Now, said[1])];
            for (stage, what) in stages {
                signals.next().await;
                // A first signal is an ordinary stop; a second cuts running work short.
                match stage {
                    Stage::Now => tracing::warn!(?stage, "{what}"),
                    _ => tracing::info!(?stage, "{what}"),
                }
                trigger.advance(stage);
            }
        });
        shutdown
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    /// Waits until the stage is at least `stage` (forever if it can no longer get there).
    pub async fn reached(&mut self, stage: Stage) {
        if self
            .stage
            .wait_for(|current| *current >= stage)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

impl ShutdownTrigger {
    /// Moves the shutdown to `stage` (never back).
    pub fn advance(&self, stage: Stage) {
        self.0.send_if_modified(|current| {
            let later = stage > *current;
            if later {
                *current = stage;
            }
            later
        });
    }
}

/// SIGTERM and SIGINT, listened to from the start so that a quick second signal is not lost.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.streams {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
