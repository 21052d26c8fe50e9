//! The core of outsourced: the [`Job`] and [`Backend`] traits, the job state machine, and the
//! types that cross between producers, backends and workers. It does no IO.
//!
//! - [`state`]: the stored job states and the one pure [`transition`] function.
//! - [`types`]: new jobs, stored jobs, leases, history rows, queues and counts.
//! - [`backend`]: the [`Backend`] contract, its options and [`BackendExt`].
//! - [`job`] and [`registry`]: typed jobs, their hooks, and the class-name registry.
//! - [`clock`]: the time source backends use; [`TestClock`] for tests.
//! - [`error`]: the one [`Error`] type, classified as retryable or not.
//! - `conformance` (feature `conformance`): the scenarios every backend must pass.

pub mod backend;
pub mod clock;
pub mod error;
pub mod job;
pub mod observe;
pub mod registry;
pub mod state;
pub mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backend::{
    Backend, BackendExt, CountFilter, JobFilter, PruneOptions, ReclaimOptions, ReserveOptions,
};
pub use clock::{Clock, SystemClock, TestClock};
pub use error::{Error, Result};
pub use job::{Job, JobContext, JobError, JobExt};
pub use observe::{JobEvent, Observer, Outcome};
pub use registry::{AnyJob, Registry, invoke};
pub use state::{Event, InvalidTransition, JobState, initial_state, transition};
pub use types::*;
