//! Runnable examples of outsourced: see `typed_job.rs` and `command-handlers/`.
