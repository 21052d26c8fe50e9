//! The job state machine: the states a job is stored in, the events that move it, and the one
//! pure function that decides whether a move is legal.
//!
//! Backends never write a state they did not get from [`transition`]; that is what keeps the
//! rules in one place instead of in each backend's SQL.

use std::fmt;
use std::str::FromStr;

/// The explicit, stored state of a job.
///
/// Three states wait for a worker (`Scheduled`, `Available`, `Retrying`); they differ only in
/// why the job waits. Reserve takes all three once their run time has come, so no write is
/// needed when time passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Waiting for the jobs it depends on to succeed; not yet runnable, but live (it holds a
    /// slot in its bounded queue).
    Pending,
    /// Waiting for a run time in the future (enqueued for later, or a repeat).
    Scheduled,
    /// May run now.
    Available,
    /// Waiting for its next attempt after a failed one.
    Retrying,
    /// Leased by a worker.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished for good: attempts used up, or a permanent error.
    Failed,
    /// Cancelled by an admin or its producer.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Available,
        JobState::Retrying,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The states reserve takes jobs from (once their run time has come).
    pub const WAITING: [JobState; 3] =
        [JobState::Scheduled, JobState::Available, JobState::Retrying];

    /// The lowercase name used in storage, on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Retrying => "retrying",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job waits for a worker.
    pub fn is_waiting(self) -> bool {
        Self::WAITING.contains(&self)
    }

    /// Whether the job holds a slot in its bounded queue: pending, waiting or running.
    pub fn is_live(self) -> bool {
        self.is_waiting() || matches!(self, JobState::Pending | JobState::Running)
    }

    /// Whether the job is finished (succeeded, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        !self.is_live()
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`JobState`] from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job state {0:?} (expected one of pending, scheduled, available, retrying, running, succeeded, failed, cancelled)"
)]
pub struct UnknownState(pub String);

/// The error of parsing an [`Event`] from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown job event {0:?}")]
pub struct UnknownEvent(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Something that happens to a job. The outcome of an event can depend on the job's data
/// (attempts left, a repeat schedule); the caller decides that and says so in the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A worker leases the job.
    Reserve,
    /// The worker reports success.
    Complete,
    /// A repeating job that succeeded is scheduled for its next run.
    Repeat,
    /// The worker reports a failure; `retry` says whether an attempt is left.
    Fail {
        /// Whether the job will be tried again.
        retry: bool,
    },
    /// The lease ran out without an answer; `retry` says whether an attempt is left.
    Expire {
        /// Whether the job will be tried again.
        retry: bool,
    },
    /// The worker gives the lease back without using up an attempt.
    Release,
    /// The job is cancelled: at once when it waits, or when the attempt of a running job with a
    /// cancel request ends other than by success.
    Cancel,
    /// An admin asks to run the job now (again).
    Retry,
    /// A duplicate enqueue replaces a waiting job's arguments and run time (debounce);
    /// `scheduled` says whether the new run time is still to come.
    Replace {
        /// Whether the job waits for a run time in the future.
        scheduled: bool,
    },
    /// The last of the jobs a pending job depends on succeeded; `scheduled` says whether its
    /// run time is still to come.
    Unblock {
        /// Whether the job waits for a run time in the future.
        scheduled: bool,
    },
}

impl Event {
    /// A stable snake_case name, for storage and the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Reserve => "reserve",
            Event::Complete => "complete",
            Event::Repeat => "repeat",
            Event::Fail { retry: true } => "fail_retry",
            Event::Fail { retry: false } => "fail_final",
            Event::Expire { retry: true } => "expire_retry",
            Event::Expire { retry: false } => "expire_final",
            Event::Release => "release",
            Event::Cancel => "cancel",
            Event::Retry => "retry",
            Event::Replace { scheduled: true } => "replace_scheduled",
            Event::Replace { scheduled: false } => "replace_available",
            Event::Unblock { scheduled: true } => "unblock_scheduled",
            Event::Unblock { scheduled: false } => "unblock_available",
        }
    }
}

