//! The `taskwire-executor` binary as an operator runs it: configured by environment, drained by
//! SIGUSR2, with a pidfile.

use crate::helpers::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use taskwire_core::wire::{InstanceStatus, JobState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_drains_the_binary_and_it_exits_zero() {
    let s = stack().await;
    let dir = s.dir.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let catalog_path = dir.join("catalog.toml");
    std::fs::write(&catalog_path, catalog(s.dir.path())).unwrap();
    let pidfile = dir.join("executor.pid");
    // The binary keeps its GUID in <state dir>/executor (ExecutorOptions::from_settings).
    let creds = s
        .provision_executor(&dir.join("executor"), &["default"])
        .await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskwire-executor"))
        .env("TASKWIRE_NATS_URL", s.nats.url())
        .env("TASKWIRE_NATS_CREDENTIALS", &creds)
        .env("TASKWIRE_STATE_DIR", &dir)
        .env("TASKWIRE_EXECUTOR__CATALOG", &catalog_path)
        .env("TASKWIRE_EXECUTOR__PIDFILE", &pidfile)
        .env("TASKWIRE_EXECUTOR__HEARTBEAT_INTERVAL", "200ms")
        .env("TASKWIRE_EXECUTOR__DISPATCH_TRUSTED_KEYS", trusted(&s))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    eventually("pidfile written", Duration::from_secs(20), async || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.trim() == pid.to_string())
    })
    .await;
    let guid_text = std::fs::read_to_string(dir.join("executor/instance.guid")).unwrap();
    let guid: uuid::Uuid = guid_text.trim().parse().unwrap();
    let flag = s.dir.path().join("usr2-go");
    let job = s
        .enqueue("wait_file", json!({"path": flag.display().to_string()}))
        .await;
    s.wait_state(&job, JobState::Running).await;

    kill(Pid::from_raw(pid), Signal::SIGUSR2).unwrap();
    eventually(
        "instance shows draining",
        Duration::from_secs(10),
        async || {
            s.instance(&guid)
                .await
                .is_some_and(|i| i.status == InstanceStatus::Draining)
        },
    )
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "waits for the running job"
    );
    std::fs::write(&flag, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "executor did not exit after its job finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(s.record(&job).await.state, JobState::Succeeded);
    assert!(!pidfile.exists(), "pidfile removed on exit");
    assert!(s.instance(&guid).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_without_its_key_is_refused_and_says_what_to_set() {
    let s = stack().await;
    let dir = s.dir.path().join("keyless");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("catalog.toml"), catalog(s.dir.path())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_taskwire-executor"))
        .env("TASKWIRE_NATS_URL", s.nats.url())
        .env("TASKWIRE_STATE_DIR", &dir)
        .env("TASKWIRE_EXECUTOR__CATALOG", dir.join("catalog.toml"))
        .env("TASKWIRE_EXECUTOR__DISPATCH_TRUSTED_KEYS", trusted(&s))
        .env_remove("TASKWIRE_NATS_CREDENTIALS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused") && err.contains("nats_credentials"),
        "{err}"
    );
}

#[test]
fn a_bad_config_key_is_refused_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_taskwire-executor"))
        .env("TASKWIRE_EXECUTOR__SLOTZ", "3")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slotz") && err.contains("[executor]"), "{err}");
}

/// The executor's `dispatch_trusted_keys` in a `TASKWIRE_` variable: the stack's key.
fn trusted(s: &Stack) -> String {
    format!("[\"{}\"]", s.signer.public_key())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

async fn spawn_executor(s: &Stack, dir: &std::path::Path) -> std::process::Child {
    let creds = s
        .provision_executor(&dir.join("executor"), &["default"])
        .await;
    Command::new(env!("CARGO_BIN_EXE_taskwire-executor"))
        .env("TASKWIRE_NATS_URL", s.nats.url())
        .env("TASKWIRE_NATS_CREDENTIALS", &creds)
        .env("TASKWIRE_STATE_DIR", dir)
        .env("TASKWIRE_EXECUTOR__CATALOG", dir.join("catalog.toml"))
        .env("TASKWIRE_EXECUTOR__HEARTBEAT_INTERVAL", "200ms")
        .env("TASKWIRE_EXECUTOR__DISPATCH_TRUSTED_KEYS", trusted(s))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn job_pid(s: &Stack, job: &uuid::Uuid) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = s.events(job).await.iter().find_map(|e| match &e.kind {
            taskwire_core::wire::EventKind::Started { pid, .. } => Some(*pid as i32),
            _ => None,
        }) {
            return pid;
        }
        assert!(Instant::now() < deadline, "job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_leaves_no_orphan_and_its_jobs_become_lost() {
    let s = stack().await;
    let broker = taskwire_kill_broker::KillBroker::start(taskwire_kill_broker::KillBrokerOptions {
        nats_url: s.nats.url(),
        nats_credentials: Some(
            s.auth
                .keys
                .path(&taskwire_core::auth::roles::Role::KillBroker),
        ),
        namespace: taskwire_core::Namespace::root(),
        topology: taskwire_core::topology::TopologyConfig::default(),
        config: taskwire_kill_broker::KillBrokerConfig {
            lost_after: Duration::from_secs(1),
            reap_interval: Duration::from_millis(200),
            ..Default::default()
        },
    })
    .await
    .unwrap();
    let dir = s.dir.path().join("crashy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("catalog.toml"), catalog(s.dir.path())).unwrap();

    // 1. Killed and restarted at once: the kill broker finds the old job the restarted
    //    instance does not list, and marks it lost.
    let mut exec = spawn_executor(&s, &dir).await;
    let job = s.enqueue("sleep", json!({"secs": 300})).await;
    s.wait_state(&job, JobState::Running).await;
    let pid = job_pid(&s, &job).await;
    exec.kill().unwrap();
    exec.wait().unwrap();
    eventually(
        "the job's process dies with its executor",
        Duration::from_secs(10),
        async || !alive(pid),
    )
    .await;
    let mut exec = spawn_executor(&s, &dir).await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Lost);
    assert!(r.error.unwrap().contains("restarted"));

    // 2. Killed and not restarted: the reaper marks its job lost once it stops beating.
    let job = s.enqueue("sleep", json!({"secs": 300})).await;
    s.wait_state(&job, JobState::Running).await;
    let pid = job_pid(&s, &job).await;
    exec.kill().unwrap();
    exec.wait().unwrap();
    eventually("no orphan", Duration::from_secs(10), async || !alive(pid)).await;
    let r = s.wait_terminal(&job, Duration::from_secs(30)).await;
    assert_eq!(r.state, JobState::Lost);
    assert!(r.error.unwrap().contains("stopped heartbeating"));
    let lost_event = s
        .events(&job)
        .await
        .into_iter()
        .any(|e| matches!(e.kind, taskwire_core::wire::EventKind::Lost { .. }));
    assert!(lost_event, "viewers and the audit get a lost event");
    broker.stop().await;
}
