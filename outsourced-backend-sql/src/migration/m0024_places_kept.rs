//! Whether a queue's places hold its running jobs (issue 20): false until a reserve, holding
//! the queue's limits row, makes the places with the jobs running then in them. Places made
//! before this migration were made empty beside the jobs that ran, so every queue starts
//! false and is settled by its next reserve.

use sea_orm_migration::prelude::*;

pub(crate) struct PlacesKept;

impl MigrationName for PlacesKept {
    fn name(&self) -> &str {
        "m0024_places_kept"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PlacesKept {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let alter = Table::alter()
            .table("outsourced_run_limits")
            .add_column(
                ColumnDef::new("places_kept")
                    .boolean()
                    .not_null()
                    .default(false),
            )
            .to_owned();
        manager.alter_table(alter).await
    }
}
