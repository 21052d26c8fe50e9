//! Jobs by their unique key, for listings filtered by key (`JobFilter::unique_key`, the
//! dashboard's and the CLI's filter). Only jobs that have a key are indexed where the database
//! can say so (PostgreSQL and SQLite): every other job costs it nothing. MySQL indexes every
//! row, but InnoDB rewrites a secondary index only when its column changes, which a job's key
//! never does after the insert.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct UniqueKeyIndex;

impl MigrationName for UniqueKeyIndex {
    fn name(&self) -> &str {
        "m0015_unique_key_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for UniqueKeyIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut index = Index::create();
        index
            .name("outsourced_jobs_unique_key")
            .table("outsourced_jobs")
            .col("unique_key")
            .col("id");
        if manager.get_database_backend() != DbBackend::MySql {
            index.and_where(Expr::col("unique_key").is_not_null());
        }
        manager.create_index(index.to_owned()).await
    }
}
