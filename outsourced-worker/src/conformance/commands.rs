//! Command handlers: a program gets the job's arguments on standard input, its id, class,
//! queue and attempt in the environment, and its attachment as a file; its exit status decides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use outsourced_core::conformance::{Harness, ok};
use outsourced_core::{JobState, NewJob, Upload};
use serde_json::json;

use super::{last_error, only, worker};
use crate::CommandSpec;

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

pub(crate) async fn a_failing_command_leaves_its_stderr_in_the_history(h: &Harness) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let body = "echo 'starting' >&2\necho 'the mail server said no' >&2\nexit 3";
    let program = script(dir.path(), "failing.sh", body);
    let queue = h.queue().await;
    let job = h
        .enqueue(NewJob::new("SendMail", json!([])).queue(&queue))
        .await;
    let w = worker(h, only(&queue)).commands(handlers("SendMail", program));
    let done = ok(w.work_off(1).await, "work off");
    assert_eq!(done.failed, 1);
    assert_eq!(h.state(job.id).await, JobState::Retrying);
    assert!(last_error(h, job.id).await.contains("exited with status 3"));
    let row = h.history(job.id).await.pop().expect("a history row");
    let stderr = row.error.and_then(|e| e.backtrace).unwrap_or_default();
    assert!(stderr.contains("the mail server said no"), "{stderr}");
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