impl FromStr for Event {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let events = [
            Event::Reserve,
            Event::Complete,
            Event::Repeat,
            Event::Fail { retry: true },
            Event::Fail { retry: false },
            Event::Expire { retry: true },
            Event::Expire { retry: false },
            Event::Release,
            Event::Cancel,
            Event::Retry,
            Event::Replace { scheduled: true },
            Event::Replace { scheduled: false },
            Event::Unblock { scheduled: true },
            Event::Unblock { scheduled: false },
        ];
        events
            .into_iter()
            .find(|event| event.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Event::Fail { retry: true } => "fail (retry)",
            Event::Fail { retry: false } => "fail (final)",
            Event::Expire { retry: true } => "expire (retry)",
            Event::Expire { retry: false } => "expire (final)",
            Event::Replace { .. } => "replace",
            Event::Unblock { .. } => "unblock",
            other => other.as_str(),
        };
        f.write_str(name)
    }
}

/// An event that is not allowed in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a job that is {from}")]
pub struct InvalidTransition {
    /// The state the job was in.
    pub from: JobState,
    /// The event that was refused.
    pub event: Event,
}

/// The state a new job starts in: `Pending` while jobs it depends on have not succeeded yet,
/// else `Scheduled` when its run time is in the future, else `Available`.
pub fn initial_state(run_at_is_future: bool) -> JobState {
    if run_at_is_future {
        JobState::Scheduled
    } else {
        JobState::Available
    }
}

