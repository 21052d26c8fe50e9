//! The one integration-test binary: the conformance suite against every backend, the real
//! binaries, and the tests that only make sense for one backend.

mod bins;
mod signing;
mod support;

mod cli;
mod concurrency;
mod dashboard;
mod dashboard_forms;
mod handlers;
mod hardening;
mod http;
mod http_attachments;
mod http_authz;
mod http_overload;
mod http_refusals;
mod idempotency;
mod instances;
mod interop;
mod metrics;
mod multi_server;
mod plans;
mod retention;
mod run_limits;
mod servers;
mod sql;
mod sqlite;
mod transactions;
mod user_path;
mod worker;
mod worker_bin;
