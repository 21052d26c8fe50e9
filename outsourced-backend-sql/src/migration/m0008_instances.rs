//! Workers that run only some classes: a reserve index led by queue and class, so that a
//! worker never walks past a backlog of classes it does not run; and the worker instances
//! reserve has heard from, with the classes each runs, so that an operator can see which
//! waiting classes no live worker runs.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct Instances;

impl MigrationName for Instances {
    fn name(&self) -> &str {
        "m0008_instances"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Instances {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut index = Index::create();
        index
            .name("outsourced_jobs_class_reserve")
            .table("outsourced_jobs");
        for col in ["queue", "waiting", "class", "priority", "run_at", "id"] {
            index.col(col);
        }
        manager.create_index(index.to_owned()).await?;
        let text = |name: &'static str| {
            let mut column = ColumnDef::new(name);
            match backend {
                DbBackend::MySql => column.custom("LONGTEXT"),
                _ => column.text(),
            };
            column
        };
        let instances = Table::create()
            .table("outsourced_instances")
            .col(ColumnDef::new("worker").string_len(191).not_null())
            .col(ColumnDef::new("instance").string_len(64).not_null())
            // A JSON list of class names; NULL for a worker that takes any class.
            .col(text("classes").null())
            // A JSON list of the queues it reserves from; empty for every queue.
            .col(text("queues").not_null())
            .col(ColumnDef::new("started_at").big_integer().not_null())
            .col(ColumnDef::new("last_seen_at").big_integer().not_null())
            .primary_key(Index::create().col("worker").col("instance"))
            .to_owned();
        manager.create_table(instances).await
    }
}
