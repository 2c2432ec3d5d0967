//! Starting a claimed job: its run dir and environment, its cgroup, the spawn (argv, never a
//! shell unless the catalog wrote one), the pidfd waiter, the output pipeline, and its entry
//! among the running jobs (so stop and kill can reach it). Anything that fails before the
//! process runs is a spawn failure; a process that cannot be watched is killed at once.

use crate::catalog::{Command, Invocation};
use crate::output::{OutputConfig, Pipeline};
use crate::process::{self, SpawnSpec, Waiter};
use crate::shared::{RunningEntry, Shared, Termination};
use crate::tree::Tree;
use chrono::Utc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use taskwire_core::wire::JobSpec;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// PATH given to jobs unless the catalog allows the executor's own.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A job whose process runs.
#[derive(Debug)]
pub struct Launched {
    pub pid: Pid,
    pub waiter: Waiter,
    pub tree: Tree,
    pub pipeline: Pipeline,
    /// `<state_dir>/executor/run/<job>`: the result file, the default working dir.
    pub run_dir: PathBuf,
    pub result_file: PathBuf,
    pub started: Instant,
}

/// Starts the job of `spec`, with the receiver of the stop and kill requests for it; the
/// error is why it could not start (a spawn failure).
pub fn launch(
    shared: &Shared,
    spec: &JobSpec,
    command: &Command,
    inv: &Invocation,
) -> Result<(Launched, mpsc::Receiver<Termination>), String> {
    let job_id = spec.job_id;
    let run_dir = shared.state_dir.join("run").join(job_id.to_string());
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| format!("cannot create the job's run dir {}: {e}", run_dir.display()))?;
    let result_file = run_dir.join("result.json");
    let env = job_env(shared, spec, command, inv, &result_file);
    let workdir = command.workdir.clone().unwrap_or_else(|| run_dir.clone());
    let cgroup = shared.cgroups.as_ref().and_then(|root| {
        root.create_job(&job_id)
            .map_err(|e| tracing::warn!(job = %job_id, error = %e, "no cgroup for this job; using its process group"))
            .ok()
    });
    let spawned = process::spawn(SpawnSpec {
        argv: &inv.argv,
        env,
        workdir: &workdir,
        cgroup: cgroup.as_deref(),
    });
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            if let Some(dir) = &cgroup {
                Tree::new(Pid::from_raw(0), Some(dir.clone())).cleanup();
            }
            let _ = std::fs::remove_dir_all(&run_dir);
            return Err(e.to_string());
        }
    };
    let pid = spawned.pid;
    let waiter = match Waiter::new(spawned.pidfd, pid) {
        Ok(w) => w,
        Err(e) => {
            // Cannot supervise it: end it rather than let it run unwatched.
            let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
            let _ = std::fs::remove_dir_all(&run_dir);
            return Err(format!("cannot watch the process: {e}"));
        }
    };
    let started = Instant::now();
    let tree = Tree::new(pid, cgroup.clone());
    let pipeline = Pipeline::start(
        shared.js.clone(),
        OutputConfig {
            subject: shared.ns.output(&shared.guid, &job_id),
            job_id,
            instance: shared.guid,
            cap: command.output_cap,
            coalesce: shared.cfg.coalesce,
            compress: shared.cfg.output_compression == crate::config::OutputCompression::Lz4,
            window: shared.cfg.ack_window,
        },
        // The pipes are moved into the pipeline; the waiter keeps the pidfd.
        spawned.stdout,
        spawned.stderr,
    );
    let (terminate, terminations) = mpsc::channel::<Termination>(4);
    if let Ok(mut m) = shared.running.lock() {
        m.insert(
            job_id,
            RunningEntry {
                command: command.name.clone(),
                pid,
                started_at: Utc::now(),
                cgroup,
                stop_ladder: command.stop.clone(),
                kill_ladder: command.kill.clone(),
                terminate,
            },
        );
    }
    let launched = Launched {
        pid,
        waiter,
        tree,
        pipeline,
        run_dir,
        result_file,
        started,
    };
    Ok((launched, terminations))
}

fn job_env(
    shared: &Shared,
    spec: &JobSpec,
    command: &Command,
    inv: &Invocation,
    result_file: &Path,
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
