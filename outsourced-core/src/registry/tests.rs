//! The hook order of delayed_job's shared spec (SS-21 to SS-26) and the registry's decoding.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::types::{JobId, JobRecord};

/// Logs of hook calls, one per test job (tests run in parallel).
static LOGS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

fn log(id: u32, entry: impl Into<String>) {
    LOGS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, entry.into()));
}

fn logged(id: u32) -> Vec<String> {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    logs.iter()
        .filter(|(i, _)| *i == id)
        .map(|(_, e)| e.clone())
        .collect()
}

/// A job whose hooks record themselves; `fail_in` names the hook that returns an error.
#[derive(Serialize, Deserialize)]
struct CallbackJob {
    id: u32,
    fail_in: Vec<String>,
}

impl CallbackJob {
    fn step(&self, name: &str) -> Result<(), JobError> {
        log(self.id, name);
        if self.fail_in.iter().any(|hook| hook == name) {
            Err(JobError::msg(format!("{name} broke")))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Job for CallbackJob {
    const CLASS: &'static str = "CallbackJob";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("perform")
    }
    async fn before(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("before")
    }
    async fn success(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("success")
    }
    async fn error(&self, _ctx: &JobContext, error: &JobError) -> Result<(), JobError> {
        log(self.id, format!("error: {error}"));
        self.step("error")
    }
    async fn after(&self, _ctx: &JobContext) -> Result<(), JobError> {
        self.step("after")
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register::<CallbackJob>();
    registry
}

fn context() -> JobContext {
    let mut job = JobRecord::example("default", CallbackJob::CLASS);
    job.id = JobId(7);
    job.state = crate::JobState::Running;
    job.attempts = 1;
    JobContext::new(&job)
}

/// Runs a `CallbackJob` that fails in the hooks `fail_in`, returning its log and its outcome.
async fn run(id: u32, fail_in: &[&str]) -> (Vec<String>, Result<(), String>) {
    let args = json!({ "id": id, "fail_in": fail_in });
    let job = registry().decode("CallbackJob", &args).expect("decodes");
    let outcome = invoke(job.as_ref(), &context()).await;
    (logged(id), outcome.map_err(|e| e.to_string()))
}

#[tokio::test]
async fn success_runs_before_perform_success_after() {
    let (log, outcome) = run(1, &[]).await;
    assert_eq!(log, ["before", "perform", "success", "after"]);
    assert_eq!(outcome, Ok(()));
}

#[tokio::test]
async fn a_failing_perform_runs_error_then_after_and_skips_success() {
    let (log, outcome) = run(2, &["perform"]).await;
    assert_eq!(
        log,
        [
            "before",
            "perform",
            "error: perform broke",
            "error",
            "after"
        ]
    );
    assert_eq!(outcome, Err("perform broke".into()));
}

#[tokio::test]
async fn a_failing_before_skips_perform_and_success() {
    let (log, outcome) = run(3, &["before"]).await;
    assert_eq!(log, ["before", "error: before broke", "error", "after"]);
    assert_eq!(outcome, Err("before broke".into()));
}

#[tokio::test]
async fn a_failing_success_hook_fails_the_attempt() {
    let (log, outcome) = run(4, &["success"]).await;
    assert_eq!(
        log,
        [
            "before",
            "perform",
            "success",
            "error: success broke",
            "error",
            "after"
        ]
    );
    assert_eq!(outcome, Err("success broke".into()));
}

#[tokio::test]
async fn an_error_from_after_replaces_the_outcome() {
    let (log, outcome) = run(5, &["after"]).await;
    assert_eq!(log, ["before", "perform", "success", "after"]);
    assert_eq!(outcome, Err("after broke".into()));
}

#[tokio::test]
async fn an_error_from_the_error_hook_replaces_the_original() {
    let (log, outcome) = run(6, &["perform", "error"]).await;
    assert_eq!(
        log,
        [
            "before",
            "perform",
            "error: perform broke",
            "error",
            "after"
        ]
    );
    assert_eq!(outcome, Err("error broke".into()));
}

#[test]
fn unknown_classes_and_bad_arguments_are_bad_payloads() {
    let registry = registry();
    let unknown = registry.decode("Nope", &json!([])).err();
    assert!(
        matches!(&unknown, Some(Error::BadPayload { message }) if message.contains("\"Nope\"")),
        "{unknown:?}"
    );
    let bad = registry.decode("CallbackJob", &json!({ "id": "x" })).err();
    assert!(matches!(bad, Some(Error::BadPayload { .. })), "{bad:?}");
}

#[test]
#[should_panic(expected = "registered twice")]
fn registering_a_class_twice_panics() {
    registry().register::<CallbackJob>();
}

/// delayed_job's `NamedJob`: a display name of its own.
#[derive(Serialize, Deserialize)]
struct NamedJob;

#[async_trait]
impl Job for NamedJob {
    const CLASS: &'static str = "NamedJob";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    fn display_name(&self) -> String {
        "named_job".into()
    }
}

#[test]
fn the_display_name_defaults_to_the_class() {
    let args = json!({ "id": 99, "fail_in": [] });
    let job = registry().decode("CallbackJob", &args).expect("decodes");
    assert_eq!(job.display_name(), "CallbackJob", "SS-39");
    let mut registry = registry();
    registry.register::<NamedJob>();
    let named = registry.decode("NamedJob", &json!(null)).expect("decodes");
    assert_eq!(named.display_name(), "named_job", "SS-40");
}
