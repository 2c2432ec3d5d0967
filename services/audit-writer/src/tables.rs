//! The hot tables' INSERTs and look-ups ([`crate::rows`]): `job_events` and `job_output` skip rows already
//! stored, `executions` merges by the order-free rule of [`crate::fold`]. Each row's values
//! are moved out of its model, in the columns' order, as the same `Value` kinds the ORM binds.

use crate::rows::{Insert, Lookup, do_nothing};
use sea_orm::Value;
use taskwire_migrations::entity::{executions, job_events, job_output};

/// The batch's jobs that are deleted (their late events and output are not stored again).
pub static DELETED: Lookup = Lookup::new(r#"SELECT "job_id" FROM "deleted_jobs" WHERE "job_id""#);

/// The instance the store records for each job that has one.
pub static INSTANCES: Lookup = Lookup::new(
    r#"SELECT "job_id", "instance" FROM "executions" WHERE "instance" IS NOT NULL AND "job_id""#,
);

pub static JOB_EVENTS: Insert = Insert::new(
    "job_events",
    &["job_id", "event", "at_us", "instance", "body"],
    do_nothing,
);

pub static JOB_OUTPUT: Insert = Insert::new(
    "job_output",
    &["job_id", "seq", "stream", "data", "at_us", "encoding"],
    do_nothing,
);

const EXECUTIONS_COLUMNS: &[&str] = &[
    "job_id",
    "command",
    "params",
    "target",
    "channel",
    "group_id",
    "retry_of",
    "attempt",
    "requested_by",
    "via",
    "queued_at_us",
    "instance",
    "hostname",
    "argv",
    "pid",
    "tree_mode",
    "started_at_us",
    "state",
    "state_rank",
    "exit_code",
    "signal",
    "error",
    "finished_at_us",
    "duration_ms",
    "ended_by",
    "ended_at_us",
    "peak_rss_bytes",
    "output_bytes",
    "last_seq",
    "output_truncated",
    "result",
    "leftover",
    "survivors",
    "updated_at_us",
];

pub static EXECUTIONS: Insert = Insert::new("executions", EXECUTIONS_COLUMNS, executions_merge);

/// `ON CONFLICT ("job_id") DO UPDATE SET ...`: a column once set keeps its first value, the
/// state moves only forward, `updated_at_us` is the latest.
fn executions_merge() -> String {
    let mut sets = Vec::new();
    for c in &EXECUTIONS_COLUMNS[1..] {
        let larger = |c: &str| {
            format!(
                r#""{c}" = CASE WHEN "excluded"."state_rank" > "executions"."state_rank" THEN "excluded"."{c}" ELSE "executions"."{c}" END"#
            )
        };
        sets.push(match *c {
            "state" | "state_rank" => larger(c),
            "updated_at_us" => format!(
                r#""{c}" = CASE WHEN "excluded"."{c}" > "executions"."{c}" THEN "excluded"."{c}" ELSE "executions"."{c}" END"#
            ),
            _ => format!(r#""{c}" = COALESCE("executions"."{c}", "excluded"."{c}")"#),
        });
    }
    format!(
        r#"ON CONFLICT ("job_id") DO UPDATE SET {}"#,
        sets.join(", ")
    )
}

pub fn job_event(row: job_events::Model, out: &mut Vec<Value>) {
    let job_events::Model {
        job_id,
        event,
        at_us,
        instance,
        body,
    } = row;
    out.extend([
        job_id.into(),
        event.into(),
        at_us.into(),
        instance.into(),
        body.into(),
    ]);
}

pub fn job_chunk(row: job_output::Model, out: &mut Vec<Value>) {
    let job_output::Model {
        job_id,
        seq,
        stream,
        data,
        at_us,
        encoding,
    } = row;
    out.extend([
        job_id.into(),
        seq.into(),
        stream.into(),
        data.into(),
        at_us.into(),
        encoding.into(),
    ]);
}

pub fn execution(row: executions::Model, out: &mut Vec<Value>) {
    let executions::Model {
        job_id,
        command,
        params,
        target,
        channel,
        group_id,
        retry_of,
        attempt,
        requested_by,
        via,
        queued_at_us,
        instance,
        hostname,
        argv,
        pid,
        tree_mode,
        started_at_us,
        state,
        state_rank,
        exit_code,
        signal,
        error,
        finished_at_us,
        duration_ms,
        ended_by,
        ended_at_us,
        peak_rss_bytes,
        output_bytes,
        last_seq,
        output_truncated,
        result,
        leftover,
        survivors,
        updated_at_us,
    } = row;
    out.extend([
        job_id.into(),
        command.into(),
        params.into(),
        target.into(),
        channel.into(),
        group_id.into(),
        retry_of.into(),
        attempt.into(),
        requested_by.into(),
        via.into(),
        queued_at_us.into(),
        instance.into(),
        hostname.into(),
        argv.into(),
        pid.into(),
        tree_mode.into(),
        started_at_us.into(),
        state.into(),
        state_rank.into(),
        exit_code.into(),
        signal.into(),
        error.into(),
        finished_at_us.into(),
        duration_ms.into(),
        ended_by.into(),
        ended_at_us.into(),
        peak_rss_bytes.into(),
        output_bytes.into(),
        last_seq.into(),
        output_truncated.into(),
        result.into(),
        leftover.into(),
        survivors.into(),
        updated_at_us.into(),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{IdenStatic, Iterable};

    fn names<C: Iterable + IdenStatic>() -> Vec<&'static str> {
        C::iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn columns_are_the_tables_columns_in_order() {
        assert_eq!(EXECUTIONS_COLUMNS, names::<executions::Column>());
        assert_eq!(JOB_EVENTS.columns(), names::<job_events::Column>());
        assert_eq!(JOB_OUTPUT.columns(), names::<job_output::Column>());
        // The merge covers every column but the key.
        assert_eq!(
            executions_merge().matches(" = ").count(),
            EXECUTIONS_COLUMNS.len() - 1
        );
    }
}
