//! The tables, as sea-orm entities. Times are integer epoch milliseconds on every database.

pub(crate) mod history;
pub(crate) mod job;
pub(crate) mod queue;
