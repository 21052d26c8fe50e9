//! The schema, as sea-orm-migration migrations that run when a backend opens the database.

use outsourced_core::{DEFAULT_QUEUE, DEFAULT_QUEUE_LIMIT};
use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

mod m0004_retention;
mod m0005_attachments;
mod m0006_dashboard;
mod m0007_claims;
mod m0008_instances;
mod m0009_logins;
mod m0010_results;
mod m0011_unique;
mod m0012_idempotency;
mod m0013_partial_indexes;
mod m0014_freed_slots;
mod m0015_unique_key_index;
mod m0016_run_limits;
mod m0017_run_places;
mod m0018_tallies;
mod m0019_state_counts;
mod m0020_follow_ups;
mod m0021_dependencies;
mod m0022_batches;
mod m0023_key_rates;
mod m0024_places_kept;
mod m0025_places_freed;

/// All migrations, oldest first.
pub(crate) struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(Principals),
            Box::new(Nonces),
            Box::new(m0004_retention::Retention),
            Box::new(m0005_attachments::Attachments),
            Box::new(m0006_dashboard::Dashboard),
            Box::new(m0007_claims::Claims),
            Box::new(m0008_instances::Instances),
            Box::new(m0009_logins::Logins),
            Box::new(m0010_results::Results),
            Box::new(m0011_unique::Unique),
            Box::new(m0012_idempotency::Idempotency),
            Box::new(m0013_partial_indexes::PartialIndexes),
            Box::new(m0014_freed_slots::FreedSlots),
            Box::new(m0015_unique_key_index::UniqueKeyIndex),
            Box::new(m0016_run_limits::RunLimits),
            Box::new(m0017_run_places::RunPlaces),
            Box::new(m0018_tallies::Tallies),
            Box::new(m0019_state_counts::StateCounts),
            Box::new(m0020_follow_ups::FollowUps),
            Box::new(m0021_dependencies::Dependencies),
            Box::new(m0022_batches::Batches),
            Box::new(m0023_key_rates::KeyRates),
            Box::new(m0024_places_kept::PlacesKept),
            Box::new(m0025_places_freed::PlacesFreed),
        ]
    }

    fn migration_table_name() -> DynIden {
        "outsourced_migrations".into_iden()
    }
}

/// Queues, jobs and their history, with the indexes reserve, the reclaimer, owners and the
/// lookups of a worker's leases need.
struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

/// A column for text of any length: `LONGTEXT` on MySQL/MariaDB, whose `TEXT` stops at 64 KiB.
pub(crate) fn long_text(backend: DbBackend, name: &'static str) -> ColumnDef {
    let mut column = ColumnDef::new(name);
    match backend {
        DbBackend::MySql => column.custom("LONGTEXT"),
        _ => column.text(),
    };
    column
}

fn name(name: &'static str, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager.create_table(queues()).await?;
        manager.create_table(jobs(backend)).await?;
        manager.create_table(history(backend)).await?;
        for index in job_indexes() {
            manager.create_index(index).await?;
        }
        manager.exec_stmt(default_queue()).await
    }
}

fn queues() -> TableCreateStatement {
    Table::create()
        .table("outsourced_queues")
        .col(name("name", 191).not_null().primary_key())
        .col(ColumnDef::new("max_live").big_integer().null())
        .col(ColumnDef::new("live").big_integer().not_null().default(0))
        .col(ColumnDef::new("paused").boolean().not_null().default(false))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned()
}

/// The queue jobs go to when they name none, so that enqueue works out of the box.
fn default_queue() -> InsertStatement {
    let now = chrono::Utc::now().timestamp_millis();
    Query::insert()
        .into_table("outsourced_queues")
        .columns(["name", "max_live", "live", "paused", "created_at"])
        .values_panic([
            DEFAULT_QUEUE.into(),
            (DEFAULT_QUEUE_LIMIT as i64).into(),
            0i64.into(),
            false.into(),
            now.into(),
        ])
        .to_owned()
}

