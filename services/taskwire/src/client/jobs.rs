//! `taskwire ps`, `show`, `logs`, `stop`, `kill` and `rm`, and job ids given as a unique
//! prefix.

use super::api::Api;
use super::conn::Output;
use super::follow::{self, Mode, Writer};
use super::table::{self, Colour, Table, clean, paint};
use crate::error::CliError;
use std::time::Duration;
use taskwire_core::retry::Backoff;
use taskwire_core::wire::api::{Deleted, JobList, JobView, ScheduledJob};
use taskwire_core::wire::{KillOutcome, KillReply, StoredChunk, StoredJob, Target};
use uuid::Uuid;

/// How many of the newest jobs a short id is looked up in.
const PREFIX_SCAN_PAGES: usize = 4;
const PAGE: u32 = 500;

/// A job id from the whole id or a unique prefix of at least 4 characters.
pub async fn resolve(api: &Api, given: &str) -> Result<Uuid, CliError> {
    let given = given.trim();
    if let Ok(u) = Uuid::parse_str(given) {
        return Ok(u);
    }
    let prefix = given.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(CliError::Usage(format!(
            "'{}' is not a job id: give the whole id or a unique prefix of at least 4 characters (taskwire ps lists them)",
            clean(given)
        )));
    }
    let mut found: Vec<Uuid> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..PREFIX_SCAN_PAGES {
        let mut q = vec![("limit", PAGE.to_string())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page: JobList = api.get("/api/v1/jobs", &q).await?;
        found.extend(
            page.jobs
                .iter()
                .map(|j| j.record.spec.job_id)
                .filter(|id| id.to_string().starts_with(&prefix)),
        );
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    found.dedup();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CliError::Usage(format!(
            "no job you can read has an id starting with '{prefix}' (among the {} newest); give the whole id",
            PREFIX_SCAN_PAGES * PAGE as usize
        ))),
        many => Err(CliError::Usage(format!(
            "'{prefix}' is ambiguous: it starts {} ids ({}); give more characters",
            many.len(),
            many.iter()
                .take(5)
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The shortest prefix length (at least 8) that tells these ids apart.
pub fn short_len(ids: &[Uuid]) -> usize {
    let texts: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let mut len = 8;
    while len < 36 {
        let mut seen: Vec<&str> = texts.iter().map(|t| &t[..len]).collect();
        seen.sort_unstable();
        let before = seen.len();
        seen.dedup();
        if seen.len() == before {
            break;
        }
        len += 1;
    }
    len
}

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Past jobs too (history from the audit store), not only running and queued ones.
    #[arg(long, short = 'a')]
    all: bool,
    /// Only jobs in this state (queued, running, succeeded, failed, stopped, killed,
    /// timed_out, lost, cancelled).
    #[arg(long)]
    state: Option<String>,
    /// Only this command.
    #[arg(long)]
    command: Option<String>,
    /// Only jobs of this user.
    #[arg(long)]
    user: Option<String>,
    /// Only jobs on this instance (GUID).
    #[arg(long)]
    instance: Option<Uuid>,
    /// Queued at or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Queued before this instant (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// How many jobs (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    cursor: Option<String>,
}

pub async fn ps(api: &Api, a: PsArgs) -> Result<u8, CliError> {
    let mut base = super::api::query(
        a.limit,
        &[
            ("command", &a.command),
            ("user", &a.user),
            ("since", &a.since),
            ("until", &a.until),
            ("cursor", &a.cursor),
        ],
    );
    if let Some(i) = a.instance {
        base.push(("instance", i.to_string()));
    }
    let states: Vec<Option<String>> = match (&a.state, a.all) {
        (Some(s), _) => vec![Some(s.clone())],
        (None, true) => vec![None],
        (None, false) => vec![Some("running".into()), Some("queued".into())],
    };
    let mut jobs: Vec<StoredJob> = Vec::new();
    let mut next = None;
    // Delayed jobs waiting for their time: the API lists them on an unfiltered first page.
    let mut scheduled: Vec<ScheduledJob> = Vec::new();
    let waiting_too = a.state.is_none()
        && a.cursor.is_none()
        && a.instance.is_none()
        && a.since.is_none()
        && a.until.is_none();
    for s in &states {
        let mut q = base.clone();
        if let Some(s) = s {
            q.push(("state", s.clone()));
        }
        let page: JobList = api.get("/api/v1/jobs", &q).await?;
        jobs.extend(page.jobs);
        scheduled.extend(page.scheduled);
        if states.len() == 1 {
            next = page.next;
        }
    }
    if waiting_too && !a.all {
        let q = super::api::query(1, &[("command", &a.command), ("user", &a.user)]);
        let page: JobList = api.get("/api/v1/jobs", &q).await?;
        scheduled.extend(page.scheduled);
    }
    if api.conn.output == Output::Json {
        print_json(&JobList {
            jobs,
            next,
            scheduled,
        });
        return Ok(0);
    }
    print_jobs(&jobs);
    print_waiting(&scheduled);
    if let Some(n) = next {
        eprintln!("more: add --cursor {n}");
    }
    Ok(0)
}

fn print_jobs(jobs: &[StoredJob]) {
    let on = table::colour_on();
    if jobs.is_empty() {
        eprintln!("no jobs");
        return;
    }
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.record.spec.job_id).collect();
    let n = short_len(&ids);
    let mut t = Table::new(&[
        "ID", "COMMAND", "STATE", "USER", "WHERE", "QUEUED", "TOOK", "EXIT",
    ]);
    for j in jobs {
        let r = &j.record;
        t.row(vec![
            (r.spec.job_id.to_string()[..n].to_string(), None),
            (r.spec.command.clone(), None),
            (r.state.to_string(), Some(table::state_colour(r.state))),
            (r.spec.requested_by.clone(), None),
            (where_(r), None),
            (table::ago(r.spec.queued_at), None),
            (took(j), None),
            (exit(r), None),
        ]);
    }
    print!("{}", t.render(on));
}

/// Delayed jobs not queued yet: id, command, owner, when.
fn print_waiting(scheduled: &[ScheduledJob]) {
    if scheduled.is_empty() {
        return;
    }
    let mut t = Table::new(&["ID", "COMMAND", "STATE", "USER", "NOT BEFORE"]);
    for j in scheduled {
        t.row(vec![
            (j.job_id.to_string(), None),
            (j.command.clone(), None),
            ("scheduled".to_string(), None),
            (j.requested_by.clone(), None),
            (
                j.not_before
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                None,
            ),
        ]);
    }
    println!();
    print!("{}", t.render(table::colour_on()));
}

fn where_(r: &taskwire_core::wire::JobRecord) -> String {
    if let Some(h) = &r.hostname {
        return h.clone();
    }
    match &r.spec.target {
        Target::Channel(c) => format!("channel {c}"),
        Target::Instance(g) => g.to_string()[..8].to_string(),
    }
}

fn took(j: &StoredJob) -> String {
    if let Some(ms) = j.duration_ms {
        return table::duration_ms(ms);
    }
    match (j.record.started_at, j.record.finished_at) {
        (Some(s), Some(f)) => table::duration_ms((f - s).num_milliseconds().max(0) as u64),
        (Some(s), None) => {
            table::duration_ms((chrono::Utc::now() - s).num_milliseconds().max(0) as u64)
        }
        _ => String::new(),
    }
}

fn exit(r: &taskwire_core::wire::JobRecord) -> String {
    match (&r.exit_code, &r.signal) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Prints an API document as JSON (`--output json`).
pub fn print_json(doc: &impl serde::Serialize) {
    match serde_json::to_string_pretty(doc) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("taskwire: cannot print the answer as JSON: {e}"),
    }
}

pub async fn show(api: &Api, job: &str) -> Result<u8, CliError> {
    let id = resolve(api, job).await?;
    let view: JobView = api.get(&format!("/api/v1/jobs/{id}"), &[]).await?;
    if api.conn.output == Output::Json {
        print_json(&view);
        return Ok(0);
    }
    let j = match view {
        JobView::Job(j) => *j,
        JobView::Scheduled(d) => {
            print_fields(&[
                ("job", d.job_id.to_string()),
                ("command", d.command.clone()),
                ("state", "scheduled".into()),
                ("user", d.requested_by.clone()),
                ("not before", stamp(d.not_before)),
                ("schedule", d.schedule_id.to_string()),
            ]);
            return Ok(0);
        }
    };
    let r = &j.record;
    let on = table::colour_on();
    let mut lines: Vec<(&str, String)> = vec![
        ("job", r.spec.job_id.to_string()),
        ("command", r.spec.command.clone()),
    ];
    if !r.spec.params.is_empty() {
        let p = r
            .spec
            .params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        lines.push(("params", p));
    }
    let mut state = paint(r.state.as_str(), Some(table::state_colour(r.state)), on);
    match (&r.exit_code, &r.signal) {
        (Some(c), _) => state.push_str(&format!(" (exit code {c})")),
        (None, Some(sig)) => state.push_str(&format!(" (ended by {sig})")),
        _ => {}
    }
    lines.push(("state", state));
    lines.push((
        "user",
        format!(
            "{} (via {})",
            r.spec.requested_by,
            format!("{:?}", r.spec.via).to_lowercase()
        ),
    ));
    lines.push((
        "target",
        match &r.spec.target {
            Target::Channel(c) => format!("channel {c}"),
            Target::Instance(g) => format!("instance {g}"),
        },
    ));
    if let Some(g) = r.instance {
        lines.push((
            "instance",
            format!("{} ({g})", r.hostname.clone().unwrap_or_default()),
        ));
    }
    lines.push(("queued", stamp(r.spec.queued_at)));
    if let Some(t) = r.started_at {
        lines.push(("started", stamp(t)));
    }
    if let Some(t) = r.finished_at.or(j.ended_at) {
        lines.push(("finished", stamp(t)));
    }
    let t = took(&j);
    if !t.is_empty() {
        lines.push(("took", t));
    }
    if let Some(argv) = &j.argv {
        lines.push(("argv", serde_json::to_string(argv).unwrap_or_default()));
    }
    if let Some(pid) = j.pid {
        lines.push(("pid", pid.to_string()));
    }
    if let Some(m) = j.peak_rss_bytes {
        lines.push(("peak memory", table::bytes(m)));
    }
    if let Some(b) = j.output_bytes {
        let cut = if j.output_truncated == Some(true) {
            " (truncated)"
        } else {
            ""
        };
        lines.push(("output", format!("{}{cut}", table::bytes(b))));
    }
    if let Some(by) = &r.ended_by {
        lines.push(("ended by", by.clone()));
    }
    if let Some(e) = &r.error {
        lines.push(("error", e.clone()));
    }
    if let Some(res) = &j.result {
        lines.push(("result", res.to_string()));
    }
    if let Some(g) = r.spec.group_id {
        lines.push(("group", g.to_string()));
    }
    print_fields(&lines);
    Ok(0)
}

/// `key: value` lines, aligned. Server text is cleaned; only the state carries this client's
/// own colour.
fn print_fields(lines: &[(&str, String)]) {
    let on = table::colour_on();
    for (k, v) in lines {
        let key = format!("{k}:");
        let v = if *k == "state" { v.clone() } else { clean(v) };
        println!(
            "{}{} {v}",
            paint(&key, Some(Colour::Bold), on),
            " ".repeat(12usize.saturating_sub(key.len())),
        );
    }
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{} ({})",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        table::ago(t)
    )
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The job (its id or a unique prefix).
    job: String,
    /// Keep following until the job ends.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Start at this chunk sequence number (1 is the start).
    #[arg(long, default_value_t = 1)]
    from_seq: u64,
}

pub async fn logs(api: &Api, a: LogsArgs) -> Result<u8, CliError> {
    let id = resolve(api, &a.job).await?;
    let mode = if api.conn.output == Output::Json {
        Mode::Json
    } else {
        Mode::Raw
    };
    let out = Writer::new(mode);
    if a.follow {
        let path = format!("/api/v1/jobs/{id}");
        let mut view: JobView = api.get(&path, &[]).await?;
        if let JobView::Scheduled(d) = &view {
            eprintln!(
                "taskwire: job {id} waits for its time ({}); following it once it is queued",
                d.not_before
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            );
        }
        // A delayed job has no output stream before it is queued: ask again until it is.
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        while let JobView::Scheduled(_) = view {
            backoff.wait().await;
            view = api.get(&path, &[]).await?;
        }
        if let JobView::Job(j) = &view
            && !j.record.state.is_terminal()
        {
            follow::follow(api, id, "", a.from_seq, &out).await?;
            return Ok(0);
        }
    }
    let body = api
        .get_bytes(
            &format!("/api/v1/jobs/{id}/output"),
            &[("format", "ndjson".into())],
        )
        .await?;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let c: StoredChunk = serde_json::from_slice(line).map_err(|e| CliError::BadAnswer {
            url: api.conn.url.clone(),
            detail: format!("output chunk: {e}"),
        })?;
        if c.seq >= a.from_seq {
            out.chunk(id, "", &c)?;
        }
    }
    Ok(0)
}

