//! `outsourced_jobs`: one row per job, in its current state.

use sea_orm::entity::prelude::*;

/// A job row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_jobs")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub queue: String,
    pub class: String,
    /// The arguments as JSON text.
    #[sea_orm(column_type = "Text")]
    pub args: String,
    pub priority: i32,
    pub state: String,
    /// True exactly when the state is scheduled, available or retrying: the leading column of
    /// the reserve index, so that one index range holds every job reserve may take.
    pub waiting: bool,
    pub run_at: i64,
    pub attempts: i32,
    pub max_attempts: i32,
    pub max_run_time_ms: Option<i64>,
    pub backoff: String,
    pub repeat: Option<String>,
    pub owner_type: Option<String>,
    pub owner_id: Option<String>,
    pub enqueued_by: String,
    pub cancel_requested: bool,
    /// Set exactly while the job runs.
    pub lease_token: Option<String>,
    pub lease_worker: Option<String>,
    pub lease_instance: Option<String>,
    pub lease_expires_at: Option<i64>,
    /// The lease length granted at reserve, which heartbeats renew by.
    pub lease_ms: Option<i64>,
    /// The number of history rows: the sequence number of the latest one, and the version that
    /// every change compares and sets.
    pub seq: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// The upload holding its attachment, and the attachment's metadata (all set or none).
    pub attachment_id: Option<i64>,
    pub attachment_size: Option<i64>,
    pub attachment_sha256: Option<String>,
    pub attachment_name: Option<String>,
    pub attachment_type: Option<String>,
    pub attachment_at: Option<i64>,
    /// When the latest attempt was leased (for its run time); kept after it ends.
    pub started_at: Option<i64>,
    /// The unique key it was stored with, if any (see `outsourced_unique_keys`).
    pub unique_key: Option<String>,
    /// The key its queue's per-key limit counts it under, if any.
    pub concurrency_key: Option<String>,
    /// The job whose success stored it, when it is a follow-up.
    pub parent_id: Option<i64>,
    /// The ids of the jobs it waits (or waited) for, as a JSON array, if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub depends_on: Option<String>,
    /// How many of them have not succeeded yet: the one whose success brings it to 0 makes the
    /// job runnable.
    pub dependencies_left: i32,
    /// Set by the enqueue of a job that waits for this one (see `dependencies`).
    pub has_dependants: bool,
    /// The batch it belongs to.
    pub batch_id: Option<i64>,
    /// The batch whose callback it is.
    pub callback_of: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
