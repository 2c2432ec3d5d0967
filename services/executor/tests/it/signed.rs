//! Signed dispatch: an identity that can publish on a dispatch subject (and write a job
//! record) still cannot make an executor run anything a trusted gateway did not sign.

use crate::helpers::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use taskwire_core::names::HDR_MSG_ID;
use taskwire_core::sign::DispatchSigner;
use taskwire_core::wire::{EventKind, JobEvent, JobRecord, JobSpec, JobState, Target};
use uuid::Uuid;

/// A command that leaves a trace: the file it touches.
fn touch_catalog() -> String {
    r#"
[commands.touch]
program = "/usr/bin/touch"
args = ["{path}"]
[[commands.touch.params]]
name = "path"
type = "string"
required = true
"#
    .to_string()
}

fn touch_spec(s: &Stack, path: &Path) -> JobSpec {
    s.spec(
        "touch",
        json!({"path": path.display().to_string()}),
        Target::Channel("default".into()),
    )
}

/// Does what a forger with publish rights on the dispatch subject and write rights on
/// `tw_jobs` can: writes `record` and its `queued` event, then publishes `payload` with
/// `headers` on the dispatch subject of the record's target.
async fn forge(s: &Stack, record: &JobSpec, payload: Vec<u8>, headers: async_nats::HeaderMap) {
    s.jobs
        .create(&JobRecord::queued(record.clone()))
        .await
        .unwrap();
    s.jobs
        .publish_event(&JobEvent {
            job_id: record.job_id,
            at: record.queued_at,
            instance: None,
            kind: EventKind::Queued {
                spec: record.clone(),
            },
        })
        .await
        .unwrap();
    let mut headers = headers;
    headers.insert(HDR_MSG_ID, record.job_id.to_string().as_str());
    s.js.publish_with_headers(s.ns.dispatch_channel("default"), headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn signed_by(signer: &DispatchSigner, payload: &[u8]) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    signer.sign_into(&mut h, payload).unwrap();
    h
}

/// Waits for the job to end; asserts it was rejected (failed, a `rejected` event whose
/// reason contains `why`, no `started` event) and that `trace` was never touched.
async fn assert_rejected(s: &Stack, job: &Uuid, why: &str, trace: &[&PathBuf]) {
    let record = s.wait_terminal(job, Duration::from_secs(20)).await;
    assert_eq!(record.state, JobState::Failed, "{record:?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(error.contains(why), "the record says why: {error}");
    // The terminal record is written before its event is published: wait for the event.
    eventually("the rejected event", Duration::from_secs(10), async || {
        s.events(job)
            .await
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Rejected { .. }))
    })
    .await;
    let events = s.events(job).await;
    let reason = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Rejected { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains(why), "the event says why: {reason}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Started { .. })),
        "{events:?}"
    );
    for path in trace {
        assert!(!path.exists(), "{} was touched", path.display());
    }
}

