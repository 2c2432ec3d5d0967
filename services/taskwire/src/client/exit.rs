//! The exit status of `taskwire run`: the job's own exit code, or a documented code for how
//! else it ended (see the README).

use taskwire_core::wire::JobState;
use taskwire_core::wire::api::JobEnd as Final;

/// The job ran out of time.
pub const TIMED_OUT: u8 = 124;
/// The job's instance vanished (the job is `lost`), or the client lost the job's stream.
pub const LOST: u8 = 125;
/// The gateway refused the job: denied, invalid parameters, no instance offers the command,
/// bad token, or the server could not be reached to submit it.
pub const REFUSED: u8 = 126;
/// `run` was interrupted (Ctrl-C) and detached from a job that goes on running.
pub const DETACHED: u8 = 130;
/// Ctrl-C at a prompt (the token asked by `login`): nothing was done.
pub const INTERRUPTED: u8 = 130;
/// The job was killed by a user.
pub const KILLED: u8 = 137;
/// The job was stopped by a user.
pub const STOPPED: u8 = 143;

/// The exit status for a job that ended as `end` says.
pub fn for_end(end: &Final) -> u8 {
    match end.state {
        JobState::Succeeded => 0,
        JobState::Failed => {
            if let Some(code) = end.exit_code {
                return u8::try_from(code).unwrap_or(1);
            }
            if let Some(n) = end.signal.as_deref().and_then(signal_number) {
                return 128u8.saturating_add(n);
            }
            1
        }
        JobState::TimedOut => TIMED_OUT,
        JobState::Lost | JobState::Queued | JobState::Running => LOST,
        JobState::Killed => KILLED,
        // A stop or kill of a queued job cancels it: it was stopped before it started.
        JobState::Stopped | JobState::Cancelled => STOPPED,
    }
}

fn signal_number(name: &str) -> Option<u8> {
    let sig: nix::sys::signal::Signal = name.parse().ok()?;
    u8::try_from(sig as i32).ok()
}

/// The status of several jobs followed at once: the first one that did not succeed, in
/// submission order, else 0.
pub fn for_all(codes: &[u8]) -> u8 {
    codes.iter().copied().find(|c| *c != 0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(state: JobState, exit_code: Option<i32>, signal: Option<&str>) -> Final {
        Final {
            state,
            exit_code,
            signal: signal.map(str::to_string),
            result: None,
            error: None,
            last_seq: 1,
        }
    }

    #[test]
    fn every_ending_has_its_documented_status() {
        assert_eq!(for_end(&end(JobState::Succeeded, Some(0), None)), 0);
        assert_eq!(for_end(&end(JobState::Failed, Some(3), None)), 3);
        assert_eq!(for_end(&end(JobState::Failed, None, Some("SIGSEGV"))), 139);
        assert_eq!(for_end(&end(JobState::Failed, Some(-1), None)), 1);
        assert_eq!(
            for_end(&end(JobState::TimedOut, None, Some("SIGKILL"))),
            124
        );
        assert_eq!(for_end(&end(JobState::Lost, None, None)), 125);
        assert_eq!(for_end(&end(JobState::Cancelled, None, None)), 143);
        assert_eq!(for_end(&end(JobState::Killed, None, Some("SIGINT"))), 137);
        assert_eq!(for_end(&end(JobState::Stopped, None, Some("SIGTERM"))), 143);
        assert_eq!(for_all(&[0, 3, 137]), 3);
        assert_eq!(for_all(&[0, 0]), 0);
    }
}
