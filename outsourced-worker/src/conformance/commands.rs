//! Command handlers: a program gets the job's arguments on standard input, its id, class,
//! queue and attempt in the environment, and its attachment as a file; its exit status decides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outsourced_core::conformance::{Harness, ok};
use outsourced_core::{BackendExt, JobState, NewJob, Upload};
use serde_json::json;

use super::{last_error, only, worker};
use crate::{CommandSpec, WorkerOptions};

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write a script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let executable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(&path, executable).expect("make the script executable");
    }
    path
}

fn handlers(class: &str, program: PathBuf) -> BTreeMap<String, CommandSpec> {
    let spec = CommandSpec {
        program,
        args: Vec::new(),
        env: BTreeMap::new(),
        max_run_time: None,
    };
    BTreeMap::from([(class.to_owned(), spec)])
}

pub(crate) async fn a_command_gets_its_arguments_and_succeeds(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("out");
    let body = format!(
        "cat > {out}.json\necho \"$OUTSOURCED_JOB_ID $OUTSOURCED_JOB_CLASS $OUTSOURCED_QUEUE $OUTSOURCED_ATTEMPT\" > {out}.env",
        out = out.display()
    );
    let program = script(dir.path(), "handler.sh", &body);
    let queue = h.queue().await;
    let args = json!(["bob@example.com", {"subject": "hi"}]);
    let job = h
        .enqueue(NewJob::new("SendMail", args.clone()).queue(&queue))
        .await;
    let w = worker(h, only(&queue)).commands(handlers("SendMail", program));
    let done = ok(w.work_off(1).await, "work off");
    assert_eq!(done.succeeded, 1);
    assert_eq!(h.state(job.id).await, JobState::Succeeded);
    let input = std::fs::read_to_string(out.with_extension("json")).expect("the program's input");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&input).ok(),
        Some(args)
    );
    let env = std::fs::read_to_string(out.with_extension("env")).expect("the program's env");
    assert_eq!(env.trim(), format!("{} SendMail {queue} 1", job.id));
}

pub(crate) async fn a_commands_output_is_its_result(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // JSON on standard input says which output to give.
    let body =
        "if grep -q json; then echo '{\"pages\": 3}'; else printf 'scanned\\n3 pages\\n'; fi";
    let program = script(dir.path(), "handler.sh", body);
    let queue = h.queue().await;
    let mut ids = Vec::new();
    for args in [json!("json"), json!("text")] {
        let job = h.enqueue(NewJob::new("Scan", args).queue(&queue)).await;
        ids.push(job.id);
    }
    let w = worker(h, only(&queue)).commands(handlers("Scan", program));
    assert_eq!(ok(w.work_off(2).await, "work off").succeeded, 2);
    let results = [json!({"pages": 3}), json!("scanned\n3 pages")];
    for (id, expected) in ids.into_iter().zip(results) {
        let read = h.admin.backend.result(&h.admin.actor, id).await;
        assert_eq!(ok(read, "read a result"), Some(expected));
    }
}

