//! Places (`places.rs`): the semaphore of a queue whose one run limit is `max_running`, so that
//! its reserves claim places side by side instead of taking turns on the limits row.

use sea_orm_migration::prelude::*;

pub(crate) struct RunPlaces;

impl MigrationName for RunPlaces {
    fn name(&self) -> &str {
        "m0017_run_places"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RunPlaces {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let places = Table::create()
            .table("outsourced_run_places")
            .col(ColumnDef::new("queue").string_len(191).not_null())
            .col(ColumnDef::new("place").integer().not_null())
            .col(ColumnDef::new("job_id").big_integer().null())
            .col(ColumnDef::new("lease_token").string_len(64).null())
            .primary_key(Index::create().col("queue").col("place"))
            .to_owned();
        manager.create_table(places).await
    }
}
