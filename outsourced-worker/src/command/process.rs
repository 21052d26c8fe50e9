//! A command handler's processes: each handler runs in a process group of its own, so that a
//! Ctrl-C meant for the worker (SIGINT to the terminal's foreground group) or `timeout`'s
//! signal never reaches it, and so that stopping it stops everything it started.
//!
//! Stopping a handler (its time limit, a cancel, a shutdown, or its program ending with
//! children of its own still running) sends SIGTERM to the whole group, waits up to the
//! worker's `kill_grace`, then sends SIGKILL to the group. [`Children`] counts the handlers
//! not yet stopped, per job, so that the worker reports a job's end, or releases its jobs at a
//! shutdown, only once nothing of it runs any more: a retried job never runs twice at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outsourced_core::JobId;
use tokio::process::Child;
use tokio::sync::Notify;

/// The handlers a worker has running or stopping, by job.
#[derive(Clone, Debug, Default)]
pub(crate) struct Children(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    running: Mutex<HashMap<JobId, usize>>,
    changed: Notify,
}

/// One handler counted in [`Children`] until it is dropped.
#[derive(Debug)]
pub(crate) struct Counted {
    children: Children,
    job: JobId,
}

impl Children {
    /// Counts a handler of `job` until the returned guard drops.
    pub(crate) fn enter(&self, job: JobId) -> Counted {
        *self.lock().entry(job).or_default() += 1;
        Counted {
            children: self.clone(),
            job,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, usize>> {
        self.0.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no handler of `job` (of any job, when `None`) runs or is being stopped.
    pub(crate) async fn settled(&self, job: Option<JobId>) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let busy = {
                let running = self.lock();
                match job {
                    Some(job) => running.contains_key(&job),
                    None => !running.is_empty(),
                }
            };
            if !busy {
                return;
            }
            changed.await;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut running = self.children.lock();
        if let Some(n) = running.get_mut(&self.job) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.job);
            }
        }
        drop(running);
        self.children.0.changed.notify_waiters();
    }
}

/// A handler's process group, stopped when this is dropped before [`Group::finish`].
#[derive(Debug)]
pub(crate) struct Group {
    child: Option<Child>,
    pgid: Option<i32>,
    grace: Duration,
    counted: Option<Counted>,
}

impl Group {
    /// Takes charge of `child`, which was started as the leader of a group of its own.
    pub(crate) fn new(child: Child, grace: Duration, counted: Counted) -> Self {
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        Group {
            child: Some(child),
            pgid,
            grace,
            counted: Some(counted),
        }
    }

    /// The leader, to wait on.
    pub(crate) fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is there until the group is finished or dropped")
    }

    /// The leader has exited: stops whatever of its group still runs (its own children), and
    /// returns once nothing does.
    pub(crate) async fn finish(mut self) {
        let child = self.child.take();
        let counted = self.counted.take();
        stop(self.pgid, child, self.grace, counted).await;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        // Dropped while running (a time limit, a cancel, a shutdown): the group gets SIGTERM
        // now, and SIGKILL after the grace from a task of its own; the job counts as running
        // until then.
        signal(self.pgid, Signal::Term);
        let (pgid, grace, counted) = (self.pgid, self.grace, self.counted.take());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(stop(pgid, Some(child), grace, counted));
            }
            Err(_) => signal(pgid, Signal::Kill),
        }
    }
}

/// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL to the group.
async fn stop(pgid: Option<i32>, child: Option<Child>, grace: Duration, counted: Option<Counted>) {
    if let Some(mut child) = child
        && matches!(child.try_wait(), Ok(None))
    {
        signal(pgid, Signal::Term);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            signal(pgid, Signal::Kill);
            let _ = child.wait().await;
        }
    }
    // The leader is gone; anything it left behind in its group is stopped too.
    if group_alive(pgid) {
        signal(pgid, Signal::Term);
        let deadline = tokio::time::Instant::now() + grace;
        while group_alive(pgid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        signal(pgid, Signal::Kill);
    }
    drop(counted);
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

#[cfg(unix)]
fn signal(pgid: Option<i32>, which: Signal) {
    use rustix::process::{Pid, Signal as Sig, kill_process_group};
    let Some(pid) = pgid.and_then(Pid::from_raw) else {
        return;
    };
    let sig = match which {
        Signal::Term => Sig::TERM,
        Signal::Kill => Sig::KILL,
    };
    // ESRCH: the group is gone already.
    let _ = kill_process_group(pid, sig);
}

#[cfg(not(unix))]
fn signal(_pgid: Option<i32>, _which: Signal) {}

/// Whether any process of the group still exists (zombies included, which the last SIGKILL
/// does not mind).
#[cfg(unix)]
fn group_alive(pgid: Option<i32>) -> bool {
    use rustix::process::{Pid, test_kill_process_group};
    pgid.and_then(Pid::from_raw)
        .is_some_and(|pid| test_kill_process_group(pid).is_ok())
}

#[cfg(not(unix))]
fn group_alive(_pgid: Option<i32>) -> bool {
    false
}
