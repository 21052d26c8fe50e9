//! What the server does on its own: reclaim expired leases every second; every minute, forget
//! nonces that have aged out of the timestamp window and prune finished jobs past their
//! queue's retention.

use std::future::Future;
use std::time::Duration;

use outsourced_core::{Actor, Backend, PruneOptions, ReclaimOptions};

use crate::state::AppState;

/// Runs until `shutdown` resolves.
pub async fn maintain(state: AppState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => return,
        }
        ticks += 1;
        match state
            .backend()
            .reclaim_expired(&Actor::Reaper, ReclaimOptions::default())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(reclaimed = n, "reclaimed expired leases"),
            Err(error) => tracing::warn!(%error, "reclaiming expired leases failed"),
        }
        if ticks.is_multiple_of(60) {
            let window = state.config().timestamp_window.as_secs() as i64;
            let before = chrono::Utc::now().timestamp() - window - 60;
            if let Err(error) = state.nonces().purge(before).await {
                tracing::warn!(%error, "purging old nonces failed");
            }
            let window = outsourced_backend_sql::idempotency::IDEMPOTENCY_WINDOW;
            let expired = chrono::Utc::now() - window;
            if let Err(error) = state.backend().purge_idempotency_keys(expired).await {
                tracing::warn!(%error, "purging old idempotency keys failed");
            }
            prune(&state).await;
        }
    }
}

/// Most prune passes in one minute's turn, so that a large backlog is worked off over a few
/// minutes instead of holding the maintenance task (and the reclaimer behind it).
const PRUNE_PASSES: usize = 10;

/// Prunes in bounded passes until nothing is left or the turn is up.
async fn prune(state: &AppState) {
    let mut pruned = 0;
    for _ in 0..PRUNE_PASSES {
        match state
            .backend()
            .prune(&Actor::Reaper, PruneOptions::default())
            .await
        {
            Ok(0) => break,
            Ok(n) => pruned += n,
            Err(error) => {
                tracing::warn!(%error, "pruning finished jobs failed");
                break;
            }
        }
    }
    if pruned > 0 {
        tracing::info!(pruned, "pruned finished jobs past their retention");
    }
}
