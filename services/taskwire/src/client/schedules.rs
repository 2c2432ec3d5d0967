//! `taskwire schedule ls|add|show|rm|pause|resume|history`.

use super::api::Api;
use super::conn::Output;
use super::jobs::pretty;
use super::run::typed_params;
use super::table::{self, Colour, Table, clean};
use crate::error::CliError;
use serde_json::{Value, json};
use taskwire_gateway::routes::commands::CommandView;
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
    let v: Value = api.get("/api/v1/schedules", &[]).await?;
    let ids: Vec<String> = v["schedules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
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

fn when(s: &Value) -> String {
    match s["kind"].as_str() {
        Some("cron") => format!(
            "cron {} ({})",
            s["cron"].as_str().unwrap_or(""),
            s["time_zone"].as_str().unwrap_or("UTC")
        ),
        Some("once") => format!("once at {}", s["at"].as_str().unwrap_or("")),
        Some("interval") => format!("every {}", s["every"].as_str().unwrap_or("")),
        _ => String::new(),
    }
}

fn print_one(s: &Value) {
    let on = table::colour_on();
    for (k, v) in [
        ("schedule", s["id"].as_str().unwrap_or("").to_string()),
        ("name", s["name"].as_str().unwrap_or("").to_string()),
        ("command", s["command"].as_str().unwrap_or("").to_string()),
        ("params", s["params"].to_string()),
        ("when", when(s)),
        ("state", s["state"].as_str().unwrap_or("").to_string()),
        ("owner", s["owner"].as_str().unwrap_or("").to_string()),
        ("overlap", s["overlap"].as_str().unwrap_or("").to_string()),
        ("misfire", s["misfire"].as_str().unwrap_or("").to_string()),
    ] {
        let key = format!("{k}:");
        println!(
            "{}{} {}",
            table::paint(&key, Some(Colour::Bold), on),
            " ".repeat(10usize.saturating_sub(key.len())),
            clean(&v)
        );
    }
    for (i, n) in s["next_fires"].as_array().into_iter().flatten().enumerate() {
        let key = if i == 0 { "next:" } else { "" };
        println!(
            "{}{} {}",
            table::paint(key, Some(Colour::Bold), on),
            " ".repeat(10usize.saturating_sub(key.len())),
            clean(n.as_str().unwrap_or(""))
        );
    }
}

pub async fn run(api: &Api, cmd: ScheduleCommand) -> Result<u8, CliError> {
    let json = api.conn.output == Output::Json;
    match cmd {
        ScheduleCommand::Ls => {
            let v: Value = api.get("/api/v1/schedules", &[]).await?;
            if json {
                println!("{}", pretty(&v));
                return Ok(0);
            }
            let mut t = Table::new(&["ID", "NAME", "COMMAND", "WHEN", "STATE", "NEXT", "OWNER"]);
            for s in v["schedules"].as_array().into_iter().flatten() {
                let state = s["state"].as_str().unwrap_or("").to_string();
                let colour = match state.as_str() {
                    "active" => Some(Colour::Green),
                    "paused" => Some(Colour::Yellow),
                    _ => Some(Colour::Dim),
                };
                let id: String = s["id"].as_str().unwrap_or("").chars().take(13).collect();
                t.row(vec![
                    (id, None),
                    (s["name"].as_str().unwrap_or("").to_string(), None),
                    (s["command"].as_str().unwrap_or("").to_string(), None),
                    (when(s), None),
                    (state, colour),
                    (s["next_fires"][0].as_str().unwrap_or("-").to_string(), None),
                    (s["owner"].as_str().unwrap_or("").to_string(), None),
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
            let mut body = json!({"command": a.command, "params": params});
            match (&a.cron, &a.at, &a.every) {
                (Some(c), _, _) => {
                    body["kind"] = json!("cron");
                    body["cron"] = json!(c);
                    if let Some(tz) = &a.time_zone {
                        body["time_zone"] = json!(tz);
                    }
                }
                (_, Some(at), _) => {
                    body["kind"] = json!("once");
                    body["at"] = json!(at);
                }
                (_, _, Some(e)) => {
                    body["kind"] = json!("interval");
                    body["every"] = json!(e);
                }
                _ => {
                    return Err(CliError::Usage(
                        "say when it fires: --cron \"0 30 2 * * *\" [--tz Europe/Berlin], --at 2026-12-24T18:00:00Z or --every 15m".into(),
                    ));
                }
            }
            for (k, v) in [
                ("name", &a.name),
                ("overlap", &a.overlap),
                ("misfire", &a.misfire),
                ("jitter", &a.jitter),
                ("channel", &a.channel),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(i) = a.instance {
                body["instance"] = json!(i);
            }
            if a.all {
                body["all_instances"] = json!(true);
            }
            if a.paused {
                body["enabled"] = json!(false);
            }
            let v: Value = api.post("/api/v1/schedules", Some(&body), &[]).await?;
            if json {
                println!("{}", pretty(&v));
            } else {
                print_one(&v);
            }
        }
        ScheduleCommand::Show { schedule } => {
            let id = resolve(api, &schedule).await?;
            let v: Value = api.get(&format!("/api/v1/schedules/{id}"), &[]).await?;
            if json {
                println!("{}", pretty(&v));
            } else {
                print_one(&v);
            }
        }
        ScheduleCommand::Rm { schedule } => {
            let id = resolve(api, &schedule).await?;
            let v: Value = api.delete(&format!("/api/v1/schedules/{id}")).await?;
            if json {
                println!("{}", pretty(&v));
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
            let v: Value = api
                .get(&format!("/api/v1/schedules/{id}/history"), &q)
                .await?;
            if json {
                println!("{}", pretty(&v));
                return Ok(0);
            }
            let mut t = Table::new(&["FIRE", "OUTCOME", "JOB", "WHY"]);
            for f in v["fires"].as_array().into_iter().flatten() {
                let state = f["state"].as_str().unwrap_or("").to_string();
                let colour = match state.as_str() {
                    "submitted" => Some(Colour::Green),
                    "denied" | "failed" => Some(Colour::Red),
                    "missed" | "skipped" => Some(Colour::Yellow),
                    _ => Some(Colour::Dim),
                };
                t.row(vec![
                    (f["fire_at"].as_str().unwrap_or("").to_string(), None),
                    (state, colour),
                    (f["job_id"].as_str().unwrap_or("").to_string(), None),
                    (
                        f["reason"].as_str().unwrap_or("").to_string(),
                        Some(Colour::Dim),
                    ),
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
    let v: Value = api
        .post(
            &format!("/api/v1/schedules/{id}/{verb}"),
            Some(&json!({})),
            &[],
        )
        .await?;
    if api.conn.output == Output::Json {
        println!("{}", pretty(&v));
    } else {
        println!("schedule {id}: {}", v["state"].as_str().unwrap_or(""));
    }
    Ok(0)
}
