//! The server of outsourced: the `/v1` HTTP API over the SQL backend, as an axum [`Router`]
//! a host application mounts under any prefix (the seed's `mount Outsourced::Engine =>
//! "/outsourced"`), or that [`serve`] runs on its own (`outsourcer serve`).
//!
//! - [`auth`]: OAuth 1.0a verification of every request (RFC 5849), nonces shared through
//!   the database;
//! - `routes`: the handlers, the role table they enforce ([`ROLES`]), and the OpenAPI
//!   document;
//! - [`serve`](mod@serve): hyper with a header timeout, rustls, graceful shutdown;
//! - [`maintenance`]: reclaiming expired leases, purging old nonces;
//! - [`metrics`]: Prometheus counters and histograms at `<mount>/metrics`;
//! - `dashboard`: the admins' web pages at `<mount>/dashboard`; `explorer`: the OpenAPI
//!   document's browser at `<mount>/docs/`.
//!
//! [`Router`]: axum::Router

pub mod auth;
mod config;
mod dashboard;
mod error;
mod explorer;
mod extract;
pub mod maintenance;
pub mod metrics;
mod routes;
pub mod serve;
mod state;

pub use config::ServerConfig;
pub use error::ApiError;
pub use routes::roles::{self, Grant, ROLES, Route, Rule};
pub use routes::{openapi, router};
pub use serve::{serve, tls_acceptor};
pub use state::AppState;
