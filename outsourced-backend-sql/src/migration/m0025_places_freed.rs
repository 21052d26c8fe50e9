//! Places freed by the end of their job (issue 20): a place is free when its `job_id` is empty,
//! which every move of a job out of running writes in the same transaction (`places::free`),
//! dated by `freed_at` (epoch ms), so that a reserve takes only places freed no later than the
//! starts it dates. Until now a place was free when its job no longer ran under its token, a
//! join of every place to its job at every reserve. Places made before hold jobs that may have
//! ended, so every queue's places are dropped and made again, with the jobs that run then, by
//! its next reserve (`places::settle`).

use sea_orm_migration::prelude::*;

pub(crate) struct PlacesFreed;

impl MigrationName for PlacesFreed {
    fn name(&self) -> &str {
        "m0025_places_freed"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PlacesFreed {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DELETE FROM outsourced_run_places")
            .await?;
        db.execute_unprepared("UPDATE outsourced_run_limits SET places_kept = FALSE")
            .await?;
        let alter = Table::alter()
            .table("outsourced_run_places")
            .add_column(
                ColumnDef::new("freed_at")
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            .to_owned();
        // No index on `job_id`: an end finds its place among its queue's (the primary key's
        // prefix), and a place's updates, which change no indexed column, stay HOT on
        // PostgreSQL (an index on `job_id` put two entries in it per job, and bloated both
        // indexes of a table of a hundred rows: 1.8 ms a claim where an unlimited one took 1.1).
        manager.alter_table(alter).await
    }
}
