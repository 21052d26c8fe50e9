//! The worker of outsourced: a loop that leases jobs from any [`Backend`](outsourced_core::Backend),
//! runs them (Rust [`Job`](outsourced_core::Job) types from a registry, or programs named in
//! a config file), keeps their leases alive and reports how they ended.
//!
//! - [`Worker`]: the loop, `work_off(n)` and `run(shutdown)`;
//! - [`Assignment`]: which queues to work, asked before each reserve;
//! - `execute`: one job's run, time limit, heartbeats, panics and report;
//! - [`command`]: command handlers, each in a process group of its own;
//! - [`config`]: the YAML config file of the `outsourced-worker` binary;
//! - [`shutdown`]: SIGTERM/SIGINT handling (drain, then stop).

mod assignment;
pub mod cli;
pub mod command;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod execute;
mod options;
mod report;
pub mod shutdown;
mod worker;

pub use assignment::Assignment;
pub use command::CommandSpec;
pub use config::WorkerConfig;
pub use options::WorkerOptions;
pub use shutdown::{Shutdown, ShutdownTrigger, Stage};
pub use worker::{WorkOff, Worker};
