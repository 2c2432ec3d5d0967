//! Retrying with backoff: the one pause policy of every loop that waits out an outage (a
//! publish that must land, a watch to start again, a database that is away). The pause
//! doubles from `initial` up to `max`, and starts again from `initial` after a success.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The pauses between attempts of one retried step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// Failed attempts since the last success.
    failures: u32,
}

impl Backoff {
    /// Pauses of `initial`, then twice as long each time, at most `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
            failures: 0,
        }
    }

    /// The pause before the next attempt (and the one after it doubles).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// The pause the next attempt would wait, without counting it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// How many attempts failed since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure pauses `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.failures = 0;
    }

    /// Sleeps the next pause.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }

    /// Sleeps the next pause unless `stop` comes first; `false` when stopped.
    pub async fn wait_or_stop(&mut self, stop: &CancellationToken) -> bool {
        let pause = self.next_pause();
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = stop.cancelled() => false,
        }
    }
}

/// Repeats `attempt` until it succeeds, pausing by `backoff` and logging each failure with
/// `what` (a step that must happen: an event that must be stored, a record that must be
/// written). It never gives up; the caller bounds it by dropping the future.
pub async fn until_ok<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    mut backoff: Backoff,
    mut attempt: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, failures = backoff.failures() + 1, "{what} failed; retrying");
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_limit_and_start_again_after_a_success() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let pauses: Vec<u128> = (0..4).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 350, 350]);
        assert_eq!(b.failures(), 4);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_pause(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn until_ok_returns_the_first_success() {
        let mut calls = 0;
        let v: u32 = until_ok(
            "a step",
            Backoff::new(Duration::from_secs(1), Duration::from_secs(4)),
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err("not yet") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_wait() {
        let stop = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        stop.cancel();
        assert!(!b.wait_or_stop(&stop).await);
    }
}
