//! `taskwire schedule ls|add|show|rm|pause|resume|history`.

use super::api::Api;
use super::conn::Output;
use super::jobs::print_json;
use super::run::{instant, typed_params};
use super::table::{self, Colour, Table, clean};
use crate::error::CliError;
use taskwire_core::wire::api::{
    CommandView, Deleted, FireHistory, ScheduleInput, ScheduleList, ScheduleState, ScheduleView,
};
use taskwire_core::wire::{FireState, Timing};
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// My schedules (all of them for a super user), with their next fire.
    Ls,
    /// Create a schedule: --cron (with --tz), --at or --every.
    Add(Box<AddArgs>),
    /// One schedule with its next fires.
    Show { schedule: String },
    /// Delete a schedule (its history stays until it expires).
    Rm { schedule: String },
    /// Pause a schedule.
    Pause { schedule: String },
    /// Resume a paused schedule (from now: fires while paused do not run).
    Resume { schedule: String },
    /// Every fire: time, outcome, job id, or why it did not run.
    History {
        schedule: String,
        /// Fires at or after this instant (RFC 3339; default one day ago).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The command to run.
    command: String,
    /// A parameter, NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A cron expression with seconds: "SEC MIN HOUR DAY MONTH WEEKDAY" (or 5 fields).
    #[arg(long, group = "when")]
    cron: Option<String>,
    /// The cron's time zone (IANA name, default UTC).
    #[arg(long = "tz", requires = "cron")]
    time_zone: Option<String>,
    /// Once, at this instant (RFC 3339).
    #[arg(long, group = "when")]
    at: Option<String>,
    /// Every interval (90s, 15m, 1h).
    #[arg(long, group = "when")]
    every: Option<String>,
    /// A name for people.
    #[arg(long)]
    name: Option<String>,
    /// While the previous job runs: skip (default), allow, queue.
    #[arg(long)]
    overlap: Option<String>,
    /// Fires missed while no scheduler ran: skip (default) or run_once.
    #[arg(long)]
    misfire: Option<String>,
    /// Up to this much random delay per fire.
    #[arg(long)]
    jitter: Option<String>,
    /// Any instance serving this channel.
    #[arg(long, group = "target")]
    channel: Option<String>,
    /// Exactly this instance.
    #[arg(long, group = "target")]
    instance: Option<Uuid>,
    /// Every instance offering the command.
    #[arg(long, group = "target")]
    all: bool,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
}

/// A schedule id from the whole id or a unique prefix.
async fn resolve(api: &Api, given: &str) -> Result<String, CliError> {
    if Uuid::parse_str(given).is_ok() {
        return Ok(given.to_string());
    }
    let list: ScheduleList = api.get("/api/v1/schedules", &[]).await?;
    let ids: Vec<String> = list
        .schedules
        .iter()
        .map(|s| s.schedule.id.to_string())
        .filter(|id| given.len() >= 4 && id.starts_with(&given.to_ascii_lowercase()))
        .collect();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::Usage(format!(
            "no schedule of yours has an id starting with '{}'; see taskwire schedule ls",
            clean(given)
        ))),
        _ => Err(CliError::Usage(format!(
            "'{}' starts {} schedule ids; give more characters",
            clean(given),
            ids.len()
        ))),
    }
}

fn when(t: &Timing) -> String {
    match t {
        Timing::Cron { cron, time_zone } => format!("cron {cron} ({time_zone})"),
        Timing::Once { at } => format!("once at {}", stamp(*at)),
        Timing::Interval { every, .. } => {
            format!("every {}", taskwire_core::units::format_duration(*every))
        }
    }
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn state_name(s: ScheduleState) -> &'static str {
    match s {
        ScheduleState::Active => "active",
        ScheduleState::Paused => "paused",
        ScheduleState::Done => "done",
    }
}

fn print_one(v: &ScheduleView) {
    let on = table::colour_on();
    let s = &v.schedule;
    for (k, val) in [
        ("schedule", s.id.to_string()),
        ("name", s.name.clone()),
        ("command", s.command.clone()),
        (
            "params",
            serde_json::to_string(&s.params).unwrap_or_default(),
        ),
        ("when", when(&s.timing)),
        ("state", state_name(v.state).to_string()),
        ("owner", s.owner.clone()),
        ("overlap", wire_name(&s.overlap)),
        ("misfire", wire_name(&s.misfire)),
    ] {
        let key = format!("{k}:");
        println!(
            "{}{} {}",
            table::paint(&key, Some(Colour::Bold), on),
            " ".repeat(10usize.saturating_sub(key.len())),
            clean(&val)
        );
    }
    for (i, n) in v.next_fires.iter().enumerate() {
        let key = if i == 0 { "next:" } else { "" };
        println!(
            "{}{} {}",
            table::paint(key, Some(Colour::Bold), on),
            " ".repeat(10usize.saturating_sub(key.len())),
            stamp(*n)
        );
    }
}

/// A unit enum's name as the API writes it (`run_once`, `submitted`, ...).
fn wire_name(x: &impl serde::Serialize) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A policy value given on the command line (`--overlap`, `--misfire`).
fn policy<T: serde::de::DeserializeOwned>(
    flag: &str,
    value: &Option<String>,
    allowed: &str,
) -> Result<Option<T>, CliError> {
    value
        .as_deref()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_string())).map_err(|_| {
                CliError::Usage(format!(
                    "--{flag} '{}' is not known; use {allowed}",
                    clean(v)
                ))
            })
        })
        .transpose()
}

