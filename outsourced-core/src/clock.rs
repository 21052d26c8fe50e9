//! Where a backend takes "now" from: the system clock in production, a clock the tests move.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// A source of the current time. Backends compare run times and lease expiries against it
/// and never against a worker's clock.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test moves it, so that tests of back-off, schedules and
/// lease expiry never sleep.
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<DateTime<Utc>>,
}

impl TestClock {
    /// A clock at a fixed, whole-millisecond time (backends store milliseconds).
    pub fn new() -> Self {
        let start = Utc
            .with_ymd_and_hms(2030, 1, 1, 12, 0, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH);
        Self::starting_at(start)
    }

    /// A clock at `start`.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        TestClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.lock();
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A poisoned lock still holds a valid time.
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_only_when_told() {
        let clock = TestClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!((clock.now() - start).num_milliseconds(), 1500);
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
