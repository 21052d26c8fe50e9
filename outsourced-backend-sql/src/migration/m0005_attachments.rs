//! Attachments: uploads and their chunks, and on each job the metadata of the one it carries.
//!
//! An upload is stored chunk by chunk (each chunk a row, so neither side ever holds more than
//! a chunk in memory, and every database stores it the same way), then linked to its job in
//! one transaction. Its metadata is copied onto the job row, so that every job record carries
//! it without a join.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct Attachments;

impl MigrationName for Attachments {
    fn name(&self) -> &str {
        "m0005_attachments"
    }
}

/// Bytes of any length: `LONGBLOB` on MySQL/MariaDB, whose `BLOB` stops at 64 KiB.
fn blob(backend: DbBackend, name: &'static str) -> ColumnDef {
    let mut column = ColumnDef::new(name);
    match backend {
        DbBackend::MySql => column.custom("LONGBLOB"),
        _ => column.blob(),
    };
    column
}

#[async_trait::async_trait]
impl MigrationTrait for Attachments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let uploads = Table::create()
            .table("outsourced_uploads")
            .col(
                ColumnDef::new("id")
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new("linked").boolean().not_null())
            .col(ColumnDef::new("created_at").big_integer().not_null())
            .to_owned();
        manager.create_table(uploads).await?;
        let chunks = Table::create()
            .table("outsourced_upload_chunks")
            .col(ColumnDef::new("upload_id").big_integer().not_null())
            .col(ColumnDef::new("n").integer().not_null())
            .col(blob(backend, "data").not_null())
            .primary_key(Index::create().col("upload_id").col("n"))
            .to_owned();
        manager.create_table(chunks).await?;
        // SQLite adds one column per statement.
        let columns = [
            ColumnDef::new("attachment_id")
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new("attachment_size")
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new("attachment_sha256")
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new("attachment_name")
                .string_len(255)
                .null()
                .to_owned(),
            ColumnDef::new("attachment_type")
                .string_len(255)
                .null()
                .to_owned(),
            ColumnDef::new("attachment_at")
                .big_integer()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            let alter = Table::alter()
                .table("outsourced_jobs")
                .add_column(&mut column)
                .to_owned();
            manager.alter_table(alter).await?;
        }
        Ok(())
    }
}
