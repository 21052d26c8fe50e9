//! Idempotent enqueue requests (the IETF httpapi `Idempotency-Key` draft): the key is written
//! in the transaction that stores the jobs, so that a request sent again finds either nothing
//! (the first did not commit: it runs afresh) or the first answer (it committed: the answer is
//! given again and nothing is stored). Two requests with one key at once: the second's insert
//! waits on the first's primary key until the first ends.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait,
};

use crate::backend::SqlBackend;
use crate::convert::{job_record, ms};
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::idempotency_key as row;
use crate::error::db_error;
use crate::insert::{self, Placed};
use outsourced_core::{Actor, Error, JobRecord, NewJob, Result};

/// How long a key's answer is kept: a day, as the draft suggests at the least.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// An answer to an enqueue request, as sent (and sent again for the same key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Its HTTP status.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
}

/// What an idempotent enqueue came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotent {
    /// The answer: made now, or the first one given again.
    Answer(Answer),
    /// The key was first used with another request (the draft's 422).
    Mismatch,
}

/// One idempotent request: whose key it is, the key, and what the request was.
pub struct Request<'a> {
    /// The caller the key belongs to (a principal's name, with its role).
    pub principal: &'a str,
    /// The key as sent.
    pub key: &'a str,
    /// A digest of the request (method, path and body) that the key stands for.
    pub fingerprint: &'a str,
}

/// How an idempotent request's answer is made from what it stored (each job with whether it
/// was a duplicate of a unique key). Run inside the transaction, once the jobs are stored.
pub type MakeAnswer = Arc<dyn Fn(&[(JobRecord, bool)]) -> Answer + Send + Sync>;

/// A request's key, owned, with how to make its answer: what an enqueue carries into the
/// group commit or its own transaction.
#[derive(Clone)]
pub(crate) struct Keyed {
    pub(crate) principal: String,
    pub(crate) key: String,
    pub(crate) fingerprint: String,
    pub(crate) answer: MakeAnswer,
}

impl Keyed {
    /// Whether `other` is the same caller's same key.
    pub(crate) fn same_key(&self, other: &Keyed) -> bool {
        (&self.principal, &self.key) == (&other.principal, &other.key)
    }
}

impl SqlBackend {
    /// The keyed enqueue in a transaction of its own, in a task of its own: a caller that
    /// goes away cannot cut the write mid-flight.
    pub(crate) async fn enqueue_once(
        &self,
        by: &Actor,
        keyed: &Keyed,
        jobs: &[NewJob],
    ) -> Result<Idempotent> {
        let (this, by, keyed, jobs) = (self.clone(), by.clone(), keyed.clone(), jobs.to_vec());
        crate::backend::detached(async move { this.enqueue_once_here(&by, &keyed, &jobs).await })
            .await
    }

    async fn enqueue_once_here(
        &self,
        by: &Actor,
        keyed: &Keyed,
        jobs: &[NewJob],
    ) -> Result<Idempotent> {
        let now = self.now();
        let txn = self.begin_write().await?;
        let result = self.idempotent_in(&txn, by, keyed, jobs, now).await;
        let (outcome, placed) = self.finish(txn, result).await?;
        self.wake_for(&insert::stored(&placed));
        // Told, so that the metrics count what it stored (and its duplicates), as any enqueue's.
        self.tell(crate::observe::Events::placed(
            placed.iter().map(insert::Placed::event),
        ));
        Ok(outcome)
    }

    /// Claims the key, stores the jobs and keeps the answer; or answers what the key found.
    async fn idempotent_in(
        &self,
        db: &impl ConnectionTrait,
        by: &Actor,
        keyed: &Keyed,
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<(Idempotent, Vec<Placed>)> {
        if let Some(found) = claim(db, self.flavor(), keyed, now).await? {
            return Ok((found, Vec::new()));
        }
        let placed = insert::insert_in(db, self, by, jobs, now).await?;
        self.notify_in(db).await?;
        let answer = remember(db, keyed, &placed).await?;
        Ok((answer, placed))
    }

    /// Forgets the answers of keys first used before `before`.
    pub async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64> {
        let deleted = row::Entity::delete_many()
            .filter(row::Column::CreatedAt.lt(ms(before)))
            .exec(self.connection())
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected)
    }
}

