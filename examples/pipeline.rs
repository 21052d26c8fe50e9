//! A small pipeline on a SQLite file: split, work, gather.
//!
//! - **Split.** A scan is split into pages: the split job asks for one follow-up job per page
//!   (`JobContext::follow_up`), stored with its success in the same transaction (never if it
//!   fails).
//! - **Work.** Each page is read by a job of its own. The producer put the split in a batch,
//!   and the split puts its pages in the same batch (`ctx.batch`), so the batch waits for them.
//! - **Gather.** The batch's callback runs once every job of the batch has ended, with the
//!   batch's counts in its arguments; it reads nothing else, and finds its pages' results by
//!   batch. Beside it, an archive job waits for the split alone (`depends_on`) and gets the
//!   split's result with its lease.
//!
//! `cargo run -p outsourced-examples --example pipeline`

use std::sync::Arc;

use async_trait::async_trait;
use outsourced_backend_sql::SqlBackend;
use outsourced_core::{
    Actor, Backend, BackendExt, Job, JobContext, JobError, JobExt, JobFilter, NewBatch, QueueLimit,
    Registry,
};
use outsourced_worker::Worker;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
            // Stored only if this attempt succeeds, in the split's batch.
            let mut job = ocr.to_new_job()?;
            job.batch = ctx.batch;
            ctx.follow_up(job)?;
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

/// The batch's callback: its arguments are the document and, added by the backend, the
/// batch's counts.
#[derive(Debug, Serialize, Deserialize)]
struct Gather {
    document: String,
    batch: Value,
}

#[async_trait]
impl Job for Gather {
    const CLASS: &'static str = "Gather";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        let (jobs, ok) = (&self.batch["total"], &self.batch["succeeded"]);
        println!("gather: {}: {ok} of {jobs} jobs succeeded", self.document);
        ctx.set_result(json!({ "complete": jobs == ok }))
    }
}

/// Archives the document once the split succeeded, knowing how many pages it has.
#[derive(Debug, Serialize, Deserialize)]
struct Archive {
    document: String,
}

#[async_trait]
impl Job for Archive {
    const CLASS: &'static str = "Archive";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        for (split, result) in &ctx.dependency_results {
            println!(
                "archive: {} after job {split}, which found {} pages",
                self.document, result["pages"]
            );
        }
        Ok(())
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
    let document = "invoice-2026-12.pdf";

    // A batch whose callback gathers; the split joins it, and the batch is closed: it ends
    // once the split and every page it asks for have ended.
    let gather = json!({ "document": document });
    let callback = outsourced_core::NewJob::new(Gather::CLASS, gather);
    let batch = NewBatch::new(callback).description(format!("{document}'s pages"));
    let batch = backend.open_batch(&admin, batch).await?;
    let id = batch.counts.id;
    let split = Split {
        document: document.into(),
        pages: 4,
    };
    let split = backend
        .enqueue(&admin, split.to_new_job()?.batch(id))
        .await?;
    backend.close_batch(&admin, id).await?;
    let archive = Archive {
        document: document.into(),
    };
    let archive = archive.to_new_job()?.depends_on([split.id]);
    let archive = backend.enqueue(&admin, archive).await?;
    println!(
        "batch {id}: the split is job {}, the gather job {} (pending), the archive job {} \
         ({}, waiting for the split)",
        split.id, batch.callback, archive.id, archive.state
    );

    let mut registry = Registry::new();
    registry.register::<Split>();
    registry.register::<Ocr>();
    registry.register::<Gather>();
    registry.register::<Archive>();
    let worker = Worker::new(backend.clone(), "example-worker").registry(registry);
    let done = worker.work_off(100).await?;
    println!(
        "worked off: {} succeeded, {} failed",
        done.succeeded, done.failed
    );

    // Every job of the batch, and what each one found.
    let of_batch = JobFilter {
        batch: Some(id),
        ..JobFilter::default()
    };
    let mut total = 0;
    for job in backend.jobs(&admin, of_batch).await?.iter().rev() {
        let result = backend.result(&admin, job.id).await?.unwrap_or_default();
        total += result["words"].as_u64().unwrap_or(0);
        println!("job {} ({}, {}): {result}", job.id, job.class, job.state);
    }
    let ended = backend.batch(&admin, id).await?;
    let gathered = backend.result(&admin, ended.callback).await?;
    println!(
        "{document}: {} jobs in the batch, {total} words; the gather job said {}",
        ended.counts.total,
        gathered.unwrap_or_default()
    );
    Ok(())
}
