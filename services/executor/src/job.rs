//! One job from dispatch message to final state.
//!
//! Exactly one start: the record moves `queued -> running` by compare-and-set in `tw_jobs`
//! before anything is spawned, and only then is the dispatch message acked. A message whose
//! job is no longer queued (claimed elsewhere, cancelled) is acked and skipped. Every job that
//! is claimed here ends with one terminal event and a terminal record.

use crate::catalog::{Command, Invocation};
use crate::output::{OutputConfig, Pipeline};
use crate::process::{self, SpawnSpec};
use crate::shared::{EndReason, RunningEntry, Shared, Termination};
use crate::slots::SlotPermit;
use crate::tree::Tree;
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::jobs::Decision;
use taskwire_core::wire::{EventKind, JobEvent, JobRecord, JobSpec, JobState, Target, TreeReport};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

/// Largest result file read back from a job (the `exited` event carrying it must stay well
/// under the streams' 1 MiB message limit).
const MAX_RESULT: u64 = 64 * 1024;
/// How long the output pipes may stay open after the job's tree is gone.
const PIPE_DRAIN_BOUND: Duration = Duration::from_secs(2);
/// PATH given to jobs unless the catalog allows the executor's own.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Handles one dispatch message; `permit` is the slot the job runs in.
pub async fn handle(shared: Arc<Shared>, msg: Message, permit: SlotPermit) {
    let spec: JobSpec = match serde_json::from_slice(&msg.payload) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(subject = %msg.subject, error = %e, "malformed dispatch message dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let job_id = spec.job_id;
    let (record, revision) = match shared.store.get(&job_id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            tracing::warn!(job = %job_id, "dispatched job has no record; dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "cannot read job record; handing the job back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    if record.state != JobState::Queued {
        tracing::debug!(job = %job_id, state = %record.state, "job is not queued; skipped");
        let _ = msg.ack().await;
        return;
    }
    let prepared = prepare(&shared, &record.spec);
    let (command, invocation) = match prepared {
        Ok(p) => p,
        Err(reason) => {
            reject(&shared, &job_id, reason).await;
            let _ = msg.ack().await;
            return;
        }
    };
    let starting = crate::shared::Starting::new(&shared, job_id);
    let claimed = shared
        .store
        .transition_from(&job_id, Some((record.clone(), revision)), |r| {
            if r.state != JobState::Queued {
                return Ok(Decision::Keep(None));
            }
            let mut next = r.clone();
            next.state = JobState::Running;
            next.instance = Some(shared.guid);
            next.hostname = Some(shared.hostname.clone());
            next.started_at = Some(Utc::now());
            Ok(Decision::Write(Box::new(next.clone()), Some(next)))
        })
        .await;
    let running = match claimed {
        Ok((Some(running), rev)) => (running, rev),
        Ok((None, _)) => {
            let _ = msg.ack().await;
            return;
        }
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "claim failed; handing the job back");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    // Claimed: from here on the job is ours; a lost ack only causes a redelivery that the
    // claim check above skips.
    if let Err(e) = msg.ack().await {
        tracing::debug!(job = %job_id, error = %e, "dispatch ack failed (redelivery will be skipped)");
    }
    execute(&shared, running, command, invocation, starting).await;
    drop(permit);
}

/// Checks that the command exists here, may run from the job's channel, and that the
/// parameters pass the catalog's rules.
fn prepare(shared: &Shared, spec: &JobSpec) -> Result<(Command, Invocation), String> {
    let command = shared.catalog.get(&spec.command).ok_or_else(|| {
        format!(
            "command '{}' is not in the catalog of instance {}",
            spec.command, shared.guid
        )
    })?;
    if let Target::Channel(c) = &spec.target
        && !command.channels.contains(c)
    {
        return Err(format!(
            "command '{}' does not run on channel '{c}' here",
            spec.command
        ));
    }
    let invocation = command.invocation(&spec.params)?;
    Ok((command.clone(), invocation))
}

async fn reject(shared: &Shared, job_id: &Uuid, reason: String) {
    tracing::info!(job = %job_id, %reason, "job rejected");
    let guid = shared.guid;
    let host = shared.hostname.clone();
    let reason2 = reason.clone();
    let wrote = shared
        .store
        .transition(job_id, move |r| {
            if r.state != JobState::Queued {
                return Ok(Decision::Keep(false));
            }
            let mut next = r.clone();
            next.state = JobState::Failed;
            next.instance = Some(guid);
            next.hostname = Some(host.clone());
            next.finished_at = Some(Utc::now());
            next.error = Some(reason2.clone());
            Ok(Decision::Write(Box::new(next), true))
        })
        .await;
    if matches!(wrote, Ok((true, _))) {
        publish_event(shared, *job_id, EventKind::Rejected { reason }).await;
    }
}

/// Runs a job this instance has claimed; `running` is the claimed record and its revision.
async fn execute(
    shared: &Shared,
    running: (JobRecord, u64),
    command: Command,
    inv: Invocation,
    starting: crate::shared::Starting<'_>,
) {
    let spec = running.0.spec.clone();
    let mut known = Some(running);
    let job_id = spec.job_id;
    let run_dir = shared.state_dir.join("run").join(job_id.to_string());
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        let reason = format!("cannot create the job's run dir {}: {e}", run_dir.display());
        spawn_failed(shared, &job_id, known.take(), inv.argv, reason).await;
        return;
    }
    let result_file = run_dir.join("result.json");
    let env = job_env(shared, &spec, &command, &inv, &result_file);
    let workdir = command.workdir.clone().unwrap_or_else(|| run_dir.clone());
    let cgroup = shared.cgroups.as_ref().and_then(|root| {
        root.create_job(&job_id)
            .map_err(|e| tracing::warn!(job = %job_id, error = %e, "no cgroup for this job; using its process group"))
            .ok()
    });
    let cgroup_procs = match &cgroup {
        Some(dir) => std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .ok(),
        None => None,
    };
    let spawned = process::spawn(SpawnSpec {
        argv: &inv.argv,
        env,
        workdir: &workdir,
        cgroup_procs,
    });
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            if let Some(dir) = &cgroup {
                Tree::new(nix::unistd::Pid::from_raw(0), Some(dir.clone())).cleanup();
            }
            let _ = std::fs::remove_dir_all(&run_dir);
            spawn_failed(shared, &job_id, known.take(), inv.argv, e.to_string()).await;
            return;
        }
    };
    let pid = spawned.pid;
    let waiter = match process::Waiter::new(spawned.pidfd, pid) {
        Ok(w) => w,
        Err(e) => {
            // Cannot supervise it: end it rather than let it run unwatched.
            let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
            let _ = std::fs::remove_dir_all(&run_dir);
            spawn_failed(
                shared,
                &job_id,
                known.take(),
                inv.argv,
                format!("cannot watch the process: {e}"),
            )
            .await;
            return;
        }
    };
    let started = Instant::now();
    let started_at = Utc::now();
    let tree = Tree::new(pid, cgroup.clone());
    let pipeline = Pipeline::start(
        shared.js.clone(),
        OutputConfig {
            subject: shared.ns.output(&job_id),
            job_id,
            cap: command.output_cap,
            coalesce: shared.cfg.coalesce,
            window: shared.cfg.ack_window,
        },
        // The pipes are moved into the pipeline; the Spawned keeps the pidfd.
        spawned.stdout,
        spawned.stderr,
    );
    let (term_tx, mut term_rx) = mpsc::channel::<Termination>(4);
    if let Ok(mut m) = shared.running.lock() {
        m.insert(
            job_id,
            RunningEntry {
                command: command.name.clone(),
                pid,
                started_at,
                cgroup: cgroup.clone(),
                stop_ladder: command.stop.clone(),
                kill_ladder: command.kill.clone(),
                terminate: term_tx,
            },
        );
    }
    drop(starting);
    publish_event(
        shared,
        job_id,
        EventKind::Started {
            pid: pid.as_raw() as u32,
            argv: inv.argv.clone(),
            hostname: shared.hostname.clone(),
            tree: tree.mode(),
        },
    )
    .await;
    // Wait for the main process, or end it on timeout or request.
    let timeout_at = command.timeout.map(|t| started + t);
    let mut reason = tokio::select! {
        _ = waiter.exited() => None,
        _ = sleep_until_opt(timeout_at) => Some(Termination {
            reason: EndReason::Timeout,
            ladder: command.stop.clone(),
            reply: None,
        }),
        Some(t) = term_rx.recv() => Some(t),
    };
    let mut signals_sent: Vec<String> = Vec::new();
    if let Some(t) = &reason {
        let now = Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
        let why = match &t.reason {
            EndReason::Timeout => format!(
                "[taskwire] timed out after {}",
                taskwire_core::units::format_duration(command.timeout.unwrap_or_default())
            ),
            EndReason::Drain => "[taskwire] stopped: the executor is shutting down".to_string(),
            // The wording every viewer sees, before the first signal (Remotisan's line).
            EndReason::Stop { by } => format!("PROCESS STOPPED BY {by} AT {now}"),
            EndReason::Kill { by } => format!("PROCESS KILLED BY {by} AT {now}"),
        };
        pipeline.system.line(&why).await;
        for step in &t.ladder {
            pipeline
                .system
                .line(&format!(
                    "[taskwire] sending {} to the job's process tree",
                    step.signal.as_str()
                ))
                .await;
            signals_sent.push(step.signal.as_str().to_string());
            tree.signal(step.signal);
            if tokio::time::timeout(step.wait, waiter.exited())
                .await
                .is_ok()
            {
                break;
            }
        }
        let _ = waiter.exited().await;
    }
    // The main process has exited (a zombie until reaped, so the group id is still ours).
    let leftover = tree.members(pid);
    let mut survivors = 0;
    if !leftover.is_empty() {
        tree.signal(Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = tree.members(pid);
            if left.is_empty() || Instant::now() > deadline {
                survivors = left.len() as u32;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pipeline
            .system
            .line(&format!(
                "[taskwire] {} process(es) of the job were still running after it ended and were killed{}",
                leftover.len(),
                if survivors > 0 {
                    format!("; {survivors} survived")
                } else {
                    String::new()
                }
            ))
            .await;
    }
    let exit = waiter.reap();
    if let Ok(mut m) = shared.running.lock() {
        m.remove(&job_id);
    }
    let (summary, _) = pipeline.finish(PIPE_DRAIN_BOUND).await;
    let mode = tree.mode();
    // Removing a cgroup may need a few retries while the kernel finishes tearing it down.
    tokio::task::spawn_blocking(move || tree.cleanup());
    let (result, result_error) = read_result(&result_file);
    let _ = std::fs::remove_dir_all(&run_dir);

    let (exit_code, signal, peak) = match &exit {
        Ok(e) => (e.code, e.signal, e.peak_rss_bytes),
        Err(_) => (None, None, None),
    };
    let ended_by = match reason.as_ref().map(|t| &t.reason) {
        Some(EndReason::Stop { by } | EndReason::Kill { by }) => Some(by.clone()),
        _ => None,
    };
    let (state, mut error) = match (&reason, exit_code, signal) {
        (Some(t), _, _) => match &t.reason {
            EndReason::Timeout => (
                JobState::TimedOut,
                Some(format!(
                    "timed out after {}",
                    taskwire_core::units::format_duration(command.timeout.unwrap_or_default())
                )),
            ),
            EndReason::Drain => (
                JobState::Stopped,
                Some("stopped by the executor's drain timeout".to_string()),
            ),
            EndReason::Stop { by } => (JobState::Stopped, Some(format!("stopped by {by}"))),
            EndReason::Kill { by } => (JobState::Killed, Some(format!("killed by {by}"))),
        },
        (None, Some(0), _) => (JobState::Succeeded, None),
        (None, Some(c), _) => (JobState::Failed, Some(format!("exited with code {c}"))),
        (None, None, Some(s)) => (
            JobState::Failed,
            Some(format!("killed by signal {}", s.as_str())),
        ),
        (None, None, None) => (
            JobState::Failed,
            Some(format!(
                "exit status unknown: {}",
                exit.as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            )),
        ),
    };
    if let Some(re) = &result_error {
        error = Some(match error {
            Some(e) => format!("{e}; {re}"),
            None => re.clone(),
        });
    }
    let tree_report = TreeReport {
        mode,
        leftover: leftover.len() as u32,
        survivors,
    };
    // The end event and the final record are independent writes: made at once.
    let event = publish_event(
        shared,
        job_id,
        EventKind::Exited {
            state,
            exit_code,
            signal: signal.map(|s| s.as_str().to_string()),
            duration_ms: started.elapsed().as_millis() as u64,
            peak_rss_bytes: peak,
            output_bytes: summary.process_bytes,
            last_seq: summary.last_seq,
            output_truncated: summary.truncated,
            result,
            error: error.clone(),
            ended_by: ended_by.clone(),
            tree: tree_report,
        },
    );
    let record = finish_record(shared, &job_id, known.take(), |next| {
        next.state = state;
        next.exit_code = exit_code;
        next.signal = signal.map(|s| s.as_str().to_string());
        next.error = error.clone();
        next.ended_by = ended_by.clone();
    });
    tokio::join!(event, record);
    // Tell whoever asked for the end (and anyone who asked again meanwhile) how it ended.
    let report = crate::shared::TerminationReport {
        state,
        signals: signals_sent,
        survivors,
    };
    if let Some(reply) = reason.as_mut().and_then(|t| t.reply.take()) {
        let _ = reply.send(report.clone());
    }
    term_rx.close();
    while let Ok(mut t) = term_rx.try_recv() {
        if let Some(reply) = t.reply.take() {
            let _ = reply.send(report.clone());
        }
    }
}

async fn spawn_failed(
    shared: &Shared,
    job_id: &Uuid,
    known: Option<(JobRecord, u64)>,
    argv: Vec<String>,
    reason: String,
) {
    tracing::warn!(job = %job_id, %reason, "spawn failed");
    publish_event(
        shared,
        *job_id,
        EventKind::SpawnFailed {
            argv,
            reason: reason.clone(),
        },
    )
    .await;
    finish_record(shared, job_id, known, |next| {
        next.state = JobState::Failed;
        next.error = Some(format!("spawn failed: {reason}"));
    })
    .await;
}

/// Writes the terminal record if the job is still running here, retrying through outages.
async fn finish_record(
    shared: &Shared,
    job_id: &Uuid,
    mut known: Option<(JobRecord, u64)>,
    apply: impl Fn(&mut JobRecord),
) {
    let guid = shared.guid;
    let mut backoff = Duration::from_millis(100);
    loop {
        let r = shared
            .store
            .transition_from(job_id, known.take(), |r| {
                if r.state != JobState::Running || r.instance != Some(guid) {
                    return Ok(Decision::Keep(Some(r.state)));
                }
                let mut next = r.clone();
                apply(&mut next);
                next.finished_at = Some(Utc::now());
                Ok(Decision::Write(Box::new(next), None))
            })
            .await;
        match r {
            Ok((None, _)) => return,
            Ok((Some(other), _)) => {
                tracing::warn!(job = %job_id, state = %other, "job record was already changed by someone else; left as it is");
                return;
            }
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "cannot write final job state; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes a lifecycle event durably, retrying through NATS outages.
async fn publish_event(shared: &Shared, job_id: Uuid, kind: EventKind) {
    let event = JobEvent {
        job_id,
        at: Utc::now(),
        instance: Some(shared.guid),
        kind,
    };
    let mut backoff = Duration::from_millis(100);
    while let Err(e) = shared.store.publish_event(&event).await {
        tracing::warn!(job = %job_id, error = %e, "cannot publish job event; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn job_env(
    shared: &Shared,
    spec: &JobSpec,
    command: &Command,
    inv: &Invocation,
    result_file: &std::path::Path,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |k: &str, v: OsString| {
        env.retain(|(ek, _)| ek != k);
        env.push((k.into(), v));
    };
    set("PATH", DEFAULT_PATH.into());
    for name in &command.env_allow {
        if let Some(v) = std::env::var_os(name) {
            set(name, v);
        }
    }
    for (k, v) in &command.env {
        set(k, v.into());
    }
    for (k, v) in &inv.param_env {
        set(k, v.into());
    }
    set("TASKWIRE_JOB_ID", spec.job_id.to_string().into());
    set("TASKWIRE_INSTANCE", shared.guid.to_string().into());
    set("TASKWIRE_PARAMS", inv.params_json.clone().into());
    set("TASKWIRE_RESULT_FILE", result_file.as_os_str().to_owned());
    env
}

fn read_result(path: &PathBuf) -> (Option<serde_json::Value>, Option<String>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (None, None);
    };
    if meta.len() > MAX_RESULT {
        return (
            None,
            Some(format!(
                "result file larger than {MAX_RESULT} bytes was ignored"
            )),
        );
    }
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => (None, None),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("result file is not valid JSON: {e}"))),
        },
        Err(e) => (None, Some(format!("cannot read result file: {e}"))),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