/// Every dispatch message was settled (none left unacknowledged to be delivered again).
async fn nothing_left_to_deliver(s: &Stack) {
    let name = s.ns.consumer_channel("default");
    eventually(
        "the dispatch consumer holds nothing",
        Duration::from_secs(10),
        async || {
            let mut c = s
                .topo
                .jobs_stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                .await
                .unwrap();
            let info = c.info().await.unwrap();
            info.num_ack_pending == 0 && info.num_pending == 0
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_dispatch_messages_never_start_a_process() {
    let s = stack().await;
    let mut e = s.executor("signed", &touch_catalog(), |_| {}).await;

    // Valid JSON, no signature.
    let unsigned_trace = s.dir.path().join("unsigned");
    let spec = touch_spec(&s, &unsigned_trace);
    let payload = serde_json::to_vec(&spec).unwrap();
    forge(&s, &spec, payload, async_nats::HeaderMap::new()).await;
    assert_rejected(&s, &spec.job_id, "unsigned", &[&unsigned_trace]).await;

    // Signed, by a key the executor does not trust.
    let untrusted_trace = s.dir.path().join("untrusted");
    let spec = touch_spec(&s, &untrusted_trace);
    let payload = serde_json::to_vec(&spec).unwrap();
    let stranger = DispatchSigner::generate();
    let headers = signed_by(&stranger, &payload);
    forge(&s, &spec, payload, headers).await;
    assert_rejected(
        &s,
        &spec.job_id,
        &format!("untrusted key {}", stranger.public_key()),
        &[&untrusted_trace],
    )
    .await;

    // Signed by the gateway's key, then one byte of the payload changed (the path).
    let signed_trace = s.dir.path().join("tampered-a");
    let changed_trace = s.dir.path().join("tampered-b");
    let spec = touch_spec(&s, &signed_trace);
    let payload = serde_json::to_vec(&spec).unwrap();
    let headers = signed_by(&s.signer, &payload);
    let at = payload
        .windows(b"tampered-a".len())
        .position(|w| w == b"tampered-a")
        .unwrap()
        + "tampered-".len();
    let mut changed = payload.clone();
    changed[at] = b'b';
    forge(&s, &spec, changed, headers).await;
    assert_rejected(
        &s,
        &spec.job_id,
        "bad signature",
        &[&signed_trace, &changed_trace],
    )
    .await;
    nothing_left_to_deliver(&s).await;

    // What the gateway signed runs.
    let ok_trace = s.dir.path().join("signed");
    let job = s
        .enqueue("touch", json!({"path": ok_trace.display().to_string()}))
        .await;
    let record = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    assert!(ok_trace.exists());
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_forged_with_another_spec_does_not_change_what_runs() {
    let s = stack().await;
    let mut e = s.executor("forged-record", &touch_catalog(), |_| {}).await;
    // The gateway signed a job touching `signed`; the record claims it touches `forged`.
    let signed_trace = s.dir.path().join("signed");
    let forged_trace = s.dir.path().join("forged");
    let spec = touch_spec(&s, &signed_trace);
    let forged = JobSpec {
        params: touch_spec(&s, &forged_trace).params,
        ..spec.clone()
    };
    let payload = serde_json::to_vec(&spec).unwrap();
    let headers = signed_by(&s.signer, &payload);
    forge(&s, &forged, payload, headers).await;
    assert_rejected(
        &s,
        &spec.job_id,
        "does not hold the signed job spec",
        &[&signed_trace, &forged_trace],
    )
    .await;
    nothing_left_to_deliver(&s).await;
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_message_on_another_target_subject_is_refused() {
    let s = stack().await;
    let mut e = s.executor("replayed", &touch_catalog(), |_| {}).await;
    // Signed for instance X, published on the channel every executor pulls from.
    let trace = s.dir.path().join("elsewhere");
    let spec = s.spec(
        "touch",
        json!({"path": trace.display().to_string()}),
        Target::Instance(Uuid::now_v7()),
    );
    let payload = serde_json::to_vec(&spec).unwrap();
    let headers = signed_by(&s.signer, &payload);
    forge(&s, &spec, payload, headers).await;
    assert_rejected(&s, &spec.job_id, "signed target is", &[&trace]).await;
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_unsigned_dispatch_runs_unsigned_jobs_but_never_a_bad_signature() {
    let s = stack().await;
    let mut e = s
        .executor("dev", &touch_catalog(), |c| {
            c.allow_unsigned_dispatch = true;
        })
        .await;
    let trace = s.dir.path().join("unsigned-dev");
    let spec = touch_spec(&s, &trace);
    let payload = serde_json::to_vec(&spec).unwrap();
    forge(&s, &spec, payload, async_nats::HeaderMap::new()).await;
    let record = s.wait_terminal(&spec.job_id, Duration::from_secs(20)).await;
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    assert!(trace.exists());

    let trace = s.dir.path().join("tampered-x");
    let spec = touch_spec(&s, &trace);
    let payload = serde_json::to_vec(&spec).unwrap();
    let headers = signed_by(&s.signer, &payload);
    let mut changed = payload.clone();
    let at = payload
        .windows(b"tampered-x".len())
        .position(|w| w == b"tampered-x")
        .unwrap()
        + "tampered-".len();
    changed[at] = b'y';
    forge(&s, &spec, changed, headers).await;
    assert_rejected(
        &s,
        &spec.job_id,
        "bad signature",
        &[&trace, &s.dir.path().join("tampered-y")],
    )
    .await;
    e.drain().await;
}

#[test]
fn an_executor_trusting_no_gateway_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, touch_catalog()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskwire-executor"))
        .env("TASKWIRE_STATE_DIR", dir.path())
        .env("TASKWIRE_EXECUTOR__CATALOG", &catalog)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dispatch_trusted_keys") && err.contains("allow_unsigned_dispatch"),
        "{err}"
    );
    // A seed where a public key belongs is refused, saying so.
    let seed_file = dir.path().join("gateway.seed");
    DispatchSigner::generate().write_seed(&seed_file).unwrap();
    let seed = std::fs::read_to_string(&seed_file).unwrap();
    let seed = seed.trim();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskwire-executor"))
        .env("TASKWIRE_STATE_DIR", dir.path())
        .env("TASKWIRE_EXECUTOR__CATALOG", &catalog)
        .env(
            "TASKWIRE_EXECUTOR__DISPATCH_TRUSTED_KEYS",
            format!("[\"{seed}\"]"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("never its seed"),
        "{err}"
    );
}
