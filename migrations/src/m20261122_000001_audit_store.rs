//! The first schema: executions, job events, job output chunks, the audit log and the
//! tombstones of deleted jobs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Executions {
    Table,
    JobId,
    Command,
    Params,
    Target,
    Channel,
    GroupId,
    RetryOf,
    Attempt,
    RequestedBy,
    Via,
    QueuedAtUs,
    Instance,
    Hostname,
    Argv,
    Pid,
    TreeMode,
    StartedAtUs,
    State,
    StateRank,
    ExitCode,
    Signal,
    Error,
    FinishedAtUs,
    DurationMs,
    EndedBy,
    EndedAtUs,
    PeakRssBytes,
    OutputBytes,
    LastSeq,
    OutputTruncated,
    Result,
    Leftover,
    Survivors,
    UpdatedAtUs,
}

#[derive(DeriveIden)]
enum JobEvents {
    Table,
    JobId,
    Event,
    AtUs,
    Instance,
    Body,
}

#[derive(DeriveIden)]
enum JobOutput {
    Table,
    JobId,
    Seq,
    Stream,
    Data,
    AtUs,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    AtUs,
    Actor,
    Action,
    Target,
    Allowed,
    Reason,
    Source,
    Via,
}

#[derive(DeriveIden)]
enum DeletedJobs {
    Table,
    JobId,
    DeletedBy,
    AtUs,
}

fn index(table: impl IntoIden, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    for c in cols {
        i.col(Alias::new(*c));
    }
    i.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Executions::Table)
                .if_not_exists()
                .col(uuid(Executions::JobId).primary_key())
                .col(text_null(Executions::Command))
                .col(json_null(Executions::Params))
                .col(json_null(Executions::Target))
                .col(text_null(Executions::Channel))
                .col(uuid_null(Executions::GroupId))
                .col(uuid_null(Executions::RetryOf))
                .col(integer_null(Executions::Attempt))
                .col(text_null(Executions::RequestedBy))
                .col(text_null(Executions::Via))
                .col(big_integer_null(Executions::QueuedAtUs))
                .col(uuid_null(Executions::Instance))
                .col(text_null(Executions::Hostname))
                .col(json_null(Executions::Argv))
                .col(big_integer_null(Executions::Pid))
                .col(text_null(Executions::TreeMode))
                .col(big_integer_null(Executions::StartedAtUs))
                .col(text(Executions::State))
                .col(small_integer(Executions::StateRank))
                .col(integer_null(Executions::ExitCode))
                .col(text_null(Executions::Signal))
                .col(text_null(Executions::Error))
                .col(big_integer_null(Executions::FinishedAtUs))
                .col(big_integer_null(Executions::DurationMs))
                .col(text_null(Executions::EndedBy))
                .col(big_integer_null(Executions::EndedAtUs))
                .col(big_integer_null(Executions::PeakRssBytes))
                .col(big_integer_null(Executions::OutputBytes))
                .col(big_integer_null(Executions::LastSeq))
                .col(boolean_null(Executions::OutputTruncated))
                .col(json_null(Executions::Result))
                .col(integer_null(Executions::Leftover))
                .col(integer_null(Executions::Survivors))
                .col(big_integer(Executions::UpdatedAtUs))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("ix_executions_queued", &["queued_at_us", "job_id"][..]),
            ("ix_executions_user", &["requested_by", "queued_at_us"][..]),
            ("ix_executions_command", &["command", "queued_at_us"][..]),
            ("ix_executions_state", &["state", "queued_at_us"][..]),
            ("ix_executions_instance", &["instance", "queued_at_us"][..]),
        ] {
            m.create_index(index(Executions::Table, name, cols)).await?;
        }

        m.create_table(
            Table::create()
                .table(JobEvents::Table)
                .if_not_exists()
                .col(uuid(JobEvents::JobId))
                .col(text(JobEvents::Event))
                .col(big_integer(JobEvents::AtUs))
                .col(uuid_null(JobEvents::Instance))
                .col(text(JobEvents::Body))
                .primary_key(Index::create().col(JobEvents::JobId).col(JobEvents::Event))
                .to_owned(),
        )
        .await?;
        m.create_index(index(JobEvents::Table, "ix_job_events_at", &["at_us"]))
            .await?;

        m.create_table(
            Table::create()
                .table(JobOutput::Table)
                .if_not_exists()
                .col(uuid(JobOutput::JobId))
                .col(big_integer(JobOutput::Seq))
                .col(text(JobOutput::Stream))
                .col(blob(JobOutput::Data))
                .col(big_integer(JobOutput::AtUs))
                .primary_key(Index::create().col(JobOutput::JobId).col(JobOutput::Seq))
                .to_owned(),
        )
        .await?;
        m.create_index(index(JobOutput::Table, "ix_job_output_at", &["at_us"]))
            .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(uuid(AuditLog::Id).primary_key())
                .col(big_integer(AuditLog::AtUs))
                .col(text_null(AuditLog::Actor))
                .col(text(AuditLog::Action))
                .col(text_null(AuditLog::Target))
                .col(boolean(AuditLog::Allowed))
                .col(text(AuditLog::Reason))
                .col(text(AuditLog::Source))
                .col(text(AuditLog::Via))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("ix_audit_log_at", &["at_us", "id"][..]),
            ("ix_audit_log_actor", &["actor", "at_us"][..]),
            ("ix_audit_log_action", &["action", "at_us"][..]),
        ] {
            m.create_index(index(AuditLog::Table, name, cols)).await?;
        }

        m.create_table(
            Table::create()
                .table(DeletedJobs::Table)
                .if_not_exists()
                .col(uuid(DeletedJobs::JobId).primary_key())
                .col(text(DeletedJobs::DeletedBy))
                .col(big_integer(DeletedJobs::AtUs))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            DeletedJobs::Table.into_iden(),
            AuditLog::Table.into_iden(),
            JobOutput::Table.into_iden(),
            JobEvents::Table.into_iden(),
            Executions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
