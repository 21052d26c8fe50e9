//! The OAuth nonce store: a nonce is accepted once per consumer and timestamp, atomically
//! (a primary key and insert-or-nothing), in the database so every server process shares it.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait,
};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::nonce;
use crate::error::db_error;
use crate::group::{Entry, Group};
use outsourced_core::Result;

/// The nonces of signed requests, in the backend's database. Cheap to clone; clones share
/// one group commit, so make one store per server and clone it.
#[derive(Clone, Debug)]
pub struct NonceStore {
    backend: SqlBackend,
    group: Arc<Group<Seen, Result<bool>, NonceStore>>,
}

impl NonceStore {
    /// The store in the backend's database.
    pub fn new(backend: SqlBackend) -> Self {
        let group = Arc::new(group(backend.flavor()));
        NonceStore { backend, group }
    }

    /// Records a nonce; false when it was seen before for this consumer and timestamp.
    /// Nonces that arrive together are written together (a group commit), so that a busy
    /// server pays one commit for many requests' nonces, not one each.
    pub async fn remember(
        &self,
        consumer_key: &str,
        timestamp: i64,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let seen = Seen {
            consumer_key: consumer_key.to_owned(),
            timestamp,
            nonce: nonce.to_owned(),
            seen_at: ms(now),
        };
        self.group.submit(self, seen).await?
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

/// A nonce as seen in one request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Seen {
    consumer_key: String,
    timestamp: i64,
    nonce: String,
    seen_at: i64,
}

/// The group commit of nonces: one group at a time on SQLite (its one writer), a few at once
/// elsewhere (nonces share no row, so their commits overlap).
fn group(flavor: Flavor) -> Group<Seen, Result<bool>, NonceStore> {
    let parallel = match flavor {
        Flavor::Sqlite => 1,
        _ => 4,
    };
    Group::new(
        parallel,
        GROUP_NONCES,
        |_| 1,
        |store| &store.group,
        |store, entries| Box::pin(grouped(store.backend, entries)),
    )
}

/// The most nonces one group commit carries.
const GROUP_NONCES: usize = 500;

/// Records a group of nonces in one transaction: each is fresh if its insert added a row, and
/// the same nonce twice in one group is fresh only the first time.
async fn grouped(backend: SqlBackend, entries: Vec<Entry<Seen, Result<bool>>>) {
    let (flavor, entries_ref) = (backend.flavor(), &entries);
    let written = backend
        .write(|txn| async move {
            let result = insert_all(&txn, flavor, entries_ref).await;
            (txn, result)
        })
        .await;
    match written {
        Ok(fresh) => {
            for (entry, fresh) in entries.into_iter().zip(fresh) {
                let _ = entry.reply.send(Ok(fresh));
            }
        }
        Err(error) => {
            for entry in entries {
                let _ = entry.reply.send(Err(error.clone()));
            }
        }
    }
}

async fn insert_all(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    entries: &[Entry<Seen, Result<bool>>],
) -> Result<Vec<bool>> {
    let mut seen = HashSet::new();
    let mut fresh = Vec::with_capacity(entries.len());
    for Entry { request, .. } in entries {
        if !seen.insert(request) {
            fresh.push(false);
            continue;
        }
        let row = nonce::ActiveModel {
            consumer_key: Set(request.consumer_key.clone()),
            timestamp: Set(request.timestamp),
            nonce: Set(request.nonce.clone()),
            seen_at: Set(request.seen_at),
        };
        let insert = nonce::Entity::insert(row).into_query();
        fresh.push(insert_if_absent(db, flavor, insert).await?);
    }
    Ok(fresh)
}
