//! The conformance suite: scenarios every [`Backend`] must pass, written once.
//!
//! Each scenario is a plain `pub async fn(h: &Harness)`. A backend's test builds a fresh
//! [`Harness`] per scenario (so scenarios never see each other's jobs) and hands the factory
//! to [`run`]. Nothing sleeps: time moves through the harness's [`TestClock`], and waits end on
//! signals.
//!
//! `docs/conformance.md` maps every promise of the `Backend` docs, delayed_job's shared spec
//! and the P0 reliability cases to the scenario that checks it.

/// Asserts that a result is the error matching a pattern.
macro_rules! assert_error {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "expected Err({}), got {:?}",
                stringify!($pattern),
                other
            ),
        }
    };
}

mod admin;
mod attachments;
mod batches;
mod bounded;
mod dependencies;
mod enqueue;
mod follow_ups;
mod harness;
mod lease;
mod limits;
mod long_poll;
mod queues;
mod reads;
mod reclaim;
mod reserve;
mod results;
mod retention;
mod unique;

pub use harness::{Client, Harness, Invariant, QueueHook, WorkerClient, noop, ok};

use std::future::Future;
use std::pin::Pin;

/// A scenario's future.
pub type ScenarioFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One named scenario.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Its name (the function's).
    pub name: &'static str,
    /// Runs it against a harness.
    pub run: for<'a> fn(&'a Harness) -> ScenarioFuture<'a>,
}

macro_rules! scenarios {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every scenario, in a stable order.
        pub fn scenarios() -> Vec<Scenario> {
            vec![$(Scenario {
                name: stringify!($name),
                run: |h| Box::pin($module::$name(h)),
            }),*]
        }
    };
}

