//! Group commit: small writes that arrive while others are being written wait for them, then
//! go together in one transaction, so that concurrent producers share commits (and their
//! fsyncs) instead of each paying for one. Generic over what is grouped (`Req`, answered with
//! a `Resp`) and over the handle `H` that owns the group and writes it: the job store's
//! enqueues (`SqlBackend`), the server store's nonces (`NonceStore`).
//!
//! There is no background task: the first request that finds no writer running spawns one,
//! which takes everything pending, writes it, answers each request, and goes on while more has
//! arrived. It runs in a task of its own, so a caller that goes away (a dropped future) never
//! leaves a transaction half done or the requests behind it unanswered. A lone request pays
//! only the hop to that task. Up to `parallel` groups are written at once: one on SQLite (its
//! one writer), several on PostgreSQL and MySQL, whose commits overlap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::backend_error;
use outsourced_core::Result;

/// One request of a group and where its answer goes.
pub(crate) struct Entry<Req, Resp> {
    pub(crate) request: Req,
    pub(crate) reply: oneshot::Sender<Resp>,
}

/// Writes one group through handle `H` and answers each of its entries.
pub(crate) type Writer<Req, Resp, H> =
    fn(H, Vec<Entry<Req, Resp>>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where one kind of request waits for its group.
pub(crate) struct Group<Req, Resp, H> {
    state: Mutex<State<Req, Resp>>,
    parallel: usize,
    /// The most weight (jobs, say) one group carries; a heavier request goes alone.
    max_weight: usize,
    weigh: fn(&Req) -> usize,
    /// Picks this group out of its handle, for the writer task.
    select: fn(&H) -> &Group<Req, Resp, H>,
    write: Writer<Req, Resp, H>,
}

struct State<Req, Resp> {
    pending: Vec<Entry<Req, Resp>>,
    running: usize,
}

impl<Req, Resp, H> std::fmt::Debug for Group<Req, Resp, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, H> Group<Req, Resp, H>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    H: Clone + Send + Sync + 'static,
{
    /// A group written by `write`, at most `parallel` at once, each at most `max_weight`.
    pub(crate) fn new(
        parallel: usize,
        max_weight: usize,
        weigh: fn(&Req) -> usize,
        select: fn(&H) -> &Group<Req, Resp, H>,
        write: Writer<Req, Resp, H>,
    ) -> Self {
        Group {
            state: Mutex::new(State {
                pending: Vec::new(),
                running: 0,
            }),
            parallel: parallel.max(1),
            max_weight,
            weigh,
            select,
            write,
        }
    }

    /// Adds `request` to the next group of `handle` (the handle that owns this group) and
    /// waits for its answer.
    pub(crate) async fn submit(&self, handle: &H, request: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.pending.push(Entry { request, reply });
            let start = state.running < self.parallel;
            state.running += usize::from(start);
            start
        };
        if start {
            tokio::spawn(drain(handle.clone(), self.select));
        }
        answer
            .await
            .map_err(|_| backend_error("the group writer stopped before answering", true))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<Req, Resp>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next group: pending requests in arrival order up to the weight limit (at least
    /// one). Empty when nothing is pending, and then this writer stops.
    fn next(&self) -> Vec<Entry<Req, Resp>> {
        let mut state = self.lock();
        let mut weight = 0;
        let mut take = 0;
        for entry in &state.pending {
            weight += (self.weigh)(&entry.request);
            if take > 0 && weight > self.max_weight {
                break;
            }
            take += 1;
        }
        if take == 0 {
            state.running -= 1;
        }
        state.pending.drain(..take).collect()
    }
}

/// A writer task: groups until nothing is pending.
async fn drain<Req, Resp, H>(handle: H, select: fn(&H) -> &Group<Req, Resp, H>)
where
    Req: Send + 'static,
    Resp: Send + 'static,
    H: Clone + Send + Sync + 'static,
{
    loop {
        let group = select(&handle);
        let entries = group.next();
        if entries.is_empty() {
            return;
        }
        // A panic answers this group's requests with an error (their senders are dropped)
        // and must not stop the writer, or every later request would wait forever.
        let written = std::panic::AssertUnwindSafe((group.write)(handle.clone(), entries));
        if futures::FutureExt::catch_unwind(written).await.is_err() {
            tracing::error!("a group write panicked; its requests were answered with an error");
        }
    }
}
