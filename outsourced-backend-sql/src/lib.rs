//! The SQL backend of outsourced: jobs, bounded queues and the full history of every
//! transition, in SQLite (an embedded file by default), PostgreSQL or MariaDB/MySQL.
//!
//! ```no_run
//! # async fn demo() -> outsourced_core::Result<()> {
//! use outsourced_backend_sql::SqlBackend;
//! let backend = SqlBackend::connect("sqlite://outsourced.db").await?;
//! # Ok(()) }
//! ```
//!
//! One operation per module, each a transaction of its own:
//! - [`enqueue`](crate::enqueue): slots, rows and first history rows;
//! - `reserve`: the atomic claim of a batch, and long-polling (`pg_batch`: PostgreSQL's claim
//!   and completion as one statement each);
//! - `heartbeat`, `complete`, `fail`, `release`: reports on a lease, checked in `lease`;
//! - `reclaim`: expired leases as failed attempts;
//! - `admin`: cancel and retry; `queues`: queue administration; `read`: lookups and counts.
//!
//! Beside the jobs, the server's [`store`]: workers, producers and admins with their
//! credentials and queue access ([`Directory`]), admin sessions, OAuth nonces ([`NonceStore`]),
//! the dashboard's figures.
//!
//! Shared machinery: `transition` applies a change as a compare-and-set with its history rows,
//! `slots` keeps the queue limits exact, `limits` the run limits (inside reserve), `connect` opens pools and migrates, `migration` holds
//! the schema, `entity` the tables, `convert` rows to core types, `error` classifies database
//! errors, `wake` wakes long-polling reservers, [`tally`] keeps every process's counts of what
//! happened to jobs in the database (for charts and metrics).

mod admin;
mod attachments;
mod backend;
mod batches;
mod complete;
mod config;
mod connect;
mod convert;
mod counts;
mod dependencies;
mod dialect;
mod enqueue;
mod enqueue_group;
mod entity;
mod error;
mod facade;
mod fail;
mod follow_ups;
mod group;
mod heartbeat;
pub mod idempotency;
mod insert;
mod instances;
mod key_claim;
mod key_locks;
mod key_rates;
mod lease;
mod limits;
mod migration;
mod observe;
mod pg_batch;
mod places;
mod prune;
mod queues;
mod read;
mod reclaim;
mod release;
mod reserve;
mod slots;
pub mod store;
pub mod tally;
#[cfg(feature = "testing")]
pub mod testing;
mod transition;
mod unique;
mod wake;

pub use backend::SqlBackend;
pub use config::{SqlConfig, SqliteSync, redact};
pub use dialect::Flavor;
pub use instances::{InstanceInfo, LIVE_FOR};
pub use sea_orm;
pub use store::Capped;
pub use store::NonceStore;
pub use store::directory::{Credentials, Directory, Principal, Role};
pub use store::secrets::ServerKey;
pub use store::sessions::{Login, Session};
