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
///
/// The leader is reaped only once its group has been dealt with: until then its zombie keeps
/// the group's id reserved, so that no signal meant for the group can reach processes that
/// came later and were given the same number (ids are reused, often within the hour on a
/// busy machine with the default `pid_max` of 32,768).
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

    /// Waits for the leader to exit, stops whatever of its group still runs (its own
    /// children), then reaps the leader and answers how it ended.
    pub(crate) async fn finish(mut self) -> std::io::Result<std::process::ExitStatus> {
        // Dropped while the leader runs (a time limit, a cancel), `self` stops the group.
        exited(self.pgid).await;
        let (child, counted) = (self.child.take(), self.counted.take());
        // From here on, to its end whatever becomes of this future.
        tokio::spawn(stop(self.pgid, child, self.grace, counted))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        // Dropped while running (a time limit, a cancel, a shutdown): the group gets SIGTERM
        // now, and SIGKILL after the grace from a task of its own; the job counts as running
        // until then. The leader is not reaped yet, so the group's id is still its own.
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

/// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL to the group;
/// then the same for anything the leader left in its group; then the leader is reaped (and
/// only then: see [`Group`]).
async fn stop(
    pgid: Option<i32>,
    child: Option<Child>,
    grace: Duration,
    counted: Option<Counted>,
) -> std::io::Result<std::process::ExitStatus> {
    let Some(mut child) = child else {
        drop(counted);
        return Err(std::io::Error::other("the handler's process was gone"));
    };
    if !leader_exited(pgid) {
        signal(pgid, Signal::Term);
        if tokio::time::timeout(grace, exited(pgid)).await.is_err() {
            signal(pgid, Signal::Kill);
            exited(pgid).await;
        }
    }
    // The leader has exited; its zombie still holds the group's id. What it left behind in
    // its group is stopped too.
    if others_in_group(pgid) {
        signal(pgid, Signal::Term);
        let deadline = tokio::time::Instant::now() + grace;
        while others_in_group(pgid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if others_in_group(pgid) {
            signal(pgid, Signal::Kill);
        }
    }
    let status = child.wait().await;
    drop(counted);
    status
}

/// How often a leader's exit, or its group's emptiness, is looked at.
const POLL: Duration = Duration::from_millis(10);

/// Waits until the leader has exited, without reaping it.
async fn exited(pgid: Option<i32>) {
    while !leader_exited(pgid) {
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// The group's leader (whose pid is the group's id).
#[cfg(unix)]
fn leader(pgid: Option<i32>) -> Option<rustix::process::Pid> {
    pgid.and_then(rustix::process::Pid::from_raw)
}

#[cfg(unix)]
fn signal(pgid: Option<i32>, which: Signal) {
    use rustix::process::{Signal as Sig, kill_process_group};
    let Some(pid) = leader(pgid) else {
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

/// Whether the leader has exited (it stays a zombie, unreaped). A leader that cannot be asked
/// about counts as exited.
#[cfg(unix)]
fn leader_exited(pgid: Option<i32>) -> bool {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let Some(pid) = leader(pgid) else {
        return true;
    };
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(waitid(WaitId::Pid(pid), options), Ok(None))
}

#[cfg(not(unix))]
fn leader_exited(_pgid: Option<i32>) -> bool {
    true
}

/// Whether a process other than the (exited) leader is in the group. On Linux, read from
/// `/proc`; elsewhere there is no telling, so yes while the group can be signalled.
#[cfg(target_os = "linux")]
fn others_in_group(pgid: Option<i32>) -> bool {
    let Some(pgid) = pgid else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            return false;
        };
        pid != pgid && process_group_of(pid) == Some(pgid)
    })
}

/// The process group of `pid`, from `/proc/PID/stat` (the fifth field; the second, the
/// command's name in parentheses, may hold spaces and parentheses of its own).
#[cfg(target_os = "linux")]
fn process_group_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(all(unix, not(target_os = "linux")))]
fn others_in_group(pgid: Option<i32>) -> bool {
    use rustix::process::test_kill_process_group;
    leader(pgid).is_some_and(|pid| test_kill_process_group(pid).is_ok())
}

#[cfg(not(unix))]
fn others_in_group(_pgid: Option<i32>) -> bool {
    false
}
