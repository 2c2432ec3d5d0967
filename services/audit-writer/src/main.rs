//! `taskwire-audit-writer`: stores events, output and audit decisions in SQL and answers
//! history queries.

fn main() -> std::process::ExitCode {
    taskwire_core::service::main(
        "taskwire-audit-writer",
        taskwire_audit_writer::AuditWriterOptions::from_settings,
        taskwire_audit_writer::run,
    )
}
