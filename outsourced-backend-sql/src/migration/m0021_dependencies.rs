//! Dependencies (issue 22): a job may wait for other jobs to succeed. The dependant keeps the
//! ids it waits for and how many have not succeeded yet; a dependency carries a flag saying
//! that some job waits for it, so that the jobs nobody waits for (nearly all) never look for
//! dependants when they end; the edges, keyed by dependency, lead from a job that ended to the
//! jobs that wait for it.

use sea_orm_migration::prelude::*;

pub(crate) struct Dependencies;

impl MigrationName for Dependencies {
    fn name(&self) -> &str {
        "m0021_dependencies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Dependencies {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        let columns = [
            ColumnDef::new("depends_on").text().null().to_owned(),
            ColumnDef::new("dependencies_left")
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new("has_dependants")
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ];
        for mut column in columns {
            let alter = Table::alter()
                .table("outsourced_jobs")
                .add_column(&mut column)
                .to_owned();
            manager.alter_table(alter).await?;
        }
        let edges = Table::create()
            .table("outsourced_dependencies")
            .col(ColumnDef::new("dependency_id").big_integer().not_null())
            .col(ColumnDef::new("dependant_id").big_integer().not_null())
            .primary_key(Index::create().col("dependency_id").col("dependant_id"))
            .to_owned();
        manager.create_table(edges).await
    }
}
