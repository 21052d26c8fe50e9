//! The query strings of the reads, typed once: the server parses them, the client builds them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Filters of a job listing (`GET /v1/jobs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Jobs in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Jobs of this class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Jobs whose class begins with this (taken literally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_prefix: Option<String>,
    /// Jobs of this owner, `TYPE/ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Jobs stored with this unique key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Jobs of this concurrency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// The follow-ups of this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
    /// The jobs that wait (or waited) for this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependants_of: Option<i64>,
    /// The jobs of this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
    /// Jobs enqueued at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_since: Option<DateTime<Utc>>,
    /// Jobs enqueued before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_until: Option<DateTime<Utc>>,
    /// Jobs older than this id (the next page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// The jobs just newer than this id (the page before), still newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// The page size (100 when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Our client's body hash (none on a GET); the server ignores it.
    #[serde(default, skip_serializing)]
    pub body_sha256: Option<String>,
}

/// Filters of job counts (`GET /v1/counts`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[serde(deny_unknown_fields)]
pub struct CountsQuery {
    /// Jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Jobs of this owner, `TYPE/ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Our client's body hash (none on a GET); the server ignores it.
    #[serde(default, skip_serializing)]
    pub body_sha256: Option<String>,
}

/// A query as the name-value pairs the client signs and sends, set fields only, by name
/// (OAuth sorts them anyway for the signature).
pub fn query_pairs(query: &impl Serialize) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(query) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter_map(|(name, value)| match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some((name, text)),
            other => Some((name, other.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_sends_its_set_fields_as_text() {
        let query = JobsQuery {
            queue: Some("q".into()),
            owner: Some("user/7".into()),
            created_since: "2026-12-04T10:00:00Z".parse().ok(),
            before: Some(42),
            limit: Some(10),
            body_sha256: Some("never sent".into()),
            ..JobsQuery::default()
        };
        let pairs = query_pairs(&query);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            pairs,
            [
                ("before", "42"),
                ("created_since", "2026-12-04T10:00:00Z"),
                ("limit", "10"),
                ("owner", "user/7"),
                ("queue", "q"),
            ]
        );
    }
}
