//! Telling the backend's [`Observer`] what happened, once it is committed.
//!
//! The code that changes jobs records events where it makes the change (a transition's
//! `Writes`, an enqueue's new rows, a claim's grant) into [`Events`] that travel back with the
//! transaction's result; once the transaction committed, [`SqlBackend::tell`] hands them to
//! the observer. A transaction that is rolled back (or run again after a conflict) drops its
//! result and its events with it, so nothing rolled back is ever counted.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::SqlBackend;
use crate::convert::time;
use crate::entity::job;
use outsourced_core::{Event, JobEvent, Outcome};

/// What happened, kept until the commit.
enum Happened {
    Enqueued,
    Started(Duration),
    Ended(Outcome, Duration),
    Retried,
    Duplicate,
    HeldBack,
    /// The last of its dependencies succeeded: it may run now or at its run time.
    Unblocked,
}

struct Pending {
    queue: String,
    class: String,
    happened: Happened,
}

impl Pending {
    /// What the observer hears of it, if anything.
    fn event(&self) -> Option<JobEvent<'_>> {
        let (queue, class) = (self.queue.as_str(), self.class.as_str());
        let event = match self.happened {
            Happened::Enqueued => JobEvent::Enqueued { queue, class },
            Happened::Started(waited) => JobEvent::Started {
                queue,
                class,
                waited,
            },
            Happened::Ended(outcome, ran) => JobEvent::Ended {
                queue,
                class,
                outcome,
                ran,
            },
            Happened::Retried => JobEvent::Retried { queue, class },
            Happened::Duplicate => JobEvent::Duplicate { queue, class },
            Happened::HeldBack => JobEvent::HeldBack { queue },
            Happened::Unblocked => return None,
        };
        Some(event)
    }
}

/// The events of one transaction, to tell once it committed.
#[derive(Default)]
#[must_use = "events are told with `SqlBackend::tell` once their transaction committed"]
pub(crate) struct Events(Vec<Pending>);

impl Events {
    fn push(&mut self, row: &job::Model, happened: Happened) {
        self.0.push(Pending {
            queue: row.queue.clone(),
            class: row.class.clone(),
            happened,
        });
    }

    /// The enqueue of each of `rows`.
    pub(crate) fn enqueued<'a>(rows: impl IntoIterator<Item = &'a job::Model>) -> Events {
        let mut events = Events::default();
        for row in rows {
            events.push(row, Happened::Enqueued);
        }
        events
    }

    /// What an enqueue placed: each job stored, or each duplicate of a unique key (the row is
    /// then the holder's).
    pub(crate) fn placed<'a>(placed: impl IntoIterator<Item = (&'a job::Model, bool)>) -> Events {
        let mut events = Events::default();
        for (row, duplicate) in placed {
            let happened = match duplicate {
                true => Happened::Duplicate,
                false => Happened::Enqueued,
            };
            events.push(row, happened);
        }
        events
    }

    /// A reserve that found `queue` at a run limit and took nothing from it.
    pub(crate) fn held_back(&mut self, queue: &str) {
        self.0.push(Pending {
            queue: queue.to_owned(),
            class: String::new(),
            happened: Happened::HeldBack,
        });
    }

    /// The start of an attempt of `row`, which waited `waited` past its run time.
    pub(crate) fn started(&mut self, row: &job::Model, waited: Duration) {
        self.push(row, Happened::Started(waited));
    }

    /// The end of an attempt, or an admin's retry, for a step `event` of `row` (as read
    /// before the step) at `now`; other steps tell nothing.
    pub(crate) fn step(&mut self, row: &job::Model, event: Event, now: DateTime<Utc>) {
        let ran = row
            .started_at
            .map(|started| (now - time(started)).to_std().unwrap_or_default())
            .unwrap_or_default();
        let outcome = match event {
            Event::Complete => Outcome::Completed,
            Event::Fail { retry: true } => Outcome::RetryScheduled,
            Event::Fail { retry: false } => Outcome::Failed,
            Event::Expire { .. } => Outcome::Reclaimed,
            Event::Release => Outcome::Released,
            Event::Cancel if row.state == "running" => Outcome::Released,
            Event::Retry => return self.push(row, Happened::Retried),
            Event::Unblock { .. } => return self.push(row, Happened::Unblocked),
            _ => return,
        };
        self.push(row, Happened::Ended(outcome, ran));
    }

    /// The success of an attempt of a job of `queue` and `class` that ran for `ran`.
    pub(crate) fn completed(&mut self, queue: String, class: String, ran: Duration) {
        self.0.push(Pending {
            queue,
            class,
            happened: Happened::Ended(Outcome::Completed, ran),
        });
    }

    /// Whether nothing happened.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s events after these.
    pub(crate) fn append(&mut self, mut other: Events) {
        self.0.append(&mut other.0);
    }
}

impl SqlBackend {
    /// Tells the observer, if any, of `events`, whose transaction has committed.
    pub(crate) fn tell(&self, events: Events) {
        self.tally(&events);
        if let Some(observer) = self.observer() {
            for event in events.0.iter().filter_map(Pending::event) {
                observer.observe(event);
            }
        }
        // A job of a limited queue that ended leaves room that reservers may be waiting for;
        // a job whose dependencies all succeeded is one they may take.
        let wake = events.0.iter().any(|one| match one.happened {
            Happened::Ended(..) => self.inner.limited.contains(&one.queue),
            Happened::Unblocked => true,
            _ => false,
        });
        if wake && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.wake_soon(&runtime);
        }
    }

    /// Counts `events` into this process's tallies (`tally.rs`), in the backend's minute.
    fn tally(&self, events: &Events) {
        if events.is_empty() {
            return;
        }
        let mut counting = self.inner.tallies.at(crate::convert::ms(self.now()));
        for one in &events.0 {
            let tally = counting.of(&one.queue);
            match one.happened {
                Happened::Enqueued => tally.enqueued += 1,
                Happened::Started(waited) => tally.start(waited),
                Happened::Ended(outcome, _) => tally.end(outcome),
                Happened::Retried
                | Happened::Duplicate
                | Happened::HeldBack
                | Happened::Unblocked => {}
            }
        }
    }
}
