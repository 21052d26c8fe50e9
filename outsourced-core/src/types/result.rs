//! What a job hands back: a success report with the job's result and its follow-up jobs, and
//! the bounds on them.

use serde_json::Value;

use crate::error::Error;
use crate::types::{LeaseRef, NewJob};

/// The most bytes a job's result may take as JSON. A result is a small record of what the job
/// did (a count, an id, a URL); files belong in attachments.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// The most follow-up jobs one success may carry: they are stored in the completion's own
/// transaction. A job that fans out wider enqueues one follow-up that enqueues the rest in
/// parts.
pub const MAX_FOLLOW_UPS: usize = 1_000;

/// The report of one success: the lease, the result the job produced, and the jobs it asks
/// for next.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The lease of the attempt that succeeded.
    pub lease: LeaseRef,
    /// What the job produced, kept with the attempt's `completed` history row.
    pub result: Option<Value>,
    /// Jobs to store with the success, in its transaction, or not at all: a job's follow-ups
    /// exist only if it succeeded. See [`Backend::complete_batch`](crate::Backend::complete_batch).
    pub follow_ups: Vec<NewJob>,
}

impl From<LeaseRef> for Completion {
    fn from(lease: LeaseRef) -> Self {
        Completion {
            lease,
            result: None,
            follow_ups: Vec::new(),
        }
    }
}

impl Completion {
    /// `InvalidInput` when the result takes more than [`MAX_RESULT_BYTES`] as JSON, or there
    /// are more than [`MAX_FOLLOW_UPS`] follow-ups.
    pub fn check(&self) -> Result<(), Error> {
        check_follow_ups(self.follow_ups.len())?;
        match &self.result {
            Some(result) => check_result(result),
            None => Ok(()),
        }
    }
}

/// `InvalidInput` when `count` follow-ups are more than [`MAX_FOLLOW_UPS`].
pub fn check_follow_ups(count: usize) -> Result<(), Error> {
    if count > MAX_FOLLOW_UPS {
        return Err(Error::invalid(format!(
            "{count} follow-up jobs; one success may carry at most {MAX_FOLLOW_UPS} \
             (enqueue one that enqueues the rest)"
        )));
    }
    Ok(())
}

/// `InvalidInput` when `result` takes more than [`MAX_RESULT_BYTES`] as JSON.
pub fn check_result(result: &Value) -> Result<(), Error> {
    let size = serde_json::to_vec(result)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_RESULT_BYTES {
        return Err(Error::invalid(format!(
            "the result takes {size} bytes as JSON; the limit is {MAX_RESULT_BYTES} \
             (keep files in attachments)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_past_the_limit_is_refused_and_one_at_it_is_not() {
        // A JSON string of n bytes takes n + 2 with its quotes.
        let at = Value::String("x".repeat(MAX_RESULT_BYTES - 2));
        assert!(check_result(&at).is_ok());
        let over = Value::String("x".repeat(MAX_RESULT_BYTES - 1));
        let error = check_result(&over).expect_err("one byte over the limit");
        assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
        assert!(error.to_string().contains("65537 bytes"), "{error}");
    }
}
