//! Job payloads: an enqueue's JSON body as the server reads it (and checks it), and a job's
//! arguments as a worker decodes them into its own type. Nothing may panic, however deep or
//! odd the JSON; a refusal is an error, never a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outsourced_backend_http::wire::NewJobDto;
use outsourced_core::{Job, JobContext, JobError, NewJob, Registry};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Fuzzed {
    id: u64,
    tags: Vec<String>,
    extra: Option<serde_json::Value>,
}

#[async_trait::async_trait]
impl Job for Fuzzed {
    const CLASS: &'static str = "Fuzzed";
    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(dto) = serde_json::from_slice::<NewJobDto>(data)
        && let Ok(job) = NewJob::try_from(dto)
    {
        let _ = job.check(1 << 20);
    }
    if let Ok(args) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut registry = Registry::new();
        registry.register::<Fuzzed>();
        let _ = registry.decode("Fuzzed", &args);
        assert!(registry.decode("Unknown", &args).is_err());
    }
});
