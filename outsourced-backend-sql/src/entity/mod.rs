//! The tables, as sea-orm entities. Times are integer epoch milliseconds on every database.

pub(crate) mod access;
pub(crate) mod batch;
pub(crate) mod chunk;
pub(crate) mod dependency;
pub(crate) mod history;
pub(crate) mod idempotency_key;
pub(crate) mod instance;
pub(crate) mod job;
pub(crate) mod key_rate;
pub(crate) mod login_failure;
pub(crate) mod nonce;
pub(crate) mod principal;
pub(crate) mod queue;
pub(crate) mod queue_freed;
pub(crate) mod run_limits;
pub(crate) mod run_place;
pub(crate) mod session;
pub(crate) mod unique_key;
pub(crate) mod upload;
