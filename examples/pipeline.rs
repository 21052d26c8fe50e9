//! A small pipeline on a SQLite file: a scan is split into pages, each page is read by a job
//! of its own, and the producer gathers the pages' results.
//!
//! The split job asks for one follow-up job per page (`JobContext::follow_up`): they are
//! stored with its success, in the same transaction, and never if it fails. Each names the
//! split job as its parent, so the producer finds them, and their results, by it.
//!
//! `cargo run -p outsourced-examples --example pipeline`

use std::sync::Arc;

use async_trait::async_trait;
use outsourced_backend_sql::SqlBackend;
use outsourced_core::{
    Actor, Backend, BackendExt, Job, JobContext, JobError, JobExt, JobFilter, QueueLimit, Registry,
};
use outsourced_worker::Worker;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Splits a scanned document into pages.
#[derive(Debug, Serialize, Deserialize)]
struct Split {
    document: String,
    pages: u32,
}

#[async_trait]
impl Job for Split {
    const CLASS: &'static str = "Split";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        for page in 1..=self.pages {
            let ocr = Ocr {
                document: self.document.clone(),
                page,
            };
            // Stored only if this attempt succeeds: a failed split leaves no pages behind.
            ctx.follow_up(ocr.to_new_job()?)?;
        }
        ctx.set_result(json!({ "pages": self.pages }))
    }

    fn queue(&self) -> Option<String> {
        Some("scans".into())
    }
}

/// Reads one page (here: pretends to).
#[derive(Debug, Serialize, Deserialize)]
struct Ocr {
    document: String,
    page: u32,
}

#[async_trait]
impl Job for Ocr {
    const CLASS: &'static str = "Ocr";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        let words = 100 + self.page * 7;
        ctx.set_result(json!({ "page": self.page, "words": words }))
    }

    fn queue(&self) -> Option<String> {
        Some("pages".into())
    }
}

#[tokio::main]
async fn main() -> outsourced_core::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| outsourced_core::Error::invalid(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("pipeline.db").display());
    let backend = Arc::new(SqlBackend::connect(&url).await?);
    let admin = Actor::Admin("example".into());
    for queue in ["scans", "pages"] {
        backend
            .create_queue(&admin, queue, QueueLimit::default())
            .await?;
    }

    let scan = Split {
        document: "invoice-2026-12.pdf".into(),
        pages: 4,
    };
    let scan = scan.enqueue(backend.as_ref()).await?;
    println!("enqueued the split, job {}", scan.id);

    let mut registry = Registry::new();
    registry.register::<Split>();
    registry.register::<Ocr>();
    let worker = Worker::new(backend.clone(), "example-worker").registry(registry);
    // The split first; its pages are ready as soon as it succeeded.
    let done = worker.work_off(100).await?;
    println!(
        "worked off: {} succeeded, {} failed",
        done.succeeded, done.failed
    );

    // Gather: the split's follow-ups, found by their parent, and what each one found.
    let pages = JobFilter {
        parent: Some(scan.id),
        ..JobFilter::default()
    };
    let mut total = 0;
    for page in backend.jobs(&admin, pages).await?.iter().rev() {
        let result = backend.result(&admin, page.id).await?.unwrap_or_default();
        total += result["words"].as_u64().unwrap_or(0);
        println!("job {} ({}, {}): {result}", page.id, page.class, page.state);
    }
    let split = backend.result(&admin, scan.id).await?.unwrap_or_default();
    let document = scan.args["document"].as_str().unwrap_or_default();
    println!("{document}: {} pages, {total} words", split["pages"]);
    Ok(())
}
