//! After the main process exited: what is left of its tree is killed and counted (survivors
//! are reported, never assumed gone), the main process is reaped (its exit status and peak
//! memory), its output is read to the end (bounded), its cgroup and run dir are removed, and
//! its result file read back.

use crate::launch::Launched;
use crate::output::OutputSummary;
use crate::process::ExitInfo;
use crate::shared::Shared;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;
use taskwire_core::wire::{TreeMode, TreeReport};
use tokio::time::Instant;
use uuid::Uuid;

/// Largest result file read back from a job (the `exited` event carrying it must stay well
/// under the streams' 1 MiB message limit).
const MAX_RESULT: u64 = 64 * 1024;
/// How long the output pipes may stay open after the job's tree is gone.
const PIPE_DRAIN_BOUND: Duration = Duration::from_secs(2);
/// How long leftover processes get to die after SIGKILL before they count as survivors.
const LEFTOVER_BOUND: Duration = Duration::from_secs(2);

/// What is known once a job's tree is gone.
#[derive(Debug)]
pub struct Reaped {
    pub exit: std::io::Result<ExitInfo>,
    pub tree: TreeReport,
    pub output: OutputSummary,
    pub result: Option<serde_json::Value>,
    /// Why the result file was ignored, if it was.
    pub result_error: Option<String>,
    pub duration: Duration,
}

/// Cleans up after `job`, whose main process has exited (a zombie until reaped here, so its
/// process group id is still the job's).
pub async fn reap(shared: &Shared, job_id: &Uuid, job: Launched) -> Reaped {
    let Launched {
        pid,
        waiter,
        tree,
        pipeline,
        run_dir,
        result_file,
        started,
    } = job;
    let leftover = tree.members(pid);
    let mut survivors = 0;
    if !leftover.is_empty() {
        tree.signal(Signal::SIGKILL);
        let deadline = Instant::now() + LEFTOVER_BOUND;
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
        m.remove(job_id);
    }
    let (output, _) = pipeline.finish(PIPE_DRAIN_BOUND).await;
    let mode: TreeMode = tree.mode();
    // Removing a cgroup may need a few retries while the kernel finishes tearing it down.
    tokio::task::spawn_blocking(move || tree.cleanup());
    let (result, result_error) = read_result(&result_file);
    let _ = std::fs::remove_dir_all(&run_dir);
    Reaped {
        exit,
        tree: TreeReport {
            mode,
            leftover: leftover.len() as u32,
            survivors,
        },
        output,
        result,
        result_error,
        duration: started.elapsed(),
    }
}

fn read_result(path: &Path) -> (Option<serde_json::Value>, Option<String>) {
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
