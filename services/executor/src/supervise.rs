//! Watching a running job until its main process exits: by itself, or after taskwire ends it
//! because its timeout passed or someone (or the executor's drain) asked. Ending it writes
//! who and why into its log first (`PROCESS KILLED BY {user} AT {time}`, Remotisan's line),
//! then walks the signal ladder over the whole tree, a step at a time, until the main process
//! is gone.

use crate::catalog::Command;
use crate::launch::Launched;
use crate::shared::{EndReason, Termination};
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How the supervision ended.
#[derive(Debug)]
pub struct Supervised {
    /// Why taskwire ended the job, and who to tell how it ended (`None`: it ended by itself).
    pub termination: Option<Termination>,
    /// Signals sent, in order.
    pub signals: Vec<String>,
}

/// Waits for the main process of `job` to exit, ending it on timeout or on a request from
/// `terminations`.
pub async fn supervise(
    job: &Launched,
    command: &Command,
    terminations: &mut mpsc::Receiver<Termination>,
) -> Supervised {
    let timeout_at = command.timeout.map(|t| job.started + t);
    let termination = tokio::select! {
        _ = job.waiter.exited() => None,
        _ = sleep_until_opt(timeout_at) => Some(Termination {
            reason: EndReason::Timeout,
            ladder: command.stop.clone(),
            reply: None,
        }),
        Some(t) = terminations.recv() => Some(t),
    };
    let mut signals = Vec::new();
    if let Some(t) = &termination {
        let now = Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
        let why = match &t.reason {
            EndReason::Timeout => format!(
                "[taskwire] timed out after {}",
                taskwire_core::units::format_duration(command.timeout.unwrap_or_default())
            ),
            EndReason::Drain => "[taskwire] stopped: the executor is shutting down".to_string(),
            // The wording every viewer sees, before the first signal.
            EndReason::Stop { by } => format!("PROCESS STOPPED BY {by} AT {now}"),
            EndReason::Kill { by } => format!("PROCESS KILLED BY {by} AT {now}"),
        };
        job.pipeline.system.line(&why).await;
        for step in &t.ladder {
            job.pipeline
                .system
                .line(&format!(
                    "[taskwire] sending {} to the job's process tree",
                    step.signal.as_str()
                ))
                .await;
            signals.push(step.signal.as_str().to_string());
            job.tree.signal(step.signal);
            if tokio::time::timeout(step.wait, job.waiter.exited())
                .await
                .is_ok()
            {
                break;
            }
        }
        let _ = job.waiter.exited().await;
    }
    Supervised {
        termination,
        signals,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
