//! Worker instances as reserve hears of them: the classes each runs, the queues it reserves
//! from, and when it was last heard of (a reserve or a heartbeat), so that an operator can see
//! which waiting classes no live worker runs.
//!
//! A busy worker reserves many times a second; its row is written only when what it declares
//! changes or every [`NOTE_EVERY`], inside the claim's own transaction (no extra commit).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, Statement, Value};

use crate::backend::SqlBackend;
use crate::convert::{ms, time};
use crate::dialect::Flavor;
use crate::entity::{instance, principal};
use crate::error::db_error;
use outsourced_core::{ReserveOptions, Result, WorkerInstance};

/// How often a worker instance's row is written at most while nothing it declares changes.
const NOTE_EVERY: Duration = Duration::from_secs(15);

/// An instance not heard of for this long is taken for gone: its worker reserves at least
/// every idle wait (5 s by default) or heartbeats every third of its lease while busy.
pub const LIVE_FOR: Duration = Duration::from_secs(120);

/// The most classes [`SqlBackend::unserved`] names per queue.
const MAX_CLASSES: usize = 100;

/// A worker instance as reserve last heard of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The worker's name.
    pub worker: String,
    /// The process's instance id (host, process id and a random suffix for ours).
    pub instance: String,
    /// The classes it runs; `None`: any class.
    pub classes: Option<Vec<String>>,
    /// The queues it reserves from; empty: every queue.
    pub queues: Vec<String>,
    /// When it was first heard of.
    pub started_at: DateTime<Utc>,
    /// When it was last heard of.
    pub last_seen_at: DateTime<Utc>,
}

impl InstanceInfo {
    /// Whether it takes jobs of `class` from `queue`.
    pub fn runs(&self, queue: &str, class: &str) -> bool {
        let queue_ok = self.queues.is_empty() || self.queues.iter().any(|q| q == queue);
        let class_ok = self
            .classes
            .as_ref()
            .is_none_or(|classes| classes.iter().any(|c| c == class));
        queue_ok && class_ok
    }

    /// Whether it was heard of within [`LIVE_FOR`] of `now`.
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        now - self.last_seen_at <= chrono::Duration::from_std(LIVE_FOR).unwrap_or_default()
    }
}

/// What a reserve declares of its instance, as stored.
pub(crate) struct Declaration {
    classes: Option<String>,
    queues: String,
}

impl Declaration {
    fn of(opts: &ReserveOptions) -> Self {
        let json = |list: &[String]| serde_json::to_string(list).unwrap_or_default();
        Declaration {
            classes: opts.classes.as_deref().map(json),
            queues: json(&opts.queues),
        }
    }

    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.classes, &self.queues).hash(&mut hasher);
        hasher.finish()
    }
}

/// A worker instance: its worker's name and its instance id.
type InstanceKey = (String, String);

/// When each instance's row was last written, and the fingerprint of what it said then.
#[derive(Debug, Default)]
pub(crate) struct Notes(Mutex<HashMap<InstanceKey, (DateTime<Utc>, u64)>>);

impl Notes {
    /// The declaration to write for a reserve now, if one is due.
    pub(crate) fn due(
        &self,
        by: &WorkerInstance,
        opts: &ReserveOptions,
        now: DateTime<Utc>,
    ) -> Option<Declaration> {
        let declaration = Declaration::of(opts);
        let print = declaration.fingerprint();
        self.mark(by, now, Some(print)).then_some(declaration)
    }

    /// Whether a heartbeat should note the instance's last contact now.
    pub(crate) fn touch_due(&self, by: &WorkerInstance, now: DateTime<Utc>) -> bool {
        self.mark(by, now, None)
    }

    /// Records a write at `now` when one is due: never written, `NOTE_EVERY` since, or (for a
    /// reserve) a declaration other than the last.
    fn mark(&self, by: &WorkerInstance, now: DateTime<Utc>, print: Option<u64>) -> bool {
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (by.worker.clone(), by.instance.clone());
        let every = chrono::Duration::from_std(NOTE_EVERY).unwrap_or_default();
        let due = match notes.get(&key) {
            None => true,
            Some((at, last)) => now - *at >= every || print.is_some_and(|p| p != *last),
        };
        if due {
            // A heartbeat keeps the last declaration's fingerprint (0 when it never had one,
            // so that the next reserve writes its own).
            let kept = notes.get(&key).map_or(0, |(_, last)| *last);
            notes.insert(key, (now, print.unwrap_or(kept)));
            if notes.len() > 10_000 {
                let cutoff = now - chrono::Duration::from_std(LIVE_FOR).unwrap_or_default();
                notes.retain(|_, (at, _)| *at >= cutoff);
            }
        }
        due
    }

    /// Forgets an instance that left.
    pub(crate) fn forget(&self, by: &WorkerInstance) {
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        notes.remove(&(by.worker.clone(), by.instance.clone()));
    }
}

