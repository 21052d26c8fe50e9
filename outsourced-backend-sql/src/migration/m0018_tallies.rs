//! Tallies of what happened to jobs, kept in the database so that every process shows the
//! same figures and they survive restarts: per queue and minute (`outsourced_minutes`, for
//! the dashboard's charts, kept two days) and per queue since the start (`outsourced_totals`,
//! for the metrics' counters). Each process adds what it did, about once a second
//! (`tally.rs`).

use sea_orm_migration::prelude::*;

pub(crate) struct Tallies;

impl MigrationName for Tallies {
    fn name(&self) -> &str {
        "m0018_tallies"
    }
}

/// The counters of a tally: what happened, then how long starts waited, by bucket.
const COUNTERS: [&str; 19] = [
    "enqueued",
    "started",
    "succeeded",
    "failed",
    "retried",
    "reclaimed",
    "released",
    "w0",
    "w1",
    "w2",
    "w3",
    "w4",
    "w5",
    "w6",
    "w7",
    "w8",
    "w9",
    "w10",
    "w11",
];

fn with_counters(mut table: TableCreateStatement) -> TableCreateStatement {
    for name in COUNTERS {
        table.col(ColumnDef::new(name).big_integer().not_null().default(0));
    }
    table
}

#[async_trait::async_trait]
impl MigrationTrait for Tallies {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let minutes = Table::create()
            .table("outsourced_minutes")
            .col(ColumnDef::new("queue").string_len(191).not_null())
            .col(ColumnDef::new("minute").big_integer().not_null())
            .primary_key(Index::create().col("queue").col("minute"))
            .to_owned();
        manager.create_table(with_counters(minutes)).await?;
        // The charts read every queue's minutes of a time range.
        let by_minute = Index::create()
            .name("outsourced_minutes_minute")
            .table("outsourced_minutes")
            .col("minute")
            .to_owned();
        manager.create_index(by_minute).await?;
        let totals = Table::create()
            .table("outsourced_totals")
            .col(
                ColumnDef::new("queue")
                    .string_len(191)
                    .not_null()
                    .primary_key(),
            )
            .to_owned();
        manager.create_table(with_counters(totals)).await
    }
}
