//! The directory of principals: workers, producers and admins, each with OAuth 1.0a consumer
//! credentials (the secret encrypted under the server key), a locked flag, and the queues a
//! worker is hired for or a producer may enqueue into.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, Iterable,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use crate::backend::SqlBackend;
use crate::convert::{ms, time};
use crate::dialect::insert_if_absent;
use crate::entity::{access, instance, principal, queue, session};

use super::secrets::ServerKey;
use crate::error::db_error;
use outsourced_core::{Error, Result};

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reserves and runs jobs from the queues it is hired for.
    Worker,
    /// Enqueues into the queues it was granted, and sees the jobs it enqueued.
    Producer,
    /// Does everything.
    Admin,
}

impl Role {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Producer => "producer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "worker" => Ok(Role::Worker),
            "producer" => Ok(Role::Producer),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::invalid(format!("{s:?} is not a role"))),
        }
    }
}

/// A worker, producer or admin as the directory shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its role.
    pub role: Role,
    /// Its name, unique within its role.
    pub name: String,
    /// Its OAuth consumer key.
    pub consumer_key: String,
    /// A locked principal is refused everything.
    pub locked: bool,
    /// The queues it is hired for (worker) or granted (producer), by name.
    pub queues: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last heard of: its last signed request or, for a worker, its instances'
    /// last reserve or heartbeat (next to the database too; `list` and `get` only).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A consumer key and its secret, as a client needs them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The consumer key (public).
    pub consumer_key: String,
    /// The consumer secret.
    pub consumer_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"***")
            .finish()
    }
}

/// The principals stored beside the jobs.
#[derive(Clone, Debug)]
pub struct Directory {
    backend: SqlBackend,
}

/// Random URL-safe text of `bytes` random bytes, beginning with a letter or a digit: a key
/// or secret that began with `-` would read as an option on a command line.
pub(crate) fn random_text(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    loop {
        rand::rng().fill_bytes(&mut buf);
        let text = URL_SAFE_NO_PAD.encode(&buf);
        if text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return text;
        }
    }
}

/// A principal from its row and its queues.
fn principal_of(row: principal::Model, queues: Vec<String>) -> Result<Principal> {
    Ok(Principal {
        role: row.role.parse()?,
        name: row.name,
        consumer_key: row.consumer_key,
        locked: row.locked,
        queues,
        created_at: time(row.created_at),
        last_seen_at: row.last_seen_at.map(time),
    })
}

fn check_name(role: Role, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 191
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{name:?} is not a {role} name: use 1 to 191 letters, digits, '_', '-' or '.'"
    )))
}

impl Directory {
    /// The directory in the backend's database.
    pub fn new(backend: SqlBackend) -> Self {
        Directory { backend }
    }

    fn unknown(role: Role, name: &str) -> Error {
        Error::Unknown {
            kind: role.as_str(),
            name: name.to_owned(),
        }
    }

    pub(crate) fn backend(&self) -> &SqlBackend {
        &self.backend
    }

    pub(crate) async fn row(&self, role: Role, name: &str) -> Result<principal::Model> {
        principal::Entity::find()
            .filter(principal::Column::Role.eq(role.as_str()))
            .filter(principal::Column::Name.eq(name))
            .one(self.backend.reader())
            .await
            .map_err(db_error)?
            .ok_or_else(|| Self::unknown(role, name))
    }