scenarios![
    enqueue::enqueue_fills_in_the_defaults,
    enqueue::enqueue_keeps_the_options_it_is_given,
    enqueue::a_future_run_time_makes_a_job_scheduled,
    enqueue::a_cron_job_first_runs_at_its_schedules_first_point,
    enqueue::enqueue_writes_the_first_history_row,
    enqueue::an_unknown_queue_is_refused_and_nothing_is_stored,
    enqueue::invalid_jobs_are_refused_and_nothing_is_stored,
    enqueue::large_arguments_round_trip,
    enqueue::a_paused_queue_accepts_jobs,
    enqueue::a_typed_job_enqueues_with_its_own_options,
    enqueue::a_batch_returns_ids_in_order,
    enqueue::a_batch_with_one_bad_job_stores_nothing,
    enqueue::an_empty_batch_stores_nothing,
    bounded::a_full_queue_refuses_and_stores_nothing,
    bounded::a_batch_over_the_limit_stores_nothing,
    bounded::only_live_jobs_hold_slots,
    bounded::a_repeating_job_keeps_its_slot,
    bounded::retrying_into_a_full_queue_is_refused,
    bounded::concurrent_producers_never_exceed_the_limit,
    reserve::reserve_takes_every_waiting_state_once_due,
    reserve::reserve_skips_future_running_and_finished_jobs,
    reserve::reserve_orders_by_priority_then_run_time_then_id,
    reserve::priority_bounds_are_inclusive,
    reserve::queue_filters_and_no_filter_means_all,
    reserve::reserve_takes_only_the_classes_given,
    reserve::paused_queues_hand_out_nothing,
    reserve::reserve_leases_the_job,
    reserve::a_leased_job_is_hidden_from_others,
    reserve::reserve_hands_out_batches_up_to_the_limit,
    reserve::a_zero_limit_is_invalid,
    reserve::the_lease_length_is_clamped,
    reserve::concurrent_reservers_never_share_a_job,
    long_poll::a_long_poll_is_woken_by_an_enqueue,
    long_poll::each_new_job_wakes_a_long_poll_of_its_queue,
    long_poll::a_new_job_wakes_a_long_poll_that_runs_its_class,
    long_poll::a_long_poll_that_times_out_returns_nothing,
    limits::max_running_caps_what_runs_at_once,
    limits::a_reserve_of_every_queue_keeps_the_limits,
    limits::an_expired_lease_gives_its_place_back_at_once,
    limits::every_end_of_a_running_job_gives_its_place_back,
    limits::a_rate_spaces_starts_evenly,
    limits::jobs_held_back_by_a_limit_are_due,
    limits::a_changed_rate_counts_from_the_last_start,
    limits::a_per_key_limit_runs_each_keys_jobs_in_turn,
    limits::an_expired_lease_gives_its_keys_place_back_at_once,
    limits::a_rate_per_key_spaces_each_keys_starts,
    limits::a_long_poll_held_back_is_woken_when_room_appears,
    limits::limits_can_be_changed_and_lifted,
    limits::a_limit_set_or_changed_while_jobs_run_counts_them,
    limits::concurrent_reservers_never_exceed_max_running,
    lease::heartbeats_keep_a_lease_alive,
    lease::a_stale_heartbeat_changes_nothing,
    lease::heartbeats_report_a_cancel_request,
    lease::another_instance_cannot_use_a_lease,
    lease::reports_on_unknown_jobs_are_not_found,
    lease::complete_succeeds_once,
    lease::a_repeated_complete_changes_nothing,
    lease::a_late_complete_after_expiry_is_refused,
    lease::a_late_complete_after_a_new_lease_is_refused,
    lease::batch_complete_answers_each_lease,
    results::results_are_kept_with_their_attempt,
    results::a_repeated_complete_keeps_the_first_result,
    results::each_run_of_a_repeating_job_keeps_its_result,
    follow_ups::follow_ups_are_stored_with_the_success,
    follow_ups::a_refused_follow_up_refuses_the_success_and_changes_nothing,
    follow_ups::a_refused_follow_up_refuses_its_success_alone_in_a_batch,
    follow_ups::a_repeated_success_stores_its_follow_ups_once,
    dependencies::a_job_runs_once_its_last_dependency_succeeded_with_their_results,
    dependencies::a_failed_or_cancelled_dependency_cancels_its_dependants_in_turn,
    dependencies::a_job_depends_only_on_jobs_that_can_still_succeed,
    dependencies::a_job_pending_on_dependencies_holds_its_slot_in_a_bounded_queue,
    dependencies::the_last_dependencies_ending_at_once_release_the_dependant_once,
    batches::a_batch_runs_its_callback_once_its_jobs_ended_with_their_counts,
    batches::a_batch_ends_at_its_close_when_its_jobs_ended_and_takes_no_more,
    batches::a_job_of_a_batch_adds_to_it_and_the_batch_waits_for_those,
    batches::a_batch_is_cancelled_as_a_whole,
    batches::a_batch_whose_callback_has_no_room_is_refused,
    batches::an_ended_batch_is_pruned_once_its_callback_and_jobs_are,
    batches::the_last_jobs_of_a_batch_ending_at_once_run_its_callback_once,
    unique::a_duplicate_stores_nothing_and_answers_the_holder,
    unique::a_key_is_free_once_its_job_has_finished,
    unique::a_key_with_a_period_outlives_its_job,
    unique::a_refused_duplicate_names_the_holder_and_refuses_its_batch,
    unique::a_batch_says_which_jobs_were_duplicates,
    unique::concurrent_enqueues_of_one_key_store_one_job,
    unique::a_job_type_can_be_unique_by_its_arguments,
    unique::a_duplicate_can_replace_a_waiting_holder,
    unique::jobs_can_be_listed_by_their_key,
    lease::a_repeating_job_is_scheduled_again,
    lease::a_cron_job_runs_again_at_its_next_point,
    lease::a_failure_is_retried_after_the_backoff,
    lease::a_failure_may_name_its_own_wait,
    lease::attempts_run_out_and_the_job_fails,
    lease::a_permanent_failure_is_not_retried,
    lease::a_stale_failure_changes_nothing,
    lease::a_repeated_failure_changes_nothing,
    lease::release_gives_the_attempt_back,
    lease::a_stale_release_changes_nothing,
    lease::release_all_releases_only_the_callers_instance,
    reclaim::an_expired_lease_is_a_failed_attempt,
    reclaim::only_expired_leases_are_reclaimed,
    reclaim::an_expiry_with_no_attempt_left_fails_the_job,
    reclaim::an_expiry_with_a_cancel_request_cancels,
    reclaim::a_job_completed_before_the_reclaim_stays_completed,
    reclaim::reclaim_is_bounded_by_its_limit,
    admin::cancel_ends_a_waiting_job,
    admin::cancel_asks_a_running_job_to_stop,
    admin::a_cancelled_run_that_succeeds_is_not_repeated,
    admin::cancel_of_finished_and_unknown_jobs,
    admin::retry_revives_a_failed_job_with_fresh_attempts,
    admin::retry_runs_a_waiting_job_now,
    admin::retry_of_a_running_job_is_refused,
    admin::retry_into_a_deleted_queue_is_refused,
    queues::create_queue_has_a_finite_default_limit,
    queues::update_queue_changes_limit_and_pause,
    queues::delete_queue_only_without_live_jobs,
    queues::queues_list_their_counts,
    reads::lookups_of_unknown_jobs_are_not_found,
    reads::history_is_complete_and_gap_free,
    reads::jobs_filter_and_page_newest_first,
    reads::jobs_are_listed_by_class_prefix,
    reads::jobs_filter_by_enqueue_time,
    reads::counts_by_queue_state_and_owner,
    retention::prune_removes_only_finished_jobs_past_their_retention,
    retention::prune_is_bounded_and_takes_the_oldest_first,
    retention::a_retried_job_is_live_again_and_kept,
    attachments::a_job_and_its_attachment_go_up_and_come_down_intact,
    attachments::an_empty_attachment_is_an_attachment,
    attachments::a_damaged_upload_keeps_nothing,
    attachments::a_duplicate_with_a_file_keeps_no_bytes_and_says_so,
    attachments::a_refused_job_keeps_no_attachment,
    attachments::a_file_is_attached_before_the_job_runs,
    attachments::a_running_or_unknown_job_takes_no_attachment,
    attachments::a_job_without_an_attachment_says_so,
];

