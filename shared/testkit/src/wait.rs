//! Waiting for a condition in tests, with a bound.

use std::time::Duration;

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `within`.
pub async fn eventually(what: &str, within: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
