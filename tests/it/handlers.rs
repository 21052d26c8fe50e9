//! Command handlers are contained, through the real worker binary: each runs in a process
//! group of its own, so Ctrl-C in the worker's terminal (SIGINT to its process group), a
//! SIGTERM to the worker, and systemd's stop (SIGTERM to every process of the service) drain
//! the worker; what cannot finish is stopped with everything it started and given back
//! without using up an attempt.

#![cfg(unix)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::bins::{Scratch, bin};

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn mkfifo(s: &Scratch, name: &str) {
    let made = Command::new("mkfifo").arg(s.path(name)).status();
    assert!(made.is_ok_and(|status| status.success()), "mkfifo {name}");
}

/// A queue, a hired worker whose config runs `handler` for class `Work` (1 s to drain, 500 ms
/// from SIGTERM to SIGKILL), one job of it, and the worker started as a terminal starts a
/// foreground job: the leader of a process group of its own. Returns the worker and the job.
fn start(s: &Scratch, handler: &str) -> (Child, String) {
    s.ok(&["queue", "create", "q"]);
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "q", "w1"]);
    s.ok(&["worker", "config", "w1", "-o", "w1.yml"]);
    let script = s.path("handler.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{handler}\n")).expect("write the handler");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut config = std::fs::read_to_string(s.path("w1.yml")).expect("the config");
    config.push_str("shutdown_grace: 1s\nkill_grace: 500ms\n");
    config.push_str("commands:\n  Work:\n    program: ./handler.sh\n");
    std::fs::write(s.path("w1.yml"), config).expect("write the config");
    let job = s.json(&["job", "enqueue", "Work", "--queue", "q"]);
    let worker = Command::new(bin("outsourced-worker"))
        .args(["--config", "w1.yml"])
        .current_dir(s.dir.path())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the worker");
    (worker, job["id"].as_i64().expect("an id").to_string())
}

/// The handler's process id and its child's, which it writes to the FIFO `pids` once it runs.
fn pids(s: &Scratch) -> Vec<String> {
    let text = std::fs::read_to_string(s.path("pids")).expect("the handler's pids");
    text.split_whitespace().map(str::to_owned).collect()
}

fn kill(args: &[&str]) {
    let status = Command::new("kill").args(args).status();
    assert!(status.is_ok_and(|s| s.success()), "kill {args:?}");
}

/// A handler that ignores SIGTERM, as its child does, and never ends on its own.
const STUBBORN: &str = "trap '' TERM\nsleep 300 &\necho \"$$ $!\" > pids\nwait";

/// Sends `signal` (to the worker's whole group with `group`), then checks that the worker
/// stopped cleanly, that neither the handler nor its child survived, and that the job was
/// given back with its attempt unused.
fn stopped_and_given_back(signal: &str, group: bool) {
    let s = Scratch::new();
    mkfifo(&s, "pids");
    let (mut worker, id) = start(&s, STUBBORN);
    let pids = pids(&s);
    let target = match group {
        true => format!("-{}", worker.id()),
        false => worker.id().to_string(),
    };
    kill(&[signal, "--", &target]);
    let status = worker.wait().expect("the worker exits");
    assert!(status.success(), "{signal}: {status:?}");
    for pid in &pids {
        assert!(!alive(pid), "{signal}: process {pid} outlived the worker");
    }
    let job: Value = s.json(&["job", "show", &id]);
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&Value::from("available"), &Value::from(0)),
        "{signal}: given back, its attempt unused"
    );
}

/// A worker killed with SIGKILL (it can do nothing) takes its running command with it, so that
/// the job does not run on while its lease runs out and another worker starts it again.
#[cfg(target_os = "linux")]
#[test]
fn a_worker_killed_outright_takes_its_command_with_it() {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let s = Scratch::new();
    mkfifo(&s, "pids");
    let (mut worker, _) = start(&s, "echo \"$$ 0\" > pids\nexec sleep 300");
    let handler = pids(&s)[0].clone();
    let pid = handler.parse().ok().and_then(Pid::from_raw).expect("a pid");
    // Its end, as something to wait on.
    let ended = pidfd_open(pid, PidfdFlags::empty()).expect("a pidfd");
    kill(&["-KILL", "--", &worker.id().to_string()]);
    worker.wait().expect("the worker is gone");
    let mut waiting = [PollFd::new(&ended, PollFlags::IN)];
    let limit = Timespec {
        tv_sec: 30,
        tv_nsec: 0,
    };
    let ready = poll(&mut waiting, Some(&limit)).expect("poll");
    assert_eq!(ready, 1, "the command {handler} outlived its worker");
    assert!(!alive(&handler));
}

#[test]
fn ctrl_c_in_the_terminal_drains_and_leaves_nothing_running() {
    stopped_and_given_back("-INT", true);
}

#[test]
fn sigterm_to_the_worker_drains_and_leaves_nothing_running() {
    stopped_and_given_back("-TERM", false);
}

#[test]
fn a_handler_survives_ctrl_c_and_finishes_within_the_grace() {
    let s = Scratch::new();
    mkfifo(&s, "pids");
    mkfifo(&s, "finish");
    let (mut worker, id) = start(&s, "echo \"$$ 0\" > pids\nread word < finish");
    pids(&s);
    kill(&["-INT", "--", &format!("-{}", worker.id())]);
    // Still there to hear this: the SIGINT went to the worker's group only.
    std::fs::write(s.path("finish"), "done\n").expect("let the handler finish");
    assert!(worker.wait().expect("the worker exits").success());
    let job: Value = s.json(&["job", "show", &id]);
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&"succeeded".into(), &1.into())
    );
}

#[test]
fn systemds_stop_of_every_process_gives_the_job_back() {
    // systemd's default KillMode sends SIGTERM to every process of the service at once: the
    // handler dies of it while the worker begins to drain.
    let s = Scratch::new();
    mkfifo(&s, "pids");
    let (mut worker, id) = start(&s, "sleep 300 &\necho \"$$ $!\" > pids\nwait");
    let pids = pids(&s);
    let handler_group = format!("-{}", pids[0]);
    kill(&["-TERM", "--", &worker.id().to_string(), &handler_group]);
    assert!(worker.wait().expect("the worker exits").success());
    for pid in &pids {
        assert!(!alive(pid), "process {pid} outlived the stop");
    }
    let job: Value = s.json(&["job", "show", &id]);
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&"available".into(), &0.into()),
        "given back, its attempt unused: {job}"
    );
}