fn jobs(backend: DbBackend) -> TableCreateStatement {
    Table::create()
        .table("outsourced_jobs")
        .col(
            ColumnDef::new("id")
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(name("queue", 191).not_null())
        .col(name("class", 191).not_null())
        .col(long_text(backend, "args").not_null())
        .col(ColumnDef::new("priority").integer().not_null())
        .col(name("state", 16).not_null())
        .col(ColumnDef::new("waiting").boolean().not_null())
        .col(ColumnDef::new("run_at").big_integer().not_null())
        .col(ColumnDef::new("attempts").integer().not_null())
        .col(ColumnDef::new("max_attempts").integer().not_null())
        .col(ColumnDef::new("max_run_time_ms").big_integer().null())
        .col(name("backoff", 64).not_null())
        .col(name("repeat", 255).null())
        .col(name("owner_type", 191).null())
        .col(name("owner_id", 191).null())
        .col(name("enqueued_by", 255).not_null())
        .col(ColumnDef::new("cancel_requested").boolean().not_null())
        .col(name("lease_token", 64).null())
        .col(name("lease_worker", 191).null())
        .col(name("lease_instance", 64).null())
        .col(ColumnDef::new("lease_expires_at").big_integer().null())
        .col(ColumnDef::new("lease_ms").big_integer().null())
        .col(ColumnDef::new("seq").integer().not_null())
        .col(long_text(backend, "last_error").null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .col(ColumnDef::new("finished_at").big_integer().null())
        .to_owned()
}

fn history(backend: DbBackend) -> TableCreateStatement {
    Table::create()
        .table("outsourced_job_history")
        .col(ColumnDef::new("job_id").big_integer().not_null())
        .col(ColumnDef::new("seq").integer().not_null())
        .col(name("from_state", 16).null())
        .col(name("to_state", 16).not_null())
        .col(ColumnDef::new("at").big_integer().not_null())
        .col(name("actor", 255).not_null())
        .col(ColumnDef::new("attempt").integer().not_null())
        .col(name("reason", 32).not_null())
        .col(name("lease_token", 64).null())
        .col(long_text(backend, "error_message").null())
        .col(long_text(backend, "error_causes").null())
        .col(long_text(backend, "error_backtrace").null())
        .primary_key(Index::create().col("job_id").col("seq"))
        .to_owned()
}

fn job_indexes() -> Vec<IndexCreateStatement> {
    let index = |name: &str, cols: &[&'static str]| {
        let mut index = Index::create();
        index.name(name).table("outsourced_jobs");
        for col in cols {
            index.col(*col);
        }
        index.to_owned()
    };
    vec![
        // Reserve: the waiting jobs in the order they are handed out.
        index(
            "outsourced_jobs_reserve",
            &["waiting", "priority", "run_at", "id"],
        ),
        // The reclaimer: running jobs by lease expiry (other states have no expiry).
        index("outsourced_jobs_lease_expiry", &["lease_expires_at"]),
        // Releasing everything a worker instance holds.
        index(
            "outsourced_jobs_lease_holder",
            &["lease_worker", "lease_instance"],
        ),
        // Counts and listings by queue, owner and class.
        index("outsourced_jobs_queue_state", &["queue", "state"]),
        index(
            "outsourced_jobs_owner",
            &["owner_type", "owner_id", "state"],
        ),
        index("outsourced_jobs_class", &["class"]),
    ]
}

/// Workers, producers and admins with their credentials, and the queues each may use.
struct Principals;

impl MigrationName for Principals {
    fn name(&self) -> &str {
        "m0002_principals"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Principals {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let principals = Table::create()
            .table("outsourced_principals")
            .col(
                ColumnDef::new("id")
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(name("role", 16).not_null())
            .col(name("name", 191).not_null())
            .col(name("consumer_key", 64).not_null().unique_key())
            .col(long_text(backend, "secret").not_null())
            .col(ColumnDef::new("locked").boolean().not_null())
            .col(ColumnDef::new("created_at").big_integer().not_null())
            .col(ColumnDef::new("last_seen_at").big_integer().null())
            .to_owned();
        manager.create_table(principals).await?;
        let by_name = Index::create()
            .name("outsourced_principals_role_name")
            .table("outsourced_principals")
            .col("role")
            .col("name")
            .unique()
            .to_owned();
        manager.create_index(by_name).await?;
        let access = Table::create()
            .table("outsourced_access")
            .col(ColumnDef::new("principal_id").big_integer().not_null())
            .col(name("queue", 191).not_null())
            .primary_key(Index::create().col("principal_id").col("queue"))
            .to_owned();
        manager.create_table(access).await
    }
}

/// The OAuth nonces seen within the timestamp window.
struct Nonces;

impl MigrationName for Nonces {
    fn name(&self) -> &str {
        "m0003_nonces"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Nonces {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let nonces = Table::create()
            .table("outsourced_nonces")
            .col(name("consumer_key", 64).not_null())
            .col(ColumnDef::new("timestamp").big_integer().not_null())
            .col(name("nonce", 128).not_null())
            .col(ColumnDef::new("seen_at").big_integer().not_null())
            .primary_key(
                Index::create()
                    .col("consumer_key")
                    .col("timestamp")
                    .col("nonce"),
            )
            .to_owned();
        manager.create_table(nonces).await?;
        let by_time = Index::create()
            .name("outsourced_nonces_timestamp")
            .table("outsourced_nonces")
            .col("timestamp")
            .to_owned();
        manager.create_index(by_time).await
    }
}
