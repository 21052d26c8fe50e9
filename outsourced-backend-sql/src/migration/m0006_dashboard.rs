//! The dashboard and metrics: when each job's latest attempt started (for run times), an
//! admin's password (an argon2 hash) and dashboard sessions, kept in the database so that every
//! server process knows them; and indexes that give a page of jobs by state (and queue),
//! newest first, as a short index range instead of a sort of every match.

use sea_orm_migration::prelude::*;

pub(crate) struct Dashboard;

impl MigrationName for Dashboard {
    fn name(&self) -> &str {
        "m0006_dashboard"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Dashboard {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let started = Table::alter()
            .table("outsourced_jobs")
            .add_column(ColumnDef::new("started_at").big_integer().null())
            .to_owned();
        manager.alter_table(started).await?;
        let password = Table::alter()
            .table("outsourced_principals")
            .add_column(ColumnDef::new("password_hash").string_len(255).null())
            .to_owned();
        manager.alter_table(password).await?;
        let sessions = Table::create()
            .table("outsourced_sessions")
            .col(
                ColumnDef::new("token_hash")
                    .string_len(64)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new("principal_id").big_integer().not_null())
            .col(ColumnDef::new("csrf").string_len(64).not_null())
            .col(ColumnDef::new("created_at").big_integer().not_null())
            .col(ColumnDef::new("expires_at").big_integer().not_null())
            .to_owned();
        manager.create_table(sessions).await?;
        listing_indexes(manager).await
    }
}

/// `(queue, state, id)` replaces `(queue, state)` (it serves every query the old one did), and
/// `(state, id)` lists one state across queues: failed jobs, newest first.
async fn listing_indexes(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let old = Index::drop()
        .name("outsourced_jobs_queue_state")
        .table("outsourced_jobs")
        .to_owned();
    manager.drop_index(old).await?;
    for (name, cols) in [
        (
            "outsourced_jobs_queue_state_id",
            &["queue", "state", "id"][..],
        ),
        ("outsourced_jobs_state_id", &["state", "id"][..]),
    ] {
        let mut index = Index::create();
        index.name(name).table("outsourced_jobs");
        for col in cols {
            index.col(*col);
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}
