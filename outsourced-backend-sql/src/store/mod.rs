//! The server's store, beside the job store and in the same database: what `outsourced-server`
//! and the admin CLI keep that no `Backend` operation reads.
//!
//! - [`directory`]: workers, producers and admins, with their credentials and queue access
//!   ([`Directory`], the store's handle for all of what follows but nonces);
//! - [`secrets`]: their secrets encrypted under the server key;
//! - [`sessions`]: the dashboard's admin passwords and sessions; [`throttle`]: failed logins;
//! - [`nonces`]: OAuth nonces, seen once each, written by a group commit of their own
//!   ([`NonceStore`], a handle of its own);
//! - `insight`: the figures the dashboard shows beside the `Backend` reads.
//!
//! Both handles share the job store's pools and clock through a [`SqlBackend`] clone: one
//! database, one migration, one connection budget. The job store knows nothing of them.
//!
//! [`SqlBackend`]: crate::SqlBackend

pub mod directory;
mod insight;
pub mod nonces;
pub mod secrets;
pub mod sessions;
pub mod throttle;

pub use directory::Directory;
pub use insight::{Capped, LeasedJob};
pub use nonces::NonceStore;
