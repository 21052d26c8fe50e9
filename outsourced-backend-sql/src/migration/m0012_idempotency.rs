//! Idempotency keys of enqueue requests: the first answer to a (caller, key), kept for a day.

use sea_orm_migration::prelude::*;

pub(crate) struct Idempotency;

impl MigrationName for Idempotency {
    fn name(&self) -> &str {
        "m0012_idempotency"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Idempotency {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut body = super::long_text(manager.get_database_backend(), "body");
        let table = Table::create()
            .table("outsourced_idempotency_keys")
            .col(ColumnDef::new("principal").string_len(191).not_null())
            .col(ColumnDef::new("idem_key").string_len(255).not_null())
            // The SHA-256 (hex) of the request the key was first used with.
            .col(ColumnDef::new("fingerprint").string_len(64).not_null())
            .col(ColumnDef::new("status").integer().not_null())
            .col(body.not_null())
            .col(ColumnDef::new("created_at").big_integer().not_null())
            .primary_key(Index::create().col("principal").col("idem_key"))
            .to_owned();
        manager.create_table(table).await?;
        let by_age = Index::create()
            .name("outsourced_idempotency_keys_age")
            .table("outsourced_idempotency_keys")
            .col("created_at")
            .to_owned();
        manager.create_index(by_age).await
    }
}
