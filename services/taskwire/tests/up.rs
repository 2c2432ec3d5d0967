//! `taskwire up` as a newcomer runs it: the real binary, its private nats-server, the demo
//! catalog, and Ctrl-C.

#![allow(clippy::unwrap_used)]

use serde_json::json;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{start_up, stop};
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology;
use taskwire_core::wire::{JobSpec, JobState, Target, Via};

async fn run(
    store: &JobStore,
    command: &str,
    params: serde_json::Value,
) -> (JobState, Option<i32>) {
    let spec = JobSpec::new(
        command,
        Target::Channel("default".into()),
        "newcomer",
        Via::Nats,
    )
    .with_params(serde_json::from_value(params).unwrap());
    let id = spec.job_id;
    store.submit(spec).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (r, _) = store.get(&id).await.unwrap().unwrap();
        if r.state.is_terminal() {
            return (r.state, r.exit_code);
        }
        assert!(Instant::now() < deadline, "{command} never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_demo_catalog_and_stops_cleanly_on_ctrl_c() {
    let state = tempfile::tempdir().unwrap();
    let mut up = start_up(state.path(), &[]);
    assert!(
        up.lines.iter().any(|l| l.contains("(private nats-server)")),
        "{:?}",
        up.lines
    );
    // Nothing anonymous: the private NATS refuses a client without a key.
    let anonymous = taskwire_core::nats::connect_once(&up.nats_url, "anonymous").await;
    assert!(
        matches!(&anonymous, Err(e) if e.kind() == taskwire_core::ErrorKind::Config && e.to_string().contains("refused")),
        "{:?}",
        anonymous.map(|_| ())
    );
    // Its keys are private files, and none is printed.
    for entry in std::fs::read_dir(&up.keys).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "nk") {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                path.display()
            );
            let seed = std::fs::read_to_string(&path).unwrap();
            assert!(
                !up.lines.iter().any(|l| l.contains(seed.trim())),
                "{} was printed",
                path.display()
            );
        }
    }
    let client = up.admin_client("up-test").await;
    let js = taskwire_core::nats::jetstream(client);
    let topo = topology::open(&js, &Namespace::root()).await.unwrap();
    let store = JobStore::new(js, topo.jobs.clone(), Namespace::root()).with_signer(up.signer());
    assert_eq!(
        run(&store, "hello", json!({"name": "Ada"})).await,
        (JobState::Succeeded, Some(0))
    );
    assert_eq!(
        run(&store, "progress", json!({"steps": 2})).await,
        (JobState::Succeeded, Some(0))
    );
    assert_eq!(
        run(&store, "fail", json!({})).await,
        (JobState::Failed, Some(3))
    );
    let (state_after, _) = run(&store, "hello", json!({"name": "$(reboot)"})).await;
    assert_eq!(
        state_after,
        JobState::Failed,
        "the demo catalog validates parameters"
    );

    let guid_file = state.path().join("executor/instance.guid");
    let guid = std::fs::read_to_string(&guid_file).unwrap();
    assert!(up.lines.iter().any(|l| l.contains(guid.trim())));

    let status = stop(&mut up);
    assert!(status.success(), "exit status {status}");
    assert!(
        matches!(
            taskwire_core::nats::connect_once(&up.nats_url, "after").await,
            Err(e) if e.kind() != taskwire_core::ErrorKind::Config
        ),
        "the private nats-server stops with taskwire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_uses_an_existing_nats_when_told() {
    let nats = taskwire_testkit::NatsServer::start();
    let state = tempfile::tempdir().unwrap();
    let mut up = start_up(state.path(), &[("TASKWIRE_NATS_URL", &nats.url())]);
    assert_eq!(up.nats_url, nats.url());
    assert!(!up.lines.iter().any(|l| l.contains("private")));
    assert!(stop(&mut up).success());
    // The external server is left running.
    assert!(
        taskwire_core::nats::connect_once(&nats.url(), "still-there")
            .await
            .is_ok()
    );
}

async fn get_json(http: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_api_with_the_admin_token() {
    let state = tempfile::tempdir().unwrap();
    let mut up = start_up(
        state.path(),
        &[("TASKWIRE_ADMIN_TOKEN", "tw_given_admin_token")],
    );
    assert_eq!(up.token, "tw_given_admin_token");
    let http = reqwest::Client::new();
    // The executor registers with its first heartbeat; the API lists its demo commands.
    let deadline = Instant::now() + Duration::from_secs(20);
    let commands: serde_json::Value = loop {
        let v: serde_json::Value = get_json(&http, format!("{}/commands", up.api), &up.token).await;
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        commands
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "progress")
    );
    let job: serde_json::Value = http
        .post(format!("{}/jobs", up.api))
        .bearer_auth(&up.token)
        .json(&json!({"command": "hello", "params": {"name": "Ada"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["job_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j: serde_json::Value =
            get_json(&http, format!("{}/jobs/{id}", up.api), &up.token).await;
        if j["state"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = http
        .get(format!("{}/jobs/{id}/output", up.api))
        .bearer_auth(&up.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(out, "Hello, Ada!\n");
    // A job that runs until stopped is killed through the API.
    let forever: serde_json::Value = http
        .post(format!("{}/jobs", up.api))
        .bearer_auth(&up.token)
        .json(&json!({"command": "forever"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fid = forever["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j: serde_json::Value =
            get_json(&http, format!("{}/jobs/{fid}", up.api), &up.token).await;
        if j["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply: serde_json::Value = http
        .post(format!("{}/jobs/{fid}/kill", up.api))
        .bearer_auth(&up.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["outcome"], "signalled", "{reply}");
    assert_eq!(reply["state"], "killed");
    let denied = http
        .get(format!("{}/commands", up.api))
        .bearer_auth("tw_not_the_token")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert!(stop(&mut up).success());
}

#[test]
fn token_prints_a_token_and_its_hash() {
    let out = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["token", "--user", "alice", "--roles", "ops,lead"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().nth(1).unwrap().trim();
    assert!(token.starts_with("tw_"));
    assert!(text.contains("user = \"alice\""));
    assert!(text.contains("roles = [\"ops\", \"lead\"]"));
    let hash = taskwire_gateway::auth::hash_hex(token);
    assert!(text.contains(&format!("sha256 = \"{hash}\"")), "{text}");
}