/// Writes an instance's row (inserted, or updated with what it declares now).
pub(crate) async fn note(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    declaration: &Declaration,
    now: DateTime<Utc>,
) -> Result<()> {
    let row = instance::ActiveModel {
        worker: Set(by.worker.clone()),
        instance: Set(by.instance.clone()),
        classes: Set(declaration.classes.clone()),
        queues: Set(declaration.queues.clone()),
        started_at: Set(ms(now)),
        last_seen_at: Set(ms(now)),
    };
    let upsert = OnConflict::columns([instance::Column::Worker, instance::Column::Instance])
        .update_columns([
            instance::Column::Classes,
            instance::Column::Queues,
            instance::Column::LastSeenAt,
        ])
        .to_owned();
    instance::Entity::insert(row)
        .on_conflict(upsert)
        .exec_without_returning(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Rewrites the declared queues of `worker`'s instances that reserve from every queue it is
/// hired for (their queues are `before`, the hires until now) as `after`, the hires from now
/// on. An instance that asked for some of its queues declared fewer, and is left as it is.
pub(crate) async fn follow_hires(
    db: &impl ConnectionTrait,
    worker: &str,
    before: &[String],
    after: &[String],
) -> Result<()> {
    let set = |list: &[String]| {
        list.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    // Hired for nothing now: such an instance reserves nothing and declares nothing (an empty
    // list would declare every queue); it is taken for gone once it is not heard of.
    if before.is_empty() || after.is_empty() || set(before) == set(after) {
        return Ok(());
    }
    let rows = instance::Entity::find()
        .filter(instance::Column::Worker.eq(worker))
        .all(db)
        .await
        .map_err(db_error)?;
    let json = |list: &[String]| serde_json::to_string(list).unwrap_or_default();
    for row in rows
        .into_iter()
        .filter(|row| set(&info(row.clone()).queues) == set(before))
    {
        instance::Entity::update_many()
            .col_expr(instance::Column::Queues, Expr::value(json(after)))
            .filter(instance::Column::Worker.eq(worker))
            .filter(instance::Column::Instance.eq(row.instance.as_str()))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Notes a heartbeat's contact, for an instance whose row exists.
pub(crate) async fn touch(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    now: DateTime<Utc>,
) -> Result<()> {
    instance::Entity::update_many()
        .col_expr(instance::Column::LastSeenAt, Expr::value(ms(now)))
        .filter(instance::Column::Worker.eq(by.worker.as_str()))
        .filter(instance::Column::Instance.eq(by.instance.as_str()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Removes an instance that left (released everything at its exit), and rows of instances
/// not heard of for a day; its worker's last contact is now.
pub(crate) async fn forget(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    now: DateTime<Utc>,
) -> Result<()> {
    let day_ago = ms(now) - 24 * 3600 * 1000;
    instance::Entity::delete_many()
        .filter(
            (instance::Column::Worker
                .eq(by.worker.as_str())
                .and(instance::Column::Instance.eq(by.instance.as_str())))
            .or(instance::Column::LastSeenAt.lt(day_ago)),
        )
        .exec(db)
        .await
        .map_err(db_error)?;
    // The worker's last contact outlives the row (`worker list`'s "last seen").
    principal::Entity::update_many()
        .col_expr(principal::Column::LastSeenAt, Expr::value(ms(now)))
        .filter(principal::Column::Role.eq(crate::store::directory::Role::Worker.as_str()))
        .filter(principal::Column::Name.eq(by.worker.as_str()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn info(row: instance::Model) -> InstanceInfo {
    let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
    InstanceInfo {
        classes: row.classes.as_deref().map(list),
        queues: list(&row.queues),
        worker: row.worker,
        instance: row.instance,
        started_at: time(row.started_at),
        last_seen_at: time(row.last_seen_at),
    }
}

impl SqlBackend {
    /// The worker instances heard of within [`LIVE_FOR`], by worker and instance.
    pub async fn live_instances(&self) -> Result<Vec<InstanceInfo>> {
        let since = self.now() - chrono::Duration::from_std(LIVE_FOR).unwrap_or_default();
        let rows = instance::Entity::find()
            .filter(instance::Column::LastSeenAt.gte(ms(since)))
            .all(self.reader())
            .await
            .map_err(db_error)?;
        let mut all: Vec<InstanceInfo> = rows.into_iter().map(info).collect();
        all.sort_by(|a, b| (&a.worker, &a.instance).cmp(&(&b.worker, &b.instance)));
        Ok(all)
    }

    /// The classes of jobs waiting in `queue` (scheduled, available or retrying) that no live
    /// worker instance runs from it, by name (at most a hundred). Each distinct class costs one
    /// step of the class reserve index, however many jobs wait.
    pub async fn unserved(&self, queue: &str) -> Result<Vec<String>> {
        let live = self.live_instances().await?;
        let waiting = self.waiting_classes(queue).await?;
        Ok(waiting
            .into_iter()
            .filter(|class| !live.iter().any(|i| i.runs(queue, class)))
            .collect())
    }

    /// The distinct classes of `queue`'s waiting jobs: a loose scan of `(queue, waiting,
    /// class, ...)`, one index lookup per class (a recursive query every database here has).
    async fn waiting_classes(&self, queue: &str) -> Result<Vec<String>> {
        let sql = format!(
            "WITH RECURSIVE c (class) AS ( \
               SELECT MIN(class) FROM outsourced_jobs WHERE queue = {p1} AND waiting = TRUE \
               UNION ALL \
               SELECT (SELECT MIN(j.class) FROM outsourced_jobs j \
                       WHERE j.queue = {p2} AND j.waiting = TRUE AND j.class > c.class) \
               FROM c WHERE c.class IS NOT NULL) \
             SELECT class FROM c WHERE class IS NOT NULL LIMIT {MAX_CLASSES}",
            p1 = self.placeholder(1),
            p2 = self.placeholder(2),
        );
        // `waiting = TRUE` a literal, as reserve's: PostgreSQL's index holds waiting jobs only.
        let values: [Value; 2] = [queue.into(), queue.into()];
        let statement = Statement::from_sql_and_values(self.flavor().backend(), sql, values);
        let rows = self
            .reader()
            .query_all_raw(statement)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| row.try_get_by_index::<String>(0).map_err(db_error))
            .collect()
    }

    fn placeholder(&self, n: usize) -> String {
        match self.flavor() {
            Flavor::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        }
    }
}
