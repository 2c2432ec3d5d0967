//! `taskwire run`: submit a job, follow its output live, and exit with its exit status.
//! Ctrl-C asks whether to stop, kill or detach (or does what `--on-interrupt` says).

use super::api::Api;
use super::conn::Output;
use super::exit;
use super::follow::{self, Mode, Writer};
use super::jobs::{end_job, print_json};
use crate::error::CliError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use taskwire_core::catalog::ParamKind;
use taskwire_core::wire::JobRecord;
use taskwire_core::wire::api::{CommandView, SubmitRequest, Submitted};
use uuid::Uuid;

/// What Ctrl-C does while a job is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInterrupt {
    /// Ask: stop, kill, detach or keep following (the default on a terminal).
    Ask,
    /// Stop the job gracefully and wait for its end.
    Stop,
    /// Kill the job and wait for its end.
    Kill,
    /// Leave the job running and return (the default without a terminal).
    Detach,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The command to run (see `taskwire commands`).
    command: String,
    /// A parameter, NAME=VALUE (repeatable); typed by the command's schema.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Any instance serving this channel.
    #[arg(long, group = "target")]
    channel: Option<String>,
    /// Exactly this instance (GUID).
    #[arg(long, group = "target")]
    instance: Option<Uuid>,
    /// One job on every instance offering the command.
    #[arg(long, group = "target")]
    all: bool,
    /// One job on every instance with these labels, KEY=VALUE (repeatable).
    #[arg(long = "labels", group = "target", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Print the job id and return at once instead of following.
    #[arg(long, short = 'd')]
    detach: bool,
    /// What Ctrl-C does (default: ask on a terminal, detach otherwise).
    #[arg(long, value_enum)]
    on_interrupt: Option<OnInterrupt>,
    /// Run at (not before) this instant (RFC 3339); prints the job id and returns.
    #[arg(long, value_name = "INSTANT")]
    not_before: Option<String>,
    /// Makes a retried `run` name the same job instead of starting another.
    #[arg(long)]
    idempotency_key: Option<String>,
}

fn split_kv(s: &str, what: &str) -> Result<(String, String), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(CliError::Usage(format!(
            "{what} '{s}' is not NAME=VALUE (example: --param steps=5)"
        ))),
    }
}

/// Types `NAME=VALUE` pairs by the command's schema (strings when the schema is unknown).
pub fn typed_params(
    pairs: &[String],
    schema: Option<&CommandView>,
) -> Result<BTreeMap<String, Value>, CliError> {
    let mut out = BTreeMap::new();
    for raw in pairs {
        let (k, v) = split_kv(raw, "parameter")?;
        let spec = schema.and_then(|c| c.params.iter().find(|p| p.name == k));
        let value = match spec.map(|p| &p.kind) {
            Some(ParamKind::Integer { .. }) => match v.trim().parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => {
                    return Err(CliError::Usage(format!(
                        "parameter {k} is an integer; '{v}' is not one"
                    )));
                }
            },
            Some(ParamKind::Boolean) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => json!(true),
                "false" | "no" | "0" | "off" => json!(false),
                _ => {
                    return Err(CliError::Usage(format!(
                        "parameter {k} is true or false; '{v}' is neither"
                    )));
                }
            },
            _ => json!(v),
        };
        if out.insert(k.clone(), value).is_some() {
            return Err(CliError::Usage(format!("parameter {k} is given twice")));
        }
    }
    Ok(out)
}

