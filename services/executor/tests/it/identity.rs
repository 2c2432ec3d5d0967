use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use taskwire_core::wire::{InstanceStatus, JobState, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guid_persists_across_restarts_and_is_advertised() {
    let s = stack().await;
    let cat = catalog(s.dir.path());
    let mut a = s
        .executor("one", &cat, |c| {
            c.labels.insert("role".into(), "web".into());
        })
        .await;
    let guid = a.guid;
    let info = s.instance(&guid).await.expect("registered at start");
    assert_eq!(info.guid, guid);
    assert_eq!(info.status, InstanceStatus::Serving);
    assert_eq!(info.slots.total, 5);
    assert_eq!(info.channels, ["default"]);
    assert_eq!(info.labels["role"], "web");
    let echo = info
        .catalog
        .iter()
        .find(|c| c.name == "echo")
        .expect("catalog advertised");
    assert_eq!(echo.params[0].name, "text");
    a.drain().await;
    assert!(
        s.instance(&guid).await.is_none(),
        "a stopped instance leaves the registry"
    );

    let cat_path = a.state_dir.join("catalog.toml");
    let mut b = s.executor_in(&a.state_dir, &cat_path, |_| {}).await;
    assert_eq!(b.guid, guid, "same state dir, same GUID");
    let job = s
        .enqueue_to("echo", json!({"text": "again"}), Target::Instance(guid))
        .await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(r.instance, Some(guid));
    b.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_reports_running_jobs() {
    let s = stack().await;
    let mut e = s.executor("hb", &catalog(s.dir.path()), |_| {}).await;
    let flag = s.dir.path().join("hb-go");
    let job = s
        .enqueue("wait_file", json!({"path": flag.display().to_string()}))
        .await;
    s.wait_state(&job, JobState::Running).await;
    eventually(
        "heartbeat lists the job",
        Duration::from_secs(10),
        async || {
            s.instance(&e.guid).await.is_some_and(|i| {
                i.jobs.iter().any(|j| j.job_id == job && j.pid > 0) && i.slots.used == 1
            })
        },
    )
    .await;
    std::fs::write(&flag, "").unwrap();
    s.wait_terminal(&job, Duration::from_secs(20)).await;
    e.drain().await;
}
