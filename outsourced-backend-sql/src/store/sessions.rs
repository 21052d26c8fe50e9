//! Dashboard logins: an admin's password (an argon2 hash) and the sessions a login opens, kept
//! in the database so that every server process honours them. The cookie carries a random
//! token; the table keeps only its SHA-256.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use super::directory::{Directory, Role, random_text};
use crate::convert::{duration_ms, ms, time};
use crate::entity::{principal, session};
use crate::error::db_error;
use outsourced_core::{Error, Result};

/// The shortest password `set_password` takes.
pub const MIN_PASSWORD_LEN: usize = 10;

/// A logged-in admin, as a request's cookie finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The admin's name.
    pub admin: String,
    /// The token each form of this session carries (CSRF protection).
    pub csrf: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A session just opened: the cookie's token (shown once, never stored) and the session.
#[derive(Clone, Debug)]
pub struct Login {
    /// The cookie's value.
    pub token: String,
    /// The session.
    pub session: Session,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::invalid(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::invalid(format!("cannot hash the password: {e}")))?;
    Ok(hash.to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password matches, verified against when the name is unknown, so that a wrong
/// name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_text(24)).unwrap_or_default())
}

fn refused() -> Error {
    Error::Unauthorized {
        code: "bad_login".into(),
        message: "wrong name or password".into(),
    }
}

/// Argon2 takes tens of milliseconds of CPU and 19 MiB of memory per check: off the async
/// threads, on two threads of its own. On tokio's blocking pool each of its many threads kept
/// an allocator arena the size of a check, and a storm of logins left hundreds of MiB behind.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let failed =
        |e: &dyn std::fmt::Display| Error::invalid(format!("the password check failed: {e}"));
    let (answer, answered) = tokio::sync::oneshot::channel();
    let work: Work = Box::new(move || {
        let _ = answer.send(f());
    });
    hashers().send(work).map_err(|e| failed(&e))?;
    answered.await.map_err(|e| failed(&e))
}

/// A password check or hash, run on one of the [`hashers`].
type Work = Box<dyn FnOnce() + Send>;

/// How many threads hash passwords (the server admits two checks at a time).
const HASHERS: usize = 2;

/// The queue of the password threads, started on first use.
fn hashers() -> &'static std::sync::mpsc::Sender<Work> {
    static QUEUE: OnceLock<std::sync::mpsc::Sender<Work>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (queue, work) = std::sync::mpsc::channel::<Work>();
        let work = std::sync::Arc::new(std::sync::Mutex::new(work));
        for i in 0..HASHERS {
            let work = work.clone();
            let thread = std::thread::Builder::new().name(format!("outsourced-password-{i}"));
            let _ = thread.spawn(move || {
                loop {
                    let next = work.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(next) = next else { return };
                    // A panic loses its answer (the caller sees a failed check), not the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(next));
                }
            });
        }
        queue
    })
}

impl Directory {
    /// Sets an admin's dashboard password (at least [`MIN_PASSWORD_LEN`] characters); its
    /// open sessions end.
    pub async fn set_password(&self, admin: &str, password: &str) -> Result<()> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(Error::invalid(format!(
                "a password needs at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let row = self.row(Role::Admin, admin).await?;
        let password = password.to_owned();
        let hash = blocking(move || hash_password(&password)).await??;
        let db = self.backend().connection();
        principal::Entity::update_many()
            .col_expr(principal::Column::PasswordHash, Expr::value(hash))
            .filter(principal::Column::Id.eq(row.id))
            .exec(db)
            .await
            .map_err(db_error)?;
        session::Entity::delete_many()
            .filter(session::Column::PrincipalId.eq(row.id))
            .exec(db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Checks an admin's name and password and opens a session of `ttl`. A wrong name, a
    /// wrong password, no password set and a locked admin are all the same `Unauthorized`.
    pub async fn login(&self, admin: &str, password: &str, ttl: Duration) -> Result<Login> {
        let row = match self.row(Role::Admin, admin).await {
            Ok(row) => Some(row),
            Err(Error::Unknown { .. }) => None,
            Err(error) => return Err(error),
        };
        let hash = row.as_ref().and_then(|r| r.password_hash.clone());
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        let given = password.to_owned();
        let matches = blocking(move || verify_password(&given, &hash)).await?;
        let row = match row {
            Some(row) if matches && !row.locked && row.password_hash.is_some() => row,
            _ => return Err(refused()),
        };
        let now = self.backend().now();
        let login = Login {
            token: random_text(32),
            session: Session {
                admin: row.name.clone(),
                csrf: random_text(24),
                expires_at: now + chrono::Duration::milliseconds(duration_ms(ttl)),
            },
        };
        let db = self.backend().connection();
        session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(ms(now)))
            .exec(db)
            .await
            .map_err(db_error)?;
        let session_row = session::ActiveModel {
            token_hash: Set(token_hash(&login.token)),
            principal_id: Set(row.id),
            csrf: Set(login.session.csrf.clone()),
            created_at: Set(ms(now)),
            expires_at: Set(ms(login.session.expires_at)),
        };
        session::Entity::insert(session_row)
            .exec_without_returning(db)
            .await
            .map_err(db_error)?;
        Ok(login)
    }

    /// The live session of a cookie's token: `None` when unknown, expired, or its admin was
    /// locked or deleted since.
    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        let db = self.backend().reader();
        let found = session::Entity::find_by_id(token_hash(token))
            .one(db)
            .await
            .map_err(db_error)?;
        let Some(found) = found else { return Ok(None) };
        if found.expires_at <= ms(self.backend().now()) {
            return Ok(None);
        }
        let admin = principal::Entity::find_by_id(found.principal_id)
            .one(db)
            .await
            .map_err(db_error)?;
        Ok(admin
            .filter(|a| !a.locked && a.role == Role::Admin.as_str())
            .map(|a| Session {
                admin: a.name,
                csrf: found.csrf,
                expires_at: time(found.expires_at),
            }))
    }

    /// Ends a session (logging out); an unknown token is no error.
    pub async fn logout(&self, token: &str) -> Result<()> {
        session::Entity::delete_by_id(token_hash(token))
            .exec(self.backend().connection())
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