/// Refuses a key no one could send again as it is.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let printable = key.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
        return Err(Error::invalid(format!(
            "an Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )));
    }
    Ok(())
}

/// Claims the key in the caller's transaction: `None` when it is new (the request goes on),
/// else what it found: the first answer, or a mismatch. A claim of a key another transaction
/// holds uncommitted waits for that transaction's end.
pub(crate) async fn claim(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    keyed: &Keyed,
    now: DateTime<Utc>,
) -> Result<Option<Idempotent>> {
    let claim = row::ActiveModel {
        principal: Set(keyed.principal.clone()),
        idem_key: Set(keyed.key.clone()),
        fingerprint: Set(keyed.fingerprint.clone()),
        status: Set(0),
        body: Set(String::new()),
        created_at: Set(ms(now)),
    };
    let insert = row::Entity::insert(claim).into_query();
    if insert_if_absent(db, flavor, insert).await? {
        return Ok(None);
    }
    let found = row::Entity::find_by_id((keyed.principal.clone(), keyed.key.clone()))
        .one(db)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::conflict("an idempotency key vanished; send the request again"))?;
    if found.fingerprint != keyed.fingerprint {
        return Ok(Some(Idempotent::Mismatch));
    }
    Ok(Some(Idempotent::Answer(Answer {
        status: u16::try_from(found.status).unwrap_or(500),
        body: found.body,
    })))
}

/// The answer a request gets for what it stored.
pub(crate) fn answer_of(keyed: &Keyed, placed: &[Placed]) -> Result<Answer> {
    let records = placed
        .iter()
        .map(|p| job_record(&p.row).map(|r| (r, p.duplicate)))
        .collect::<Result<Vec<_>>>()?;
    Ok((keyed.answer)(&records))
}

/// Makes the answer from what the request stored and keeps it with its claimed key.
pub(crate) async fn remember(
    db: &impl ConnectionTrait,
    keyed: &Keyed,
    placed: &[Placed],
) -> Result<Idempotent> {
    let answer = answer_of(keyed, placed)?;
    row::Entity::update_many()
        .col_expr(row::Column::Status, Expr::value(i32::from(answer.status)))
        .col_expr(row::Column::Body, Expr::value(answer.body.clone()))
        .filter(row::Column::Principal.eq(keyed.principal.as_str()))
        .filter(row::Column::IdemKey.eq(keyed.key.as_str()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(Idempotent::Answer(answer))
}

/// The rows of these keys that exist, read without a lock: a key inserted by another
/// transaction after this read makes the insert of [`keep`] fail instead.
pub(crate) async fn find(db: &impl ConnectionTrait, keyed: &[&Keyed]) -> Result<Vec<row::Model>> {
    let mut found = Vec::new();
    for chunk in keyed.chunks(KEY_CHUNK) {
        let mut any = Condition::any();
        for keyed in chunk {
            any = any.add(
                Condition::all()
                    .add(row::Column::Principal.eq(keyed.principal.as_str()))
                    .add(row::Column::IdemKey.eq(keyed.key.as_str())),
            );
        }
        found.extend(
            row::Entity::find()
                .filter(any)
                .all(db)
                .await
                .map_err(db_error)?,
        );
    }
    Ok(found)
}

/// What `keyed`'s key holds among the rows [`find`] read, if it was used before.
pub(crate) fn found_for(found: &[row::Model], keyed: &Keyed) -> Option<Idempotent> {
    let row = found
        .iter()
        .find(|row| row.principal == keyed.principal && row.idem_key == keyed.key)?;
    if row.fingerprint != keyed.fingerprint {
        return Some(Idempotent::Mismatch);
    }
    Some(Idempotent::Answer(Answer {
        status: u16::try_from(row.status).unwrap_or(500),
        body: row.body.clone(),
    }))
}

/// Inserts new keys with their answers, in statements of [`KEY_CHUNK`] rows.
pub(crate) async fn keep(
    db: &impl ConnectionTrait,
    kept: Vec<(&Keyed, Answer)>,
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in kept.chunks(KEY_CHUNK) {
        let rows = chunk.iter().map(|(keyed, answer)| row::ActiveModel {
            principal: Set(keyed.principal.clone()),
            idem_key: Set(keyed.key.clone()),
            fingerprint: Set(keyed.fingerprint.clone()),
            status: Set(i32::from(answer.status)),
            body: Set(answer.body.clone()),
            created_at: Set(ms(now)),
        });
        row::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Keys per statement: two or six parameters each, well under every database's limit.
const KEY_CHUNK: usize = 500;