pub async fn run(api: &Api, cmd: ScheduleCommand) -> Result<u8, CliError> {
    let json = api.conn.output == Output::Json;
    match cmd {
        ScheduleCommand::Ls => {
            let list: ScheduleList = api.get("/api/v1/schedules", &[]).await?;
            if json {
                print_json(&list);
                return Ok(0);
            }
            let mut t = Table::new(&["ID", "NAME", "COMMAND", "WHEN", "STATE", "NEXT", "OWNER"]);
            for v in &list.schedules {
                let s = &v.schedule;
                let colour = match v.state {
                    ScheduleState::Active => Some(Colour::Green),
                    ScheduleState::Paused => Some(Colour::Yellow),
                    ScheduleState::Done => Some(Colour::Dim),
                };
                let id: String = s.id.to_string().chars().take(13).collect();
                t.row(vec![
                    (id, None),
                    (s.name.clone(), None),
                    (s.command.clone(), None),
                    (when(&s.timing), None),
                    (state_name(v.state).to_string(), colour),
                    (
                        v.next_fires.first().map_or("-".to_string(), |n| stamp(*n)),
                        None,
                    ),
                    (s.owner.clone(), None),
                ]);
            }
            if t.is_empty() {
                eprintln!("no schedules");
            } else {
                print!("{}", t.render(table::colour_on()));
            }
        }
        ScheduleCommand::Add(a) => {
            let commands: Vec<CommandView> = api.get("/api/v1/commands", &[]).await?;
            let params = typed_params(&a.params, commands.iter().find(|c| c.name == a.command))?;
            let mut body = ScheduleInput {
                command: Some(a.command.clone()),
                params: Some(params),
                name: a.name.clone(),
                overlap: policy("overlap", &a.overlap, "skip, allow or queue")?,
                misfire: policy("misfire", &a.misfire, "skip or run_once")?,
                jitter: a.jitter.clone(),
                channel: a.channel.clone(),
                instance: a.instance,
                all_instances: a.all.then_some(true),
                enabled: a.paused.then_some(false),
                ..ScheduleInput::default()
            };
            match (&a.cron, &a.at, &a.every) {
                (Some(c), _, _) => {
                    body.kind = Some("cron".into());
                    body.cron = Some(c.clone());
                    body.time_zone = a.time_zone.clone();
                }
                (_, Some(at), _) => {
                    body.kind = Some("once".into());
                    body.at = Some(instant(at)?);
                }
                (_, _, Some(e)) => {
                    body.kind = Some("interval".into());
                    body.every = Some(e.clone());
                }
                _ => {
                    return Err(CliError::Usage(
                        "say when it fires: --cron \"0 30 2 * * *\" [--tz Europe/Berlin], --at 2026-12-24T18:00:00Z or --every 15m".into(),
                    ));
                }
            }
            let v: ScheduleView = api.post("/api/v1/schedules", Some(&body), &[]).await?;
            if json {
                print_json(&v);
            } else {
                print_one(&v);
            }
        }
        ScheduleCommand::Show { schedule } => {
            let id = resolve(api, &schedule).await?;
            let v: ScheduleView = api.get(&format!("/api/v1/schedules/{id}"), &[]).await?;
            if json {
                print_json(&v);
            } else {
                print_one(&v);
            }
        }
        ScheduleCommand::Rm { schedule } => {
            let id = resolve(api, &schedule).await?;
            let gone: Deleted = api.delete(&format!("/api/v1/schedules/{id}")).await?;
            if json {
                print_json(&gone);
            } else {
                println!("deleted schedule {id}");
            }
        }
        ScheduleCommand::Pause { schedule } => return toggle(api, &schedule, "pause").await,
        ScheduleCommand::Resume { schedule } => return toggle(api, &schedule, "resume").await,
        ScheduleCommand::History {
            schedule,
            since,
            limit,
        } => {
            let id = resolve(api, &schedule).await?;
            let mut q = vec![("limit", limit.to_string())];
            if let Some(s) = since {
                q.push(("since", s));
            }
            let h: FireHistory = api
                .get(&format!("/api/v1/schedules/{id}/history"), &q)
                .await?;
            if json {
                print_json(&h);
                return Ok(0);
            }
            let mut t = Table::new(&["FIRE", "OUTCOME", "JOB", "WHY"]);
            for f in &h.fires {
                let colour = match f.state {
                    FireState::Submitted => Some(Colour::Green),
                    FireState::Denied | FireState::Failed => Some(Colour::Red),
                    FireState::Missed | FireState::Skipped => Some(Colour::Yellow),
                    FireState::Claimed | FireState::Waiting => Some(Colour::Dim),
                };
                let state = wire_name(&f.state);
                t.row(vec![
                    (stamp(f.fire_at), None),
                    (state, colour),
                    (f.job_id.map(|j| j.to_string()).unwrap_or_default(), None),
                    (f.reason.clone().unwrap_or_default(), Some(Colour::Dim)),
                ]);
            }
            if t.is_empty() {
                eprintln!("no fires yet");
            } else {
                print!("{}", t.render(table::colour_on()));
            }
        }
    }
    Ok(0)
}

async fn toggle(api: &Api, schedule: &str, verb: &str) -> Result<u8, CliError> {
    let id = resolve(api, schedule).await?;
    let v: ScheduleView = api
        .post(&format!("/api/v1/schedules/{id}/{verb}"), None::<&()>, &[])
        .await?;
    if api.conn.output == Output::Json {
        print_json(&v);
    } else {
        println!("schedule {id}: {}", state_name(v.state));
    }
    Ok(0)
}