/// The known command names nearest to `name` (for "did you mean").
pub fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = known
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(name.len() / 3) || k.starts_with(name) || name.starts_with(k))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Submits and follows; returns the exit status.
pub async fn run(api: &Api, a: RunArgs) -> Result<u8, CliError> {
    let commands: Vec<CommandView> = match api.get("/api/v1/commands", &[]).await {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let schema = commands.iter().find(|c| c.name == a.command);
    let params = match typed_params(&a.params, schema) {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    let not_before = match a.not_before.as_deref().map(instant).transpose() {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = match split_kv(l, "label") {
            Ok(kv) => kv,
            Err(e) => return refused(e),
        };
        labels.insert(k, v);
    }
    let body = SubmitRequest {
        command: a.command.clone(),
        params,
        channel: a.channel.clone(),
        instance: a.instance,
        all_instances: a.all,
        labels,
        not_before,
    };
    let headers: Vec<(&str, String)> = a
        .idempotency_key
        .iter()
        .map(|k| ("Idempotency-Key", k.clone()))
        .collect();
    let answer: Submitted = match api.post("/api/v1/jobs", Some(&body), &headers).await {
        Ok(v) => v,
        Err(CliError::Api(mut f)) if schema.is_none() && f.code != "forbidden" => {
            let near = nearest(&a.command, commands.iter().map(|c| c.name.as_str()));
            if !near.is_empty() {
                f.message = format!("{}. Did you mean: {}?", f.message, near.join(", "));
            }
            return refused(CliError::Api(f));
        }
        Err(e) => return refused(e),
    };
    let jobs: Vec<JobRecord> = match &answer {
        Submitted::Delayed(d) => {
            if api.conn.output == Output::Json {
                print_json(&answer);
            } else {
                println!("{}", d.job_id);
                eprintln!(
                    "scheduled for {}; follow it then with: taskwire logs -f {}",
                    d.not_before
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    d.job_id
                );
            }
            return Ok(0);
        }
        Submitted::One(r) => vec![r.clone()],
        Submitted::Group(g) => g.jobs.clone(),
    };
    if a.detach {
        if api.conn.output == Output::Json {
            print_json(&answer);
        } else {
            for j in &jobs {
                println!("{}", j.spec.job_id);
            }
            if let Some(j) = jobs.first() {
                eprintln!("follow with: taskwire logs -f {}", j.spec.job_id);
            }
        }
        return Ok(0);
    }
    let policy = a.on_interrupt.unwrap_or(if std::io::stdin().is_terminal() {
        OnInterrupt::Ask
    } else {
        OnInterrupt::Detach
    });
    follow_all(api, &jobs, policy).await
}

/// An RFC 3339 instant given on the command line.
pub fn instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            CliError::Usage(format!(
                "'{}' is not an RFC 3339 instant ({e}); write it like 2026-12-24T18:00:00Z",
                crate::text::clean(text)
            ))
        })
}

fn refused(e: CliError) -> Result<u8, CliError> {
    eprintln!("taskwire: {e}");
    Ok(exit::REFUSED)
}

/// Follows every job to its end, handling Ctrl-C by `policy`.
async fn follow_all(api: &Api, jobs: &[JobRecord], policy: OnInterrupt) -> Result<u8, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mode = match (api.conn.output, jobs.len()) {
        (Output::Json, _) => Mode::Json,
        (_, 1) => Mode::Raw,
        _ => Mode::Labelled,
    };
    if mode == Mode::Labelled {
        eprintln!("taskwire: following {} jobs", jobs.len());
    }
    let out = Writer::new(mode);
    let labels: Vec<String> = jobs.iter().map(|j| label(j, jobs)).collect();
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.spec.job_id).collect();
    let all = futures_join(api, &ids, &labels, &out);
    tokio::pin!(all);
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| CliError::Usage(format!("cannot watch for Ctrl-C: {e}")))?;
    loop {
        let choice = tokio::select! {
            ends = &mut all => return ends,
            _ = sigint.recv() => match policy {
                OnInterrupt::Ask => {
                    let asked = ask(&ids);
                    tokio::pin!(asked);
                    tokio::select! {
                        ends = &mut all => return ends,
                        _ = sigint.recv() => OnInterrupt::Detach,
                        c = &mut asked => c,
                    }
                }
                other => other,
            },
        };
        match choice {
            OnInterrupt::Detach => {
                for id in &ids {
                    eprintln!(
                        "taskwire: detached; job {id} keeps running (follow it with: taskwire logs -f {id})"
                    );
                }
                return Ok(exit::DETACHED);
            }
            OnInterrupt::Stop | OnInterrupt::Kill => {
                for id in &ids {
                    if let Err(e) = end_job(api, *id, choice == OnInterrupt::Kill).await {
                        eprintln!("taskwire: {e}");
                    }
                }
            }
            OnInterrupt::Ask => {}
        }
    }
}