    async fn queues_of(&self, id: i64) -> Result<Vec<String>> {
        let rows = access::Entity::find()
            .filter(access::Column::PrincipalId.eq(id))
            .order_by_asc(access::Column::Queue)
            .all(self.backend.reader())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|row| row.queue).collect())
    }

    async fn principal(&self, row: principal::Model) -> Result<Principal> {
        let queues = self.queues_of(row.id).await?;
        principal_of(row, queues)
    }

    /// Creates a principal with fresh credentials; an existing name is `Conflict`.
    pub async fn create(
        &self,
        key: &ServerKey,
        role: Role,
        name: &str,
    ) -> Result<(Principal, Credentials)> {
        check_name(role, name)?;
        let credentials = Credentials {
            consumer_key: random_text(15),
            consumer_secret: random_text(30),
        };
        let row = principal::ActiveModel {
            role: Set(role.as_str().to_owned()),
            name: Set(name.to_owned()),
            consumer_key: Set(credentials.consumer_key.clone()),
            secret: Set(key.encrypt(&credentials.consumer_secret)),
            locked: Set(false),
            created_at: Set(ms(self.backend.now())),
            last_seen_at: Set(None),
            ..Default::default()
        };
        let insert = principal::Entity::insert(row).into_query();
        let inserted =
            insert_if_absent(self.backend.connection(), self.backend.flavor(), insert).await?;
        if !inserted {
            return Err(Error::conflict(format!("{role} {name:?} already exists")));
        }
        Ok((self.get(role, name).await?, credentials))
    }

    /// One principal.
    pub async fn get(&self, role: Role, name: &str) -> Result<Principal> {
        let row = self.row(role, name).await?;
        let principal = self.principal(row).await?;
        self.heard_of(principal).await
    }

    /// Every principal of a role, by name.
    pub async fn list(&self, role: Role) -> Result<Vec<Principal>> {
        let rows = principal::Entity::find()
            .filter(principal::Column::Role.eq(role.as_str()))
            .order_by_asc(principal::Column::Name)
            .all(self.backend.reader())
            .await
            .map_err(db_error)?;
        let mut principals = Vec::with_capacity(rows.len());
        for row in rows {
            let principal = self.principal(row).await?;
            principals.push(self.heard_of(principal).await?);
        }
        Ok(principals)
    }

    /// A worker's last contact as its live instances' reserves and heartbeats tell it, when
    /// later than its last signed request: a worker next to the database signs none.
    async fn heard_of(&self, mut principal: Principal) -> Result<Principal> {
        if principal.role != Role::Worker {
            return Ok(principal);
        }
        let latest: Option<Option<i64>> = instance::Entity::find()
            .select_only()
            .column_as(instance::Column::LastSeenAt.max(), "latest")
            .filter(instance::Column::Worker.eq(principal.name.as_str()))
            .into_tuple()
            .one(self.backend.reader())
            .await
            .map_err(db_error)?;
        let latest = latest.flatten().map(time);
        principal.last_seen_at = principal.last_seen_at.max(latest);
        Ok(principal)
    }

    /// Locks a principal out (or lets it back in).
    pub async fn set_locked(&self, role: Role, name: &str, locked: bool) -> Result<Principal> {
        let row = self.row(role, name).await?;
        principal::Entity::update_many()
            .col_expr(principal::Column::Locked, Expr::value(locked))
            .filter(principal::Column::Id.eq(row.id))
            .exec(self.backend.connection())
            .await
            .map_err(db_error)?;
        self.get(role, name).await
    }

    /// Gives a principal a new secret (its key stays); the old secret stops working at once.
    pub async fn rotate_secret(
        &self,
        key: &ServerKey,
        role: Role,
        name: &str,
    ) -> Result<Credentials> {
        let row = self.row(role, name).await?;
        let secret = random_text(30);
        principal::Entity::update_many()
            .col_expr(principal::Column::Secret, Expr::value(key.encrypt(&secret)))
            .filter(principal::Column::Id.eq(row.id))
            .exec(self.backend.connection())
            .await
            .map_err(db_error)?;
        Ok(Credentials {
            consumer_key: row.consumer_key,
            consumer_secret: secret,
        })
    }

    /// A principal's credentials, decrypted (for `worker config`).
    pub async fn credentials(
        &self,
        key: &ServerKey,
        role: Role,
        name: &str,
    ) -> Result<Credentials> {
        let row = self.row(role, name).await?;
        Ok(Credentials {
            consumer_secret: key.decrypt(&row.secret)?,
            consumer_key: row.consumer_key,
        })
    }

    /// Whether `key` opens a stored secret, or none is stored yet. A command that would go on
    /// with a key that opens none would write secrets no other could read, or serve every
    /// signed request a 500. (Any one will do: while secrets are moved to a new key, one by
    /// one with `rotate_secret`, some open with it and some not.)
    pub async fn opens_secrets(&self, key: &ServerKey) -> Result<bool> {
        let secrets: Vec<String> = principal::Entity::find()
            .select_only()
            .column(principal::Column::Secret)
            .into_tuple()
            .all(self.backend.reader())
            .await
            .map_err(db_error)?;
        Ok(secrets.is_empty() || secrets.iter().any(|s| key.decrypt(s).is_ok()))
    }

    /// The principal with a consumer key and its decrypted secret, if any (for verifying a
    /// signed request).
    pub async fn by_consumer_key(
        &self,
        key: &ServerKey,
        consumer_key: &str,
    ) -> Result<Option<(Principal, String)>> {
        let Some((row, queues)) = self.with_queues(consumer_key).await? else {
            return Ok(None);
        };
        let secret = key.decrypt(&row.secret)?;
        Ok(Some((principal_of(row, queues)?, secret)))
    }

    /// The principal with this consumer key and its queues, in one statement (every signed
    /// request asks): its row joined to its grants, one row per queue.
    async fn with_queues(
        &self,
        consumer_key: &str,
    ) -> Result<Option<(principal::Model, Vec<String>)>> {
        use sea_orm::sea_query::ExprTrait as _;
        let mut select = Query::select();
        for column in principal::Column::iter() {
            select.column((principal::Entity, column));
        }
        let on = Expr::col((access::Entity, access::Column::PrincipalId))
            .equals((principal::Entity, principal::Column::Id));
        select
            .column((access::Entity, access::Column::Queue))
            .from(principal::Entity)
            .left_join(access::Entity, on)
            .and_where(
                Expr::col((principal::Entity, principal::Column::ConsumerKey)).eq(consumer_key),
            )
            .order_by((access::Entity, access::Column::Queue), Order::Asc);
        let statement = self.backend.flavor().backend().build(&select);
        let rows = self
            .backend
            .reader()
            .query_all_raw(statement)
            .await
            .map_err(db_error)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let principal = principal::Model::from_query_result(first, "").map_err(db_error)?;
        let queues = rows
            .iter()
            .map(|row| row.try_get::<Option<String>>("", "queue"))
            .filter_map(|queue| queue.transpose())
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(db_error)?;
        Ok(Some((principal, queues)))
    }

    /// Deletes a principal and its access.
    pub async fn delete(&self, role: Role, name: &str) -> Result<()> {
        let row = self.row(role, name).await?;
        let txn = self.backend.begin_write().await?;
        let result = async {
            access::Entity::delete_many()
                .filter(access::Column::PrincipalId.eq(row.id))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            session::Entity::delete_many()
                .filter(session::Column::PrincipalId.eq(row.id))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            principal::Entity::delete_by_id(row.id)
                .exec(&txn)
                .await
                .map_err(db_error)?;
            Ok(())
        }
        .await;
        self.backend.finish(txn, result).await
    }

    /// Hires a worker for a queue, or grants a producer a queue. Doing it twice is fine.
    pub async fn grant(&self, role: Role, name: &str, queue_name: &str) -> Result<Principal> {
        let row = self.row(role, name).await?;
        let known = queue::Entity::find_by_id(queue_name)
            .one(self.backend.connection())
            .await
            .map_err(db_error)?;
        if known.is_none() {
            return Err(Error::UnknownQueue {
                queue: queue_name.to_owned(),
            });
        }
        let before = self.get(role, name).await?;
        let grant = access::ActiveModel {
            principal_id: Set(row.id),
            queue: Set(queue_name.to_owned()),
        };
        let insert = access::Entity::insert(grant).into_query();
        insert_if_absent(self.backend.connection(), self.backend.flavor(), insert).await?;
        self.regranted(before).await
    }

    /// The principal as it is now that its queues changed from `before`'s; a worker's live
    /// instances that reserve from every queue it is hired for are taken to reserve from
    /// these now, as they will at their next reserve (so that no one is told a hired worker
    /// does not run a queue's jobs until then).
    async fn regranted(&self, before: Principal) -> Result<Principal> {
        let after = self.get(before.role, &before.name).await?;
        if after.role == Role::Worker {
            let db = self.backend.connection();
            crate::instances::follow_hires(db, &after.name, &before.queues, &after.queues).await?;
        }
        Ok(after)
    }

    /// Fires a worker from a queue, or takes a producer's grant back. Doing it twice is fine.
    pub async fn revoke(&self, role: Role, name: &str, queue_name: &str) -> Result<Principal> {
        let row = self.row(role, name).await?;
        let before = self.get(role, name).await?;
        access::Entity::delete_many()
            .filter(access::Column::PrincipalId.eq(row.id))
            .filter(access::Column::Queue.eq(queue_name))
            .exec(self.backend.connection())
            .await
            .map_err(db_error)?;
        self.regranted(before).await
    }

    /// Records that a principal made a request (at most the backend clock's now).
    pub async fn touch(&self, role: Role, name: &str) -> Result<()> {
        principal::Entity::update_many()
            .col_expr(
                principal::Column::LastSeenAt,
                Expr::value(ms(self.backend.now())),
            )
            .filter(principal::Column::Role.eq(role.as_str()))
            .filter(principal::Column::Name.eq(name))
            .exec(self.backend.connection())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Re-encrypts every secret from `old` to `new` in one transaction (key rotation).
    pub async fn reencrypt(&self, old: &ServerKey, new: &ServerKey) -> Result<u64> {
        let txn = self.backend.begin_write().await?;
        let result = async {
            let rows = principal::Entity::find()
                .all(&txn)
                .await
                .map_err(db_error)?;
            for row in &rows {
                let secret = old.decrypt(&row.secret)?;
                principal::Entity::update_many()
                    .col_expr(principal::Column::Secret, Expr::value(new.encrypt(&secret)))
                    .filter(principal::Column::Id.eq(row.id))
                    .exec(&txn)
                    .await
                    .map_err(db_error)?;
            }
            Ok(rows.len() as u64)
        }
        .await;
        self.backend.finish(txn, result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_and_secrets_never_begin_with_a_dash() {
        // One in 64 would, unchecked: 20,000 draws would show it.
        for _ in 0..20_000 {
            let text = random_text(24);
            assert!(!text.starts_with(['-', '_']), "{text}");
        }
    }
}
