//! The OAuth nonce store: a nonce is accepted once per consumer and timestamp, atomically
//! (a primary key and insert-or-nothing), in the database so every server process shares it.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryTrait};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::dialect::insert_if_absent;
use crate::entity::nonce;
use crate::error::db_error;
use outsourced_core::Result;

/// The nonces of signed requests, in the backend's database.
#[derive(Clone, Debug)]
pub struct NonceStore {
    backend: SqlBackend,
}

impl NonceStore {
    /// The store in the backend's database.
    pub fn new(backend: SqlBackend) -> Self {
        NonceStore { backend }
    }

    /// Records a nonce; false when it was seen before for this consumer and timestamp.
    pub async fn remember(
        &self,
        consumer_key: &str,
        timestamp: i64,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let row = nonce::ActiveModel {
            consumer_key: Set(consumer_key.to_owned()),
            timestamp: Set(timestamp),
            nonce: Set(nonce.to_owned()),
            seen_at: Set(ms(now)),
        };
        let insert = nonce::Entity::insert(row).into_query();
        insert_if_absent(self.backend.connection(), self.backend.flavor(), insert).await
    }

    /// Forgets nonces whose timestamp is older than `before` (epoch seconds): their requests
    /// are refused on the timestamp alone.
    pub async fn purge(&self, before: i64) -> Result<u64> {
        let deleted = nonce::Entity::delete_many()
            .filter(nonce::Column::Timestamp.lt(before))
            .exec(self.backend.connection())
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected)
    }
}
