//! The one integration-test binary: the conformance suite against every backend, and the
//! tests that only make sense for one of them.

mod support;

mod sql;
mod sqlite;
mod worker;
