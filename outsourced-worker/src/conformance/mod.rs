//! The worker's scenarios of the conformance suite: delayed_job's worker-level cases (contract
//! §3.6, §3.13, §3.18, §3.19, W-1 to W-9 where they apply), run through a [`Worker`] over the
//! harness's backend, so that they hold on every backend.

mod commands;
mod jobs;
mod lifecycle;
mod running;

use std::sync::atomic::{AtomicU64, Ordering};

use outsourced_core::conformance::{Harness, Scenario, ok};
use outsourced_core::{JobExt, JobId, JobRecord};

use crate::{Worker, WorkerOptions};

macro_rules! scenarios {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every worker scenario.
        pub fn scenarios() -> Vec<Scenario> {
            vec![$(Scenario {
                name: stringify!($name),
                run: |h| Box::pin($module::$name(h)),
            }),*]
        }
    };
}

scenarios![
    running::hooks_run_in_delayed_jobs_order,
    running::work_off_runs_at_most_n_jobs_and_counts_them,
    running::the_worker_takes_only_its_queues,
    running::a_timeout_is_an_ordinary_failure,
    running::the_workers_time_limit_caps_the_jobs,
    running::a_panic_is_a_failed_attempt,
    running::a_class_the_worker_does_not_run_stays_waiting,
    running::a_catch_all_worker_fails_an_unknown_class_at_once,
    running::undecodable_arguments_fail_at_once,
    running::a_job_reschedules_itself,
    running::attempts_run_out_and_the_failure_hook_runs_once,
    running::a_failing_failure_hook_still_fails_the_job,
    running::a_permanent_error_skips_the_retries,
    running::a_jobs_result_is_kept_and_one_too_large_fails_it,
    lifecycle::a_cancel_stops_a_running_job,
    lifecycle::shutdown_lets_running_jobs_finish,
    lifecycle::shutdown_releases_what_cannot_finish,
    lifecycle::a_second_signal_stops_at_once,
    lifecycle::exit_on_complete_returns_when_idle,
    commands::a_command_gets_its_arguments_and_succeeds,
    commands::a_commands_output_is_its_result,
    commands::a_failing_command_leaves_its_stderr_in_the_history,
    commands::a_command_gets_the_attachment_as_a_file,
    commands::a_timed_out_command_leaves_no_process_behind,
    commands::a_cancelled_command_leaves_no_process_behind,
];

/// Runs every worker scenario against fresh harnesses from `make`.
pub async fn run<F, Fut>(backend_name: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    outsourced_core::conformance::run_scenarios(backend_name, scenarios(), make).await;
}

/// A key no other scenario uses, for the global logs of the test jobs.
fn unique_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("k{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A worker with the harness's first worker identity, the test job types, and `options`.
fn worker(h: &Harness, options: WorkerOptions) -> Worker {
    let me = h.w(0);
    Worker::new(me.backend.clone(), &me.id.worker)
        .instance(&me.id.instance)
        .registry(jobs::registry())
        .options(options)
}

/// Options that take only from `queue`.
fn only(queue: &str) -> WorkerOptions {
    WorkerOptions {
        queues: vec![queue.to_owned()],
        ..WorkerOptions::default()
    }
}

/// Enqueues a typed job into `queue` as the producer.
async fn enqueue<J: JobExt>(h: &Harness, queue: &str, job: &J) -> JobRecord {
    let new = ok(job.to_new_job(), "build a job").queue(queue);
    h.enqueue(new).await
}

/// The error message of a job's last history row.
async fn last_error(h: &Harness, id: JobId) -> String {
    let history = h.history(id).await;
    let error = history.last().and_then(|row| row.error.clone());
    error.map(|e| e.to_string()).unwrap_or_default()
}
