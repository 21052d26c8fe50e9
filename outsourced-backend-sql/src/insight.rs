//! Figures the dashboard shows beside the `Backend` reads, each one indexed query: jobs
//! finished in a recent window (`outsourced_jobs_finished`: queue, finished_at) and the leases
//! each worker holds (`outsourced_jobs_lease_expiry`: only leased jobs have an expiry).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::entity::job;
use crate::error::db_error;
use outsourced_core::{JobState, Result};

/// How many jobs of a queue finished since some time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finished {
    /// Succeeded.
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
}

impl SqlBackend {
    /// The jobs of `queue` that finished (succeeded or failed) at or after `since`.
    pub async fn finished_since(&self, queue: &str, since: DateTime<Utc>) -> Result<Finished> {
        let groups: Vec<(String, i64)> = job::Entity::find()
            .filter(job::Column::Queue.eq(queue))
            .filter(job::Column::FinishedAt.gte(ms(since)))
            .select_only()
            .column(job::Column::State)
            .column_as(job::Column::Id.count(), "count")
            .group_by(job::Column::State)
            .into_tuple()
            .all(self.reader())
            .await
            .map_err(db_error)?;
        let mut finished = Finished::default();
        for (state, count) in groups {
            let count = u64::try_from(count).unwrap_or(0);
            match state.parse::<JobState>() {
                Ok(JobState::Succeeded) => finished.succeeded += count,
                Ok(JobState::Failed) => finished.failed += count,
                _ => {}
            }
        }
        Ok(finished)
    }

    /// How many leases each worker (by name) holds now.
    pub async fn leases_by_worker(&self) -> Result<BTreeMap<String, u64>> {
        let groups: Vec<(Option<String>, i64)> = job::Entity::find()
            .filter(job::Column::LeaseExpiresAt.is_not_null())
            .select_only()
            .column(job::Column::LeaseWorker)
            .column_as(job::Column::Id.count(), "count")
            .group_by(job::Column::LeaseWorker)
            .into_tuple()
            .all(self.reader())
            .await
            .map_err(db_error)?;
        Ok(groups
            .into_iter()
            .filter_map(|(worker, n)| Some((worker?, u64::try_from(n).unwrap_or(0))))
            .collect())
    }
}
