//! Unique jobs: a key that makes a producer's "this job once" hold across every producer.

use std::time::Duration;

use crate::error::Error;
use crate::types::{JobId, is_unprintable};

/// What became of one job of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Enqueued {
    /// The stored job, or (for a duplicate) the job that holds its key.
    pub id: JobId,
    /// Whether it was a duplicate, and nothing was stored for it.
    pub duplicate: bool,
}

/// The longest unique key, in bytes.
pub const MAX_UNIQUE_KEY: usize = 191;

/// What a unique key is unique among.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UniqueAcross {
    /// Jobs of the same queue and class (the default).
    #[default]
    Class,
    /// Every job of the same queue, whatever its class.
    Queue,
}

/// What an enqueue whose key is taken does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnDuplicate {
    /// Stores nothing and answers with the job that holds the key (the default).
    #[default]
    Existing,
    /// Stores nothing and fails with [`Error::Duplicate`], naming the job that holds the key.
    Refuse,
    /// Debounce: stores nothing, gives the job that holds the key the duplicate's arguments
    /// and run time (a `replaced` history row; scheduled or available by the new run time),
    /// and answers with it. Only a holder that has not started (scheduled or available), of
    /// the duplicate's class, enqueued by the same producer (or replaced by an admin) is
    /// changed; any other (running, retrying, finished with a key kept for a period, another
    /// class's or another producer's) is left as it is, as with [`OnDuplicate::Existing`].
    Replace,
}

/// A job's unique key and its rules. A key is taken by the job that was stored with it:
///
/// - without a `period`, while that job is live (scheduled, available, retrying or running);
///   once it has succeeded, failed or been cancelled the next enqueue with the key is stored;
/// - with a `period`, for that long after the job was enqueued, whatever its state.
///
/// A duplicate stores nothing and takes no queue slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unique {
    /// The key, chosen by the producer (an order number, a user id and a date, a digest of
    /// the arguments).
    pub key: String,
    /// What the key is unique among.
    pub across: UniqueAcross,
    /// How long the key stays taken after the enqueue, whatever the job's state; while the
    /// job is live when unset.
    pub period: Option<Duration>,
    /// What a duplicate does.
    pub on_duplicate: OnDuplicate,
}

impl Unique {
    /// The key `key`, unique among jobs of the same queue and class while its job is live,
    /// a duplicate answered with the existing job.
    pub fn key(key: impl Into<String>) -> Self {
        Unique {
            key: key.into(),
            across: UniqueAcross::default(),
            period: None,
            on_duplicate: OnDuplicate::default(),
        }
    }

    /// A key made of the digest of `args` as serialized (SHA-256, hex): jobs with the same
    /// arguments share it, so that a job type can be unique by its arguments (see
    /// [`Job::unique`](crate::Job::unique)). Field order counts: the same struct with the same
    /// values always gives the same key. (A value that cannot be serialized, whose enqueue fails
    /// anyway, digests as nothing.)
    pub fn of_args(args: &impl serde::Serialize) -> Self {
        use sha2::Digest;
        let bytes = serde_json::to_vec(args).unwrap_or_default();
        Unique::key(format!("args:{}", hex::encode(sha2::Sha256::digest(bytes))))
    }

    /// Makes the key unique among every job of the queue, whatever its class.
    pub fn across_queue(mut self) -> Self {
        self.across = UniqueAcross::Queue;
        self
    }

    /// Keeps the key taken for `period` after the enqueue, whatever the job's state.
    pub fn period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// Makes a duplicate fail with [`Error::Duplicate`].
    pub fn refuse_duplicates(mut self) -> Self {
        self.on_duplicate = OnDuplicate::Refuse;
        self
    }

    /// Makes a duplicate replace the arguments and run time of the job that holds the key, as
    /// long as it has not started (debounce; see [`OnDuplicate::Replace`]).
    pub fn replace_duplicates(mut self) -> Self {
        self.on_duplicate = OnDuplicate::Replace;
        self
    }

    /// Refuses a key no backend can store: empty, over [`MAX_UNIQUE_KEY`] bytes or with a
    /// control character; or a period under a millisecond.
    pub fn check(&self) -> Result<(), Error> {
        let key = &self.key;
        if key.is_empty() || key.len() > MAX_UNIQUE_KEY || key.chars().any(is_unprintable) {
            return Err(Error::invalid(format!(
                "a unique key must be 1 to {MAX_UNIQUE_KEY} bytes, none of them a control character"
            )));
        }
        if self.period.is_some_and(|p| p.as_millis() == 0) {
            return Err(Error::invalid("a unique period must be at least 1 ms"));
        }
        Ok(())
    }

    /// The scope a backend keeps the key under: the key with its queue (and class), written so
    /// that no two scopes read alike (each part's length comes first).
    pub fn scope(&self, queue: &str, class: &str) -> String {
        let part = |s: &str| format!("{}:{s}", s.len());
        match self.across {
            UniqueAcross::Class => format!("c{}{}{}", part(queue), part(class), part(&self.key)),
            UniqueAcross::Queue => format!("q{}{}", part(queue), part(&self.key)),
        }
    }
}

impl UniqueAcross {
    /// Its name in the HTTP API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueAcross::Class => "class",
            UniqueAcross::Queue => "queue",
        }
    }
}

impl std::str::FromStr for UniqueAcross {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "class" => Ok(UniqueAcross::Class),
            "queue" => Ok(UniqueAcross::Queue),
            other => Err(Error::invalid(format!(
                "{other:?} is not what a unique key is unique across (class, queue)"
            ))),
        }
    }
}

impl OnDuplicate {
    /// Its name in the HTTP API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            OnDuplicate::Existing => "existing",
            OnDuplicate::Refuse => "refuse",
            OnDuplicate::Replace => "replace",
        }
    }
}

impl std::str::FromStr for OnDuplicate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "existing" => Ok(OnDuplicate::Existing),
            "refuse" => Ok(OnDuplicate::Refuse),
            "replace" => Ok(OnDuplicate::Replace),
            other => Err(Error::invalid(format!(
                "{other:?} is not what a duplicate does (existing, refuse, replace)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_never_read_alike() {
        let key = |k: &str| Unique::key(k);
        assert_ne!(key("b:c").scope("a", "x"), key("c").scope("a:b", "x"));
        assert_ne!(key("k").scope("q", "A"), key("k").scope("q", "B"));
        assert_eq!(
            key("k").across_queue().scope("q", "A"),
            key("k").across_queue().scope("q", "B")
        );
        assert_ne!(
            key("k").across_queue().scope("q", "A"),
            key("k").scope("q", "A")
        );
    }

    #[test]
    fn bad_keys_and_periods_are_refused() {
        assert!(Unique::key("order-42").check().is_ok());
        for bad in ["", "a\nb", &"k".repeat(MAX_UNIQUE_KEY + 1)] {
            assert!(Unique::key(bad).check().is_err(), "{bad:?}");
        }
        assert!(Unique::key("k").period(Duration::ZERO).check().is_err());
    }
}
