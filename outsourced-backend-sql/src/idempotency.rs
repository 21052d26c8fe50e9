//! Idempotent enqueue requests (the IETF httpapi `Idempotency-Key` draft): the key is written
//! in the transaction that stores the jobs, so that a request sent again finds either nothing
//! (the first did not commit: it runs afresh) or the first answer (it committed: the answer is
//! given again and nothing is stored). Two requests with one key at once: the second's insert
//! waits on the first's primary key until the first ends.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait,
};

use crate::backend::SqlBackend;
use crate::convert::{job_record, ms};
use crate::dialect::insert_if_absent;
use crate::enqueue::{self, Placed};
use crate::entity::idempotency_key as row;
use crate::error::db_error;
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

impl SqlBackend {
    /// Enqueues `jobs` for `request` unless its key was used before: then the first answer
    /// comes back and nothing is stored. `answer` turns the stored jobs (each with whether it
    /// was a duplicate of a unique key) into the answer to keep. A refused enqueue (full
    /// queue, say) keeps nothing: the same request may be sent again.
    pub async fn enqueue_idempotent(
        &self,
        by: &Actor,
        request: Request<'_>,
        jobs: Vec<NewJob>,
        answer: impl FnOnce(&[(JobRecord, bool)]) -> Answer + Send,
    ) -> Result<Idempotent> {
        self.enqueue_once(by, request, jobs, answer).await
    }

    async fn enqueue_once(
        &self,
        by: &Actor,
        request: Request<'_>,
        jobs: Vec<NewJob>,
        answer: impl FnOnce(&[(JobRecord, bool)]) -> Answer + Send,
    ) -> Result<Idempotent> {
        if request.key.is_empty()
            || request.key.len() > MAX_IDEMPOTENCY_KEY
            || !request
                .key
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(Error::invalid(format!(
                "an Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
            )));
        }
        for job in &jobs {
            job.check(self.config().max_args_bytes)?;
        }
        let now = self.now();
        let txn = self.begin_write().await?;
        let result = self.idempotent_in(&txn, by, &request, &jobs, now).await;
        let result = match result {
            Ok(Ok(placed)) => {
                let records: Result<Vec<(JobRecord, bool)>> = placed
                    .iter()
                    .map(|p| job_record(&p.row).map(|r| (r, p.duplicate)))
                    .collect();
                match records {
                    Ok(records) => {
                        let made = answer(&records);
                        remember(&txn, &request, &made)
                            .await
                            .map(|()| (Idempotent::Answer(made), placed))
                    }
                    Err(error) => Err(error),
                }
            }
            Ok(Err(found)) => Ok((found, Vec::new())),
            Err(error) => Err(error),
        };
        let (outcome, placed) = self.finish(txn, result).await?;
        self.wake_for(&enqueue::stored(&placed));
        // Told, so that the metrics count what it stored (and its duplicates), as any enqueue's.
        self.tell(crate::observe::Events::placed(
            placed.iter().map(enqueue::Placed::event),
        ));
        Ok(outcome)
    }

    /// Claims the key and stores the jobs, or answers what the key found.
    async fn idempotent_in(
        &self,
        db: &impl ConnectionTrait,
        by: &Actor,
        request: &Request<'_>,
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Vec<Placed>, Idempotent>> {
        let claim = row::ActiveModel {
            principal: Set(request.principal.to_owned()),
            idem_key: Set(request.key.to_owned()),
            fingerprint: Set(request.fingerprint.to_owned()),
            status: Set(0),
            body: Set(String::new()),
            created_at: Set(ms(now)),
        };
        let insert = row::Entity::insert(claim).into_query();
        if !insert_if_absent(db, self.flavor(), insert).await? {
            let found =
                row::Entity::find_by_id((request.principal.to_owned(), request.key.to_owned()))
                    .one(db)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        Error::conflict("an idempotency key vanished; send the request again")
                    })?;
            if found.fingerprint != request.fingerprint {
                return Ok(Err(Idempotent::Mismatch));
            }
            return Ok(Err(Idempotent::Answer(Answer {
                status: u16::try_from(found.status).unwrap_or(500),
                body: found.body,
            })));
        }
        let placed = enqueue::insert_in(db, self, by, jobs, now).await?;
        self.notify_in(db).await?;
        Ok(Ok(placed))
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

/// Keeps the answer with its key.
async fn remember(db: &impl ConnectionTrait, request: &Request<'_>, answer: &Answer) -> Result<()> {
    row::Entity::update_many()
        .col_expr(row::Column::Status, Expr::value(i32::from(answer.status)))
        .col_expr(row::Column::Body, Expr::value(answer.body.clone()))
        .filter(row::Column::Principal.eq(request.principal))
        .filter(row::Column::IdemKey.eq(request.key))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}
