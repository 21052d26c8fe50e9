//! The OAuth nonce store: a nonce is accepted once per consumer and timestamp, atomically
//! (a primary key and insert-or-nothing), in the database so every server process shares it.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{InsertStatement, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::nonce;
use crate::error::db_error;
use crate::group::{Entry, Group};
use outsourced_core::{Error, Result};

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
        self.record(Seen::new(consumer_key, timestamp, nonce, now))
            .await
    }

    /// Records a nonce as seen; false when it was seen before (see `remember`).
    pub async fn record(&self, seen: Seen) -> Result<bool> {
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

/// A nonce as seen in one request: recorded by [`NonceStore::remember`], or by the
/// transaction of the enqueue it signs ([`SqlBackend::enqueue_signed`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seen {
    consumer_key: String,
    timestamp: i64,
    nonce: String,
    seen_at: i64,
}

impl Seen {
    /// The nonce of a request signed by `consumer_key` at `timestamp` (epoch seconds), seen
    /// `now`.
    pub fn new(consumer_key: &str, timestamp: i64, nonce: &str, now: DateTime<Utc>) -> Self {
        Seen {
            consumer_key: consumer_key.to_owned(),
            timestamp,
            nonce: nonce.to_owned(),
            seen_at: ms(now),
        }
    }
}

/// The refusal of a request whose nonce was used before.
pub fn replayed() -> Error {
    Error::Unauthorized {
        code: "nonce_used".to_owned(),
        message: "this nonce was already used: sign every request, and every retry, afresh"
            .to_owned(),
    }
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
    let seen: Vec<&Seen> = entries.iter().map(|entry| &entry.request).collect();
    let (flavor, seen) = (backend.flavor(), &seen);
    let written = backend
        .write(|txn| async move {
            let result = insert_fresh(&txn, flavor, seen).await;
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

/// What makes a nonce the same: its consumer, timestamp and value.
type NonceId = (String, i64, String);

impl Seen {
    fn id(&self) -> NonceId {
        (
            self.consumer_key.clone(),
            self.timestamp,
            self.nonce.clone(),
        )
    }
}

/// Records `nonces` in the caller's transaction: each is fresh if its insert added a row, and
/// the same nonce twice is fresh only the first time. One statement on SQLite and PostgreSQL
/// (the rows it inserted come back), one per nonce on MariaDB and MySQL.
pub(crate) async fn insert_fresh(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    nonces: &[&Seen],
) -> Result<Vec<bool>> {
    let mut ids = HashSet::new();
    let first: Vec<bool> = nonces.iter().map(|n| ids.insert(n.id())).collect();
    let unique: Vec<&Seen> = nonces
        .iter()
        .zip(&first)
        .filter(|(_, first)| **first)
        .map(|(n, _)| *n)
        .collect();
    let inserted = match flavor {
        Flavor::Sqlite | Flavor::Postgres => insert_returning(db, flavor, &unique).await?,
        Flavor::MariaDb | Flavor::MySql => {
            let mut inserted = HashSet::new();
            for nonce in unique {
                if insert_if_absent(db, flavor, insert_of(&[nonce])).await? {
                    inserted.insert(nonce.id());
                }
            }
            inserted
        }
    };
    Ok(nonces
        .iter()
        .zip(first)
        .map(|(nonce, first)| first && inserted.contains(&nonce.id()))
        .collect())
}

/// The nonces one `INSERT ... ON CONFLICT DO NOTHING RETURNING` added.
async fn insert_returning(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    nonces: &[&Seen],
) -> Result<HashSet<NonceId>> {
    if nonces.is_empty() {
        return Ok(HashSet::new());
    }
    let mut insert = insert_of(nonces);
    insert
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning(Query::returning().columns(["consumer_key", "timestamp", "nonce"]));
    let rows = db
        .query_all_raw(flavor.backend().build(&insert))
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("", "consumer_key").map_err(db_error)?,
                row.try_get("", "timestamp").map_err(db_error)?,
                row.try_get("", "nonce").map_err(db_error)?,
            ))
        })
        .collect()
}

/// One insert of `nonces`' rows.
fn insert_of(nonces: &[&Seen]) -> InsertStatement {
    let mut insert = Query::insert();
    insert.into_table(nonce::Entity).columns([
        nonce::Column::ConsumerKey,
        nonce::Column::Timestamp,
        nonce::Column::Nonce,
        nonce::Column::SeenAt,
    ]);
    for n in nonces {
        insert.values_panic([
            n.consumer_key.clone().into(),
            n.timestamp.into(),
            n.nonce.clone().into(),
            n.seen_at.into(),
        ]);
    }
    insert.to_owned()
}
