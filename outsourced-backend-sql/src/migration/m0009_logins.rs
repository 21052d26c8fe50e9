//! Refused dashboard logins, per admin name and per client address, so that every server
//! process throttles password guessing alike.

use sea_orm_migration::prelude::*;

pub(crate) struct Logins;

impl MigrationName for Logins {
    fn name(&self) -> &str {
        "m0009_logins"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Logins {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table("outsourced_login_failures")
            .col(
                ColumnDef::new("subject")
                    .string_len(191)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new("failures").integer().not_null())
            .col(ColumnDef::new("first_at").big_integer().not_null())
            .col(ColumnDef::new("blocked_until").big_integer().not_null())
            .to_owned();
        manager.create_table(table).await
    }
}