/// Applies `event` to a job in state `from`, returning the new state or refusing the move.
///
/// Terminal states only leave through `Retry` (failed, cancelled) or `Repeat` (succeeded, in the
/// same transaction as the completion), so a late or duplicate call can never overwrite them.
pub fn transition(from: JobState, event: Event) -> Result<JobState, InvalidTransition> {
    use JobState::*;
    let to = match (from, event) {
        (Scheduled | Available | Retrying, Event::Reserve) => Running,
        (Running, Event::Complete) => Succeeded,
        (Succeeded, Event::Repeat) => Scheduled,
        (Running, Event::Fail { retry: true } | Event::Expire { retry: true }) => Retrying,
        (Running, Event::Fail { retry: false } | Event::Expire { retry: false }) => Failed,
        (Running, Event::Release) => Available,
        (Pending | Scheduled | Available | Retrying | Running, Event::Cancel) => Cancelled,
        (Scheduled | Retrying | Failed | Cancelled, Event::Retry) => Available,
        // Only a job that has not started: a retrying one has, and keeps its back-off.
        (Scheduled | Available, Event::Replace { scheduled: true }) => Scheduled,
        (Scheduled | Available, Event::Replace { scheduled: false }) => Available,
        (Pending, Event::Unblock { scheduled: true }) => Scheduled,
        (Pending, Event::Unblock { scheduled: false }) => Available,
        _ => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    /// Checks one row of the table: `None` means the move must be refused.
    fn check(from: JobState, event: Event, expected: Option<JobState>) {
        let got = transition(from, event).ok();
        assert_eq!(got, expected, "{from} --{event}-->");
    }

    const FAIL_RETRY: Event = Event::Fail { retry: true };
    const FAIL_FINAL: Event = Event::Fail { retry: false };
    const EXPIRE_RETRY: Event = Event::Expire { retry: true };
    const EXPIRE_FINAL: Event = Event::Expire { retry: false };
    const REPLACE_NOW: Event = Event::Replace { scheduled: false };
    const REPLACE_LATER: Event = Event::Replace { scheduled: true };
    const UNBLOCK_NOW: Event = Event::Unblock { scheduled: false };
    const UNBLOCK_LATER: Event = Event::Unblock { scheduled: true };

    #[test]
    fn transition_table() {
        #[rustfmt::skip]
        let table: &[(JobState, Event, Option<JobState>)] = &[
            (Scheduled, Event::Reserve, Some(Running)),
            (Available, Event::Reserve, Some(Running)),
            (Retrying, Event::Reserve, Some(Running)),
            (Running, Event::Reserve, None),
            (Succeeded, Event::Reserve, None),
            (Failed, Event::Reserve, None),
            (Cancelled, Event::Reserve, None),

            (Running, Event::Complete, Some(Succeeded)),
            (Available, Event::Complete, None),
            (Retrying, Event::Complete, None),
            (Succeeded, Event::Complete, None),
            (Failed, Event::Complete, None),
            (Cancelled, Event::Complete, None),

            (Succeeded, Event::Repeat, Some(Scheduled)),
            (Running, Event::Repeat, None),
            (Failed, Event::Repeat, None),
            (Cancelled, Event::Repeat, None),

            (Running, FAIL_RETRY, Some(Retrying)),
            (Running, FAIL_FINAL, Some(Failed)),
            (Available, FAIL_RETRY, None),
            (Succeeded, FAIL_FINAL, None),
            (Failed, FAIL_RETRY, None),

            (Running, EXPIRE_RETRY, Some(Retrying)),
            (Running, EXPIRE_FINAL, Some(Failed)),
            (Retrying, EXPIRE_RETRY, None),
            (Succeeded, EXPIRE_FINAL, None),
            (Cancelled, EXPIRE_FINAL, None),

            (Running, Event::Release, Some(Available)),
            (Available, Event::Release, None),
            (Succeeded, Event::Release, None),

            (Scheduled, Event::Cancel, Some(Cancelled)),
            (Available, Event::Cancel, Some(Cancelled)),
            (Retrying, Event::Cancel, Some(Cancelled)),
            (Running, Event::Cancel, Some(Cancelled)),
            (Succeeded, Event::Cancel, None),
            (Failed, Event::Cancel, None),
            (Cancelled, Event::Cancel, None),

            (Scheduled, Event::Retry, Some(Available)),
            (Retrying, Event::Retry, Some(Available)),
            (Failed, Event::Retry, Some(Available)),
            (Cancelled, Event::Retry, Some(Available)),
            (Available, Event::Retry, None),
            (Running, Event::Retry, None),
            (Succeeded, Event::Retry, None),

            (Scheduled, REPLACE_LATER, Some(Scheduled)),
            (Available, REPLACE_LATER, Some(Scheduled)),
            (Scheduled, REPLACE_NOW, Some(Available)),
            (Available, REPLACE_NOW, Some(Available)),
            (Retrying, REPLACE_NOW, None),
            (Running, REPLACE_LATER, None),
            (Succeeded, REPLACE_NOW, None),
            (Failed, REPLACE_NOW, None),
            (Cancelled, REPLACE_LATER, None),

            (Pending, UNBLOCK_NOW, Some(Available)),
            (Pending, UNBLOCK_LATER, Some(Scheduled)),
            (Pending, Event::Cancel, Some(Cancelled)),
            (Pending, Event::Reserve, None),
            (Pending, Event::Retry, None),
            (Pending, REPLACE_NOW, None),
            (Pending, Event::Complete, None),
            (Available, UNBLOCK_NOW, None),
            (Scheduled, UNBLOCK_LATER, None),
            (Succeeded, UNBLOCK_NOW, None),
            (Cancelled, UNBLOCK_NOW, None),
        ];
        for &(from, event, expected) in table {
            check(from, event, expected);
        }
    }

    #[test]
    fn no_event_leaves_a_terminal_state_except_retry_and_repeat() {
        let events = [
            Event::Reserve,
            Event::Complete,
            FAIL_RETRY,
            FAIL_FINAL,
            EXPIRE_RETRY,
            EXPIRE_FINAL,
            Event::Release,
            Event::Cancel,
            REPLACE_NOW,
            REPLACE_LATER,
            UNBLOCK_NOW,
            UNBLOCK_LATER,
        ];
        for from in [Succeeded, Failed, Cancelled] {
            for event in events {
                check(from, event, None);
            }
        }
    }

    #[test]
    fn event_names_round_trip() {
        let events = [
            Event::Reserve,
            FAIL_RETRY,
            FAIL_FINAL,
            EXPIRE_RETRY,
            EXPIRE_FINAL,
            Event::Retry,
            REPLACE_NOW,
            REPLACE_LATER,
            UNBLOCK_NOW,
            UNBLOCK_LATER,
        ];
        for event in events {
            assert_eq!(event.as_str().parse::<Event>(), Ok(event));
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn liveness() {
        let live: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(live, [Pending, Scheduled, Available, Retrying, Running]);
        assert!(!Pending.is_waiting());
        assert_eq!(initial_state(true), Scheduled);
        assert_eq!(initial_state(false), Available);
    }
}
