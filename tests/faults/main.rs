//! The fault suite: real processes on loopback (`outsourcer serve`, `outsourced-worker`s, and
//! producers in this process signing every request), faults done to them (kill -9, SIGSTOP, a
//! skewed clock, a database restart), and after each run the checker of
//! `reliability-cases.md`: every acknowledged enqueue ended exactly once, every history is
//! whole, nothing is left running or leased.
//!
//! A binary of its own, apart from `it`: its scenarios kill and restart what other tests
//! stand on (a PostgreSQL restart would fail every test using it), so they run one at a time
//! (see [`cluster::exclusive`]), never beside `it` (cargo runs test binaries one
//! after another). Leases are 2 s, so that a scenario waits for
//! expiries in seconds. Each prints what it did and what it checked.

#[allow(dead_code, unreachable_pub)]
#[path = "../it/bins.rs"]
mod bins;
mod checker;
mod cluster;

mod batch_end;
mod clock_skew;
mod kill_server;
mod kill_worker;
mod load;
mod pause;
