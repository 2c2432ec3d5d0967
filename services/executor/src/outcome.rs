//! How a job ended, decided from what happened to it: the main process's exit, why taskwire
//! ended it early (its timeout, the executor's drain, a stop or a kill), and whether its
//! result file could be read. A pure function, so every combination is tested here.

use crate::shared::EndReason;
use nix::sys::signal::Signal;
use std::time::Duration;
use taskwire_core::wire::JobState;

/// The main process's exit code or signal, or why its status is unknown.
pub type ExitStatus = Result<(Option<i32>, Option<Signal>), String>;

/// What happened to a job.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    /// Why taskwire ended it, when it did (`None`: it ended by itself).
    pub ended_early: Option<&'a EndReason>,
    /// The main process's exit code or signal, or why the status is unknown.
    pub exit: ExitStatus,
    /// The command's timeout (for the words of a timed-out job).
    pub timeout: Option<Duration>,
    /// Why the result file was ignored, if it was.
    pub result_error: Option<String>,
}

/// How the job's record and `exited` event say it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: JobState,
    /// In words for people; the result file's problem is added to it.
    pub error: Option<String>,
    /// Who stopped or killed it.
    pub ended_by: Option<String>,
}

/// The outcome of `e`. A job taskwire ended early gets the state of why (whatever its exit
/// status), else its exit code decides: 0 succeeded, anything else failed.
pub fn decide(e: &Ending<'_>) -> Outcome {
    let ended_by = match e.ended_early {
        Some(EndReason::Stop { by } | EndReason::Kill { by }) => Some(by.clone()),
        _ => None,
    };
    let (state, error) = match (e.ended_early, &e.exit) {
        (Some(EndReason::Timeout), _) => (
            JobState::TimedOut,
            Some(format!(
                "timed out after {}",
                taskwire_core::units::format_duration(e.timeout.unwrap_or_default())
            )),
        ),
        (Some(EndReason::Drain), _) => (
            JobState::Stopped,
            Some("stopped by the executor's drain timeout".to_string()),
        ),
        (Some(EndReason::Stop { by }), _) => (JobState::Stopped, Some(format!("stopped by {by}"))),
        (Some(EndReason::Kill { by }), _) => (JobState::Killed, Some(format!("killed by {by}"))),
        (None, Ok((Some(0), _))) => (JobState::Succeeded, None),
        (None, Ok((Some(c), _))) => (JobState::Failed, Some(format!("exited with code {c}"))),
        (None, Ok((None, Some(s)))) => (
            JobState::Failed,
            Some(format!("killed by signal {}", s.as_str())),
        ),
        (None, Ok((None, None))) => (
            JobState::Failed,
            Some("exit status unknown: the process reported neither a code nor a signal".into()),
        ),
        (None, Err(why)) => (
            JobState::Failed,
            Some(format!("exit status unknown: {why}")),
        ),
    };
    let error = match (error, &e.result_error) {
        (Some(err), Some(re)) => Some(format!("{err}; {re}")),
        (None, Some(re)) => Some(re.clone()),
        (err, None) => err,
    };
    Outcome {
        state,
        error,
        ended_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending<'a>(
        early: Option<&'a EndReason>,
        exit: ExitStatus,
        result_error: Option<&str>,
    ) -> Ending<'a> {
        Ending {
            ended_early: early,
            exit,
            timeout: Some(Duration::from_secs(90)),
            result_error: result_error.map(str::to_string),
        }
    }

    fn out(state: JobState, error: Option<&str>, by: Option<&str>) -> Outcome {
        Outcome {
            state,
            error: error.map(str::to_string),
            ended_by: by.map(str::to_string),
        }
    }

    #[test]
    fn a_job_that_ended_by_itself_is_judged_by_its_exit() {
        let cases = [
            (Ok((Some(0), None)), out(JobState::Succeeded, None, None)),
            (
                Ok((Some(3), None)),
                out(JobState::Failed, Some("exited with code 3"), None),
            ),
            (
                Ok((None, Some(Signal::SIGSEGV))),
                out(JobState::Failed, Some("killed by signal SIGSEGV"), None),
            ),
            (
                Ok((None, None)),
                out(
                    JobState::Failed,
                    Some("exit status unknown: the process reported neither a code nor a signal"),
                    None,
                ),
            ),
            (
                Err("waitid: ECHILD".to_string()),
                out(
                    JobState::Failed,
                    Some("exit status unknown: waitid: ECHILD"),
                    None,
                ),
            ),
        ];
        for (exit, want) in cases {
            assert_eq!(decide(&ending(None, exit.clone(), None)), want, "{exit:?}");
        }
    }

    #[test]
    fn a_job_taskwire_ended_gets_the_state_of_why_whatever_its_exit() {
        let stop = EndReason::Stop { by: "alice".into() };
        let kill = EndReason::Kill { by: "root".into() };
        let exits: [ExitStatus; 4] = [
            Ok((Some(0), None)),
            Ok((Some(143), None)),
            Ok((None, Some(Signal::SIGKILL))),
            Err("unknown".into()),
        ];
        for exit in exits {
            assert_eq!(
                decide(&ending(Some(&EndReason::Timeout), exit.clone(), None)),
                out(JobState::TimedOut, Some("timed out after 90s"), None),
                "{exit:?}"
            );
            assert_eq!(
                decide(&ending(Some(&EndReason::Drain), exit.clone(), None)),
                out(
                    JobState::Stopped,
                    Some("stopped by the executor's drain timeout"),
                    None
                ),
            );
            assert_eq!(
                decide(&ending(Some(&stop), exit.clone(), None)),
                out(JobState::Stopped, Some("stopped by alice"), Some("alice")),
            );
            assert_eq!(
                decide(&ending(Some(&kill), exit.clone(), None)),
                out(JobState::Killed, Some("killed by root"), Some("root")),
            );
        }
    }

    #[test]
    fn a_result_file_problem_is_added_to_the_error_and_never_changes_the_state() {
        let bad = "result file is not valid JSON: expected value at line 1 column 1";
        assert_eq!(
            decide(&ending(None, Ok((Some(0), None)), Some(bad))),
            out(JobState::Succeeded, Some(bad), None)
        );
        assert_eq!(
            decide(&ending(None, Ok((Some(2), None)), Some(bad))),
            out(
                JobState::Failed,
                Some(&format!("exited with code 2; {bad}")),
                None
            )
        );
        let kill = EndReason::Kill { by: "bob".into() };
        assert_eq!(
            decide(&ending(
                Some(&kill),
                Ok((None, Some(Signal::SIGKILL))),
                Some(bad)
            )),
            out(
                JobState::Killed,
                Some(&format!("killed by bob; {bad}")),
                Some("bob")
            )
        );
        let no_timeout = Ending {
            timeout: None,
            ..ending(Some(&EndReason::Timeout), Ok((Some(0), None)), None)
        };
        assert_eq!(
            decide(&no_timeout).error.as_deref(),
            Some("timed out after 0s")
        );
    }
}
