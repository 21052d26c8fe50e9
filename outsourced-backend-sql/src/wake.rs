//! Wake-ups for long-polling reservers: a counter bumped whenever a job may have become ready.

use tokio::sync::watch;

/// Wakes every reserver waiting in this process. Subscribing before looking for jobs, then
/// waiting for a change, never misses a wake-up that happens in between.
#[derive(Debug)]
pub(crate) struct Wake(watch::Sender<u64>);

impl Wake {
    pub(crate) fn new() -> Self {
        Wake(watch::Sender::new(0))
    }

    /// Tells the waiting reservers to look again.
    pub(crate) fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver whose `changed()` resolves at the next notification.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