/// `taskwire stop` / `taskwire kill`.
pub async fn signal(api: &Api, job: &str, kill: bool) -> Result<u8, CliError> {
    let id = resolve(api, job).await?;
    let verb = if kill { "kill" } else { "stop" };
    let reply: KillReply = api
        .post(&format!("/api/v1/jobs/{id}/{verb}"), None::<&()>, &[])
        .await?;
    if api.conn.output == Output::Json {
        print_json(&reply);
    }
    let ok = matches!(
        reply.outcome,
        KillOutcome::Signalled | KillOutcome::Cancelled
    );
    if api.conn.output == Output::Human {
        let mut text = format!("job {id}: {}", clean(&reply.message));
        if !reply.signals.is_empty() {
            text.push_str(&format!(" (signals: {})", reply.signals.join(", ")));
        }
        if let Some(s) = reply.state {
            text.push_str(&format!("; state {s}"));
        }
        if ok {
            println!("{text}")
        } else {
            eprintln!("taskwire: {text}")
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// Ends a job for `run`'s Ctrl-C: no id resolution, the reply summarized on stderr.
pub async fn end_job(api: &Api, id: Uuid, kill: bool) -> Result<(), CliError> {
    let verb = if kill { "kill" } else { "stop" };
    let reply: KillReply = api
        .post(&format!("/api/v1/jobs/{id}/{verb}"), None::<&()>, &[])
        .await?;
    eprintln!("taskwire: job {id}: {}", clean(&reply.message));
    Ok(())
}

pub async fn rm(api: &Api, job: &str) -> Result<u8, CliError> {
    let id = resolve(api, job).await?;
    let gone: Deleted = api.delete(&format!("/api/v1/jobs/{id}")).await?;
    if api.conn.output == Output::Json {
        print_json(&gone);
    } else {
        println!("deleted job {id}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_grow_until_they_differ() {
        let a = Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        let b = Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-000000000000").unwrap();
        let c = Uuid::parse_str("11111111-0000-7000-8000-000000000000").unwrap();
        assert_eq!(short_len(&[a, c]), 8);
        let n = short_len(&[a, b, c]);
        assert_eq!(&a.to_string()[..n], "0190f5c2-7d1e-7a3b-9c4d-5");
    }
}