/// Follows each job concurrently; the status of the first that did not succeed.
async fn futures_join(
    api: &Api,
    ids: &[Uuid],
    labels: &[String],
    out: &Writer,
) -> Result<u8, CliError> {
    let mut set = Vec::new();
    for (id, l) in ids.iter().zip(labels) {
        set.push(follow::follow(api, *id, l, 1, out));
    }
    let mut codes = Vec::new();
    for r in join_all(set).await {
        match r {
            Ok(end) => codes.push(exit::for_end(&end)),
            Err(e) => {
                let id = ids[codes.len()];
                eprintln!(
                    "taskwire: lost the output stream of job {id}: {e}; it may still run (follow it with: taskwire logs -f {id})"
                );
                codes.push(exit::LOST);
            }
        }
    }
    if ids.len() == 1
        && let Some(c) = codes.first()
        && *c != 0
    {
        return Ok(*c);
    }
    Ok(exit::for_all(&codes))
}

/// Polls futures together on this task, keeping their order.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

fn label(j: &JobRecord, all: &[JobRecord]) -> String {
    let host = j.hostname.clone().unwrap_or_default();
    let unique = !host.is_empty()
        && all
            .iter()
            .filter(|o| o.hostname.as_deref() == Some(&host))
            .count()
            == 1;
    if unique {
        super::table::clean(&host)
    } else if let taskwire_core::wire::Target::Instance(g) = &j.spec.target {
        g.to_string()[..8].to_string()
    } else {
        j.spec.job_id.to_string()[..13].to_string()
    }
}

/// Asks on stderr, reads the answer from stdin.
async fn ask(ids: &[Uuid]) -> OnInterrupt {
    let what = if ids.len() == 1 {
        "the job is"
    } else {
        "the jobs are"
    };
    eprintln!();
    eprint!(
        "taskwire: {what} still running. [s]top, [k]ill, [d]etach (it keeps running) or [c]ontinue following? "
    );
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    match line {
        Ok(Ok(l)) => match l.trim().to_ascii_lowercase().chars().next() {
            Some('s') => OnInterrupt::Stop,
            Some('k') => OnInterrupt::Kill,
            Some('c') => OnInterrupt::Ask,
            _ => OnInterrupt::Detach,
        },
        _ => OnInterrupt::Detach,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskwire_core::catalog::ParamSpec;

    fn schema() -> CommandView {
        let p = |name: &str, kind: ParamKind| ParamSpec {
            name: name.into(),
            description: String::new(),
            required: false,
            default: None,
            kind,
        };
        CommandView {
            name: "progress".into(),
            description: String::new(),
            params: vec![
                p(
                    "steps",
                    ParamKind::Integer {
                        min: None,
                        max: None,
                    },
                ),
                p("loud", ParamKind::Boolean),
                p(
                    "who",
                    ParamKind::String {
                        pattern: None,
                        max_len: None,
                        allow_leading_dash: false,
                        multiline: false,
                    },
                ),
            ],
            channels: vec![],
            instances: vec![],
        }
    }

    #[test]
    fn params_are_typed_by_the_schema_and_bad_ones_explained() {
        let s = schema();
        let p = typed_params(
            &["steps=5".into(), "loud=yes".into(), "who=a=b".into()],
            Some(&s),
        )
        .unwrap();
        assert_eq!(p["steps"], json!(5));
        assert_eq!(p["loud"], json!(true));
        assert_eq!(p["who"], json!("a=b"));
        let e = typed_params(&["steps=many".into()], Some(&s))
            .unwrap_err()
            .to_string();
        assert!(e.contains("integer"), "{e}");
        let e = typed_params(&["steps".into()], Some(&s))
            .unwrap_err()
            .to_string();
        assert!(e.contains("NAME=VALUE"), "{e}");
        let e = typed_params(&["a=1".into(), "a=2".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        assert_eq!(
            typed_params(&["steps=5".into()], None).unwrap()["steps"],
            json!("5")
        );
    }

    #[test]
    fn nearest_names_are_suggested() {
        let known = ["hello", "progress", "fail", "forever", "uptime"];
        assert_eq!(nearest("helo", known.iter().copied()), vec!["hello"]);
        assert_eq!(nearest("progres", known.iter().copied()), vec!["progress"]);
        assert!(nearest("zzzzzzzz", known.iter().copied()).is_empty());
    }
}
