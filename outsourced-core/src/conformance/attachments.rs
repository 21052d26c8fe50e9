//! Attachments (F9): one file per job, in and out as streams, checksummed, all or nothing.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::harness::{Harness, noop, ok};
use crate::{Backend, BackendExt, ByteStream, Error, JobState, NewJob, Upload};

fn backend(h: &Harness) -> &dyn Backend {
    h.admin.backend.as_ref()
}

fn producer(h: &Harness) -> &dyn Backend {
    h.producer.backend.as_ref()
}

/// Three and a bit chunks' worth of a pattern that repeats at no chunk boundary.
fn content() -> Vec<u8> {
    (0..3 * (1 << 20) + 17).map(|i| (i % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// `bytes` as a stream of odd-sized pieces, as a socket delivers them.
fn pieces(bytes: Vec<u8>) -> ByteStream {
    let bytes = Bytes::from(bytes);
    let starts: Vec<usize> = (0..bytes.len()).step_by(100_003).collect();
    futures::stream::iter(starts.into_iter().map(move |start| {
        let end = (start + 100_003).min(bytes.len());
        Ok(bytes.slice(start..end))
    }))
    .boxed()
}

fn upload(bytes: &[u8]) -> Upload {
    Upload::new(pieces(bytes.to_vec()))
        .file_name("scan 1.pdf")
        .content_type("application/pdf")
        .sha256(sha256(bytes))
}

async fn total(h: &Harness, queue: &str) -> u64 {
    ok(backend(h).queue(&h.admin.actor, queue).await, "the queue")
        .counts
        .total()
}

pub(crate) async fn a_job_and_its_attachment_go_up_and_come_down_intact(h: &Harness) {
    let queue = h.queue().await;
    let bytes = content();
    let stored = producer(h)
        .enqueue_with_attachment(&h.producer.actor, noop().queue(&queue), upload(&bytes))
        .await;
    let job = ok(stored, "enqueue with an attachment");
    let info = job
        .attachment
        .clone()
        .expect("the record carries the attachment");
    assert_eq!(
        (
            info.size,
            info.sha256.as_str(),
            info.file_name.as_deref(),
            info.content_type.as_str()
        ),
        (
            bytes.len() as u64,
            sha256(&bytes).as_str(),
            Some("scan 1.pdf"),
            "application/pdf"
        )
    );
    assert_eq!(info.created_at, h.now());
    assert_eq!(h.job(job.id).await.attachment, Some(info.clone()));
    let down = ok(
        backend(h).attachment(&h.admin.actor, job.id).await,
        "download",
    );
    assert_eq!(down.info, info);
    let back = ok(down.bytes().await, "read the download");
    assert!(back == bytes, "the bytes that went up come down");
    let run = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(run.job.attachment, Some(info), "the worker sees it too");
    let holder = crate::Actor::Worker(h.w(0).id.clone());
    let worker = h.w(0).backend.attachment(&holder, job.id).await;
    assert_eq!(
        ok(ok(worker, "the worker downloads").bytes().await, "read").len(),
        bytes.len()
    );
}

pub(crate) async fn an_empty_attachment_is_an_attachment(h: &Harness) {
    let queue = h.queue().await;
    let file = Upload::from_bytes(Vec::new()).sha256(sha256(&[]));
    let job = ok(
        producer(h)
            .enqueue_with_attachment(&h.producer.actor, noop().queue(&queue), file)
            .await,
        "enqueue",
    );
    let down = ok(
        backend(h).attachment(&h.admin.actor, job.id).await,
        "download",
    );
    assert_eq!(
        (down.info.size, down.info.content_type.as_str()),
        (0, "application/octet-stream")
    );
    assert!(ok(down.bytes().await, "read").is_empty());
}

pub(crate) async fn a_damaged_upload_keeps_nothing(h: &Harness) {
    let queue = h.queue().await;
    let bytes = content();
    let mut wrong = upload(&bytes);
    wrong.sha256 = Some(sha256(b"something else"));
    let refused = producer(h)
        .enqueue_with_attachment(&h.producer.actor, noop().queue(&queue), wrong)
        .await;
    assert_error!(refused, Error::InvalidInput { .. });
    let broken = futures::stream::iter([
        Ok(Bytes::from(vec![1u8; 300_000])),
        Err(Error::invalid("the connection dropped")),
    ]);
    let failing = Upload::new(broken.boxed());
    let refused = producer(h)
        .enqueue_with_attachment(&h.producer.actor, noop().queue(&queue), failing)
        .await;
    assert!(refused.is_err(), "a failing stream fails the enqueue");
    let bad_name = Upload::from_bytes(vec![1u8]).file_name("../../etc/passwd");
    let refused = producer(h)
        .enqueue_with_attachment(&h.producer.actor, noop().queue(&queue), bad_name)
        .await;
    assert_error!(refused, Error::InvalidInput { .. });
    assert_eq!(total(h, &queue).await, 0, "no job was stored");
}

pub(crate) async fn a_refused_job_keeps_no_attachment(h: &Harness) {
    let queue = h.queue_with(crate::QueueLimit::Max(1)).await;
    h.enqueue(noop().queue(&queue)).await;
    let refused = producer(h)
        .enqueue_with_attachment(&h.producer.actor, noop().queue(&queue), upload(b"x"))
        .await;
    assert_error!(refused, Error::QueueFull { .. });
    assert_eq!(total(h, &queue).await, 1);
}

pub(crate) async fn a_file_is_attached_before_the_job_runs(h: &Harness) {
    let queue = h.queue().await;
    let later = h.now() + chrono::Duration::minutes(5);
    let job = h.enqueue(noop().queue(&queue).run_at(later)).await;
    assert_eq!(job.attachment, None);
    let bytes = b"a small file".to_vec();
    let info = ok(
        producer(h)
            .attach(&h.producer.actor, job.id, upload(&bytes))
            .await,
        "attach",
    );
    assert_eq!(
        (info.size, info.sha256.clone()),
        (bytes.len() as u64, sha256(&bytes))
    );
    assert_eq!(h.job(job.id).await.attachment, Some(info.clone()));
    let again = producer(h)
        .attach(&h.producer.actor, job.id, upload(b"another"))
        .await;
    assert_error!(again, Error::Conflict { .. });
    h.advance(Duration::from_secs(300));
    let run = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(run.job.attachment, Some(info));
    let down = ok(
        backend(h).attachment(&h.admin.actor, job.id).await,
        "download",
    );
    assert!(
        ok(down.bytes().await, "read") == bytes,
        "the first file stayed"
    );
}

pub(crate) async fn a_running_or_unknown_job_takes_no_attachment(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue(noop().queue(&queue)).await;
    h.w(0).reserve_one(&[&queue]).await;
    let late = producer(h)
        .attach(&h.producer.actor, job.id, upload(b"late"))
        .await;
    assert_error!(late, Error::Conflict { .. });
    assert_eq!(h.job(job.id).await.attachment, None);
    assert_eq!(h.state(job.id).await, JobState::Running);
    let missing = crate::JobId(987_654);
    let unknown = backend(h)
        .attach(&h.admin.actor, missing, upload(b"x"))
        .await;
    assert_error!(unknown, Error::NotFound { .. });
}

pub(crate) async fn a_job_without_an_attachment_says_so(h: &Harness) {
    let job = h.enqueue(NewJob::new("Plain", serde_json::json!([]))).await;
    assert_error!(
        backend(h).attachment(&h.admin.actor, job.id).await,
        Error::NoAttachment { .. }
    );
    assert_error!(
        backend(h)
            .attachment(&h.admin.actor, crate::JobId(987_654))
            .await,
        Error::NotFound { .. }
    );
}

/// A duplicate of a unique key, file and all, keeps no bytes and says it was one: the answer is
/// the holder, with its own attachment.
pub(crate) async fn a_duplicate_with_a_file_keeps_no_bytes_and_says_so(h: &Harness) {
    let queue = h.queue().await;
    let keyed = || noop().queue(&queue).unique(crate::Unique::key("scan-7"));
    let by = &h.producer.actor;
    let first = producer(h)
        .enqueue_attached(by, keyed(), upload(b"first"))
        .await;
    let (first, duplicate) = ok(first, "the first enqueue");
    assert!(!duplicate);
    let again = producer(h)
        .enqueue_attached(by, keyed(), upload(b"second"))
        .await;
    let (holder, duplicate) = ok(again, "the duplicate");
    assert!(duplicate, "a duplicate says so");
    assert_eq!(holder.id, first.id);
    let kept = holder.attachment.map(|a| a.sha256);
    assert_eq!(
        kept.as_deref(),
        Some(sha256(b"first").as_str()),
        "the holder's own file"
    );
    assert_eq!(total(h, &queue).await, 1);
}