/// Runs every backend scenario (or those whose name contains `OUTSOURCED_SCENARIO`), each
/// against a fresh harness from `make`, and panics naming every scenario that failed.
pub async fn run<F, Fut>(backend_name: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    run_scenarios(backend_name, scenarios(), make).await;
}

/// Runs the given scenarios like [`run`] (other crates add their own, such as the worker's).
pub async fn run_scenarios<F, Fut>(backend_name: &str, scenarios: Vec<Scenario>, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Harness>,
{
    let only = std::env::var("OUTSOURCED_SCENARIO").ok();
    let mut failed = Vec::new();
    let mut ran = 0;
    for scenario in scenarios {
        if only
            .as_deref()
            .is_some_and(|only| !scenario.name.contains(only))
        {
            continue;
        }
        let harness = make().await;
        let outcome = tokio::spawn(async move {
            (scenario.run)(&harness).await;
            if let Some(invariant) = &harness.invariant
                && let Err(broken) = invariant().await
            {
                panic!("after the scenario: {broken}");
            }
        })
        .await;
        ran += 1;
        if let Err(error) = outcome {
            eprintln!(
                "[{backend_name}] scenario {} FAILED: {error}",
                scenario.name
            );
            failed.push(scenario.name);
        }
    }
    eprintln!(
        "[{backend_name}] {ran} conformance scenarios ran, {} failed",
        failed.len()
    );
    if ran == 0 {
        eprintln!("[{backend_name}] no scenario matched OUTSOURCED_SCENARIO={only:?}");
    }
    assert!(
        failed.is_empty(),
        "[{backend_name}] failed scenarios: {failed:?}"
    );
}
