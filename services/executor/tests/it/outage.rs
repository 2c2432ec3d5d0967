use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use taskwire_core::wire::{JobState, OutputStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_mid_job_loses_no_chunk() {
    let mut s = stack().await;
    let cat = r#"
[commands.count]
shell = true
script = 'i=1; while [ $i -le 300 ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done'
"#;
    let mut e = s.executor("outage", cat, |_| {}).await;
    let job = s.enqueue("count", json!({})).await;
    s.wait_state(&job, JobState::Running).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Down long enough for the job to finish while NATS is away.
    s.nats.kill();
    tokio::time::sleep(Duration::from_secs(7)).await;
    s.nats.restart();
    let r = s.wait_terminal(&job, Duration::from_secs(60)).await;
    assert_eq!(r.state, JobState::Succeeded, "{:?}", r.error);
    let out = String::from_utf8(s.stream_bytes(&job, OutputStream::Stdout).await).unwrap();
    let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    assert_eq!(out, expected);
    e.drain().await;
}
