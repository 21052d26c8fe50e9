//! On PostgreSQL, the indexes only waiting (or only finished) jobs are looked up by hold only
//! those jobs. Every lease and every end of a job moves it out of the waiting indexes; held in
//! full, each such `UPDATE` wrote a new entry into all three reserve indexes (PostgreSQL adds
//! an entry per index for every new row version, changed column or not). Partial, they take no
//! entry for a running or finished job: the burn-down on PostgreSQL ran 10% faster
//! (docs/benchmarks.md). SQLite and MariaDB keep theirs: MariaDB has no partial indexes, and
//! SQLite's would need every query to spell the condition as the index does.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub(crate) struct PartialIndexes;

impl MigrationName for PartialIndexes {
    fn name(&self) -> &str {
        "m0013_partial_indexes"
    }
}

/// Each index anew: its name, columns and condition. The reserve query's `waiting = TRUE` is a
/// literal (not a bound parameter) so that every plan of it, generic ones too, can use them.
const INDEXES: [(&str, &str, &str); 4] = [
    ("outsourced_jobs_reserve", "priority, run_at, id", "waiting"),
    (
        "outsourced_jobs_queue_reserve",
        "queue, priority, run_at, id",
        "waiting",
    ),
    (
        "outsourced_jobs_class_reserve",
        "queue, class, priority, run_at, id",
        "waiting",
    ),
    (
        "outsourced_jobs_finished",
        "queue, finished_at",
        "finished_at IS NOT NULL",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for PartialIndexes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (name, columns, condition) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX {name} ON outsourced_jobs ({columns}) WHERE {condition}"
            ))
            .await?;
        }
        Ok(())
    }
}