pub(crate) async fn a_failing_command_leaves_its_stderr_in_the_history(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let body = "echo 'starting' >&2\necho connecting\necho 'the mail server said no' >&2\nexit 3";
    let program = script(dir.path(), "failing.sh", body);
    let queue = h.queue().await;
    let job = h
        .enqueue(NewJob::new("SendMail", json!([])).queue(&queue))
        .await;
    let w = worker(h, only(&queue)).commands(handlers("SendMail", program));
    let done = ok(w.work_off(1).await, "work off");
    assert_eq!(done.failed, 1);
    assert_eq!(h.state(job.id).await, JobState::Retrying);
    let stored = h.job(job.id).await;
    let last = stored.last_error.unwrap_or_default();
    assert!(
        last.contains("exited with status 3: the mail server said no"),
        "the last error carries the last line of stderr: {last}"
    );
    let row = h.history(job.id).await.pop().expect("a history row");
    let detail = row.error.and_then(|e| e.backtrace).unwrap_or_default();
    assert!(
        detail.contains("starting") && detail.contains("the mail server said no"),
        "{detail}"
    );
    assert!(detail.contains("standard output:\nconnecting"), "{detail}");
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A handler that starts a child of its own, ignoring SIGTERM as its child does (so that only
/// SIGKILL to the whole group stops them), and tells the test both process ids through a FIFO
/// (a signal, not a sleep).
fn stubborn(dir: &Path) -> (PathBuf, PathBuf) {
    let fifo = dir.join("pids");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let body = format!(
        "trap '' TERM\nsleep 300 &\necho \"$$ $!\" > {}\nwait",
        fifo.display()
    );
    (script(dir, "stubborn.sh", &body), fifo)
}

/// The process ids the stubborn handler sends, once it runs.
async fn pids_of(fifo: PathBuf) -> Vec<String> {
    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(fifo));
    let text = ok(ok(read.await, "join the FIFO's reader"), "read the FIFO");
    let pids: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    assert_eq!(pids.len(), 2, "{text:?}");
    pids
}

pub(crate) async fn a_timed_out_command_leaves_no_process_behind(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (program, fifo) = stubborn(dir.path());
    let queue = h.queue().await;
    let job = h
        .enqueue(NewJob::new("Stubborn", json!([])).queue(&queue))
        .await;
    let options = WorkerOptions {
        max_run_time: Duration::from_millis(500),
        kill_grace: Duration::from_millis(300),
        ..only(&queue)
    };
    let w = worker(h, options).commands(handlers("Stubborn", program));
    let (done, pids) = tokio::join!(w.work_off(1), pids_of(fifo));
    assert_eq!(ok(done, "work off").failed, 1);
    // The report came only once the group was gone: SIGTERM ignored, then SIGKILL.
    for pid in &pids {
        assert!(!alive(pid), "process {pid} outlived the job's time-out");
    }
    let stored = h.job(job.id).await;
    assert_eq!((stored.state, stored.attempts), (JobState::Retrying, 1));
    assert!(last_error(h, job.id).await.contains("max_run_time"));
}

pub(crate) async fn a_cancelled_command_leaves_no_process_behind(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (program, fifo) = stubborn(dir.path());
    let queue = h.queue().await;
    let job = h
        .enqueue(NewJob::new("Stubborn", json!([])).queue(&queue))
        .await;
    let options = WorkerOptions {
        // A short lease, so that heartbeats (every third of it) report the cancel soon.
        lease: Duration::from_secs(1),
        kill_grace: Duration::from_millis(300),
        exit_on_complete: true,
        ..only(&queue)
    };
    let w = worker(h, options).commands(handlers("Stubborn", program));
    let run = tokio::spawn(async move { w.run(crate::Shutdown::never()).await });
    let pids = pids_of(fifo).await;
    let cancel = h.admin.backend.cancel(&h.admin.actor, job.id).await;
    assert_eq!(ok(cancel, "cancel"), JobState::Running);
    let done = ok(ok(run.await, "join the worker"), "run");
    assert_eq!(done.abandoned, 1);
    for pid in &pids {
        assert!(!alive(pid), "process {pid} outlived the cancel");
    }
    assert_eq!(h.state(job.id).await, JobState::Cancelled);
}

pub(crate) async fn a_command_gets_the_attachment_as_a_file(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("seen");
    let body = format!(
        "cp \"$OUTSOURCED_ATTACHMENT\" {out}.bytes\necho \"$OUTSOURCED_ATTACHMENT_NAME|$OUTSOURCED_ATTACHMENT_TYPE|$OUTSOURCED_ATTACHMENT_SHA256\" > {out}.env",
        out = out.display()
    );
    let program = script(dir.path(), "handler.sh", &body);
    let queue = h.queue().await;
    let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
    let file = Upload::from_bytes(bytes.clone())
        .file_name("photo.jpg")
        .content_type("image/jpeg");
    let producer = &h.producer;
    let job = producer
        .backend
        .enqueue_with_attachment(
            &producer.actor,
            NewJob::new("Resize", json!([])).queue(&queue),
            file,
        )
        .await;
    let job = ok(job, "enqueue with an attachment");
    let sha256 = job
        .attachment
        .as_ref()
        .map(|a| a.sha256.clone())
        .unwrap_or_default();
    let w = worker(h, only(&queue)).commands(handlers("Resize", program));
    let done = ok(w.work_off(1).await, "work off");
    assert_eq!(done.succeeded, 1, "{:?}", last_error(h, job.id).await);
    let seen = std::fs::read(out.with_extension("bytes")).expect("the program's copy");
    assert!(seen == bytes, "the program read the attachment's bytes");
    let env = std::fs::read_to_string(out.with_extension("env")).expect("the program's env");
    assert_eq!(env.trim(), format!("photo.jpg|image/jpeg|{sha256}"));
}
