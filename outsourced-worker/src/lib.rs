//! The worker of outsourced: a loop that leases jobs from any [`Backend`](outsourced_core::Backend),
//! runs them (Rust [`Job`](outsourced_core::Job) types from a registry, or programs named in
//! a config file), keeps their leases alive and reports how they ended.
//!
//! - [`Worker`]: the loop, `work_off(n)` and `run(shutdown)`;
//! - [`Assignment`]: which queues to work, asked before each reserve;
//! - `execute`: one job's run, time limit, heartbeats, panics and report;
//! - [`command`]: command handlers, each in a process group of its own;
//! - [`config`]: the YAML config file of the `outsourced-worker` binary (feature `config`);
//! - [`connect`]: the backend a config names (features `sql` and `http`, one per kind);
//! - [`shutdown`]: SIGTERM/SIGINT handling (drain, then stop);
//! - [`cli`]: the binary's main (feature `cli`, on by default; it turns on the rest).
//!
//! With no features, the crate is the loop alone, for any `Backend` the application builds:
//! depend on it with `default-features = false` (and `features = ["http"]` or `["sql"]` to
//! read a worker config) to compile no database driver, HTTP client or command-line parser.

mod assignment;
#[cfg(feature = "cli")]
pub mod cli;
pub mod command;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "config")]
pub mod connect;
#[cfg(feature = "sql")]
mod directory;
mod execute;
mod options;
mod report;
mod run;
pub mod shutdown;
mod worker;

pub use assignment::Assignment;
pub use command::CommandSpec;
#[cfg(feature = "config")]
pub use config::WorkerConfig;
pub use options::WorkerOptions;
pub use shutdown::{Shutdown, ShutdownTrigger, Stage};
pub use worker::{WorkOff, Worker};
