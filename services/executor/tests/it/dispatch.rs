use crate::helpers::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use taskwire_core::wire::{EventKind, JobState, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_job_waits_for_a_free_slot() {
    let s = stack().await;
    let mut e = s.executor("slots", &catalog(s.dir.path()), |_| {}).await;
    let flag = s.dir.path().join("go");
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(
            s.enqueue("wait_file", json!({"path": flag.display().to_string()}))
                .await,
        );
    }
    eventually("five jobs running", Duration::from_secs(20), async || {
        let mut n = 0;
        for j in &jobs {
            n += (s.record(j).await.state == JobState::Running) as usize;
        }
        n == 5
    })
    .await;
    // Give the sixth every chance to start wrongly.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut states = BTreeMap::new();
    for j in &jobs {
        *states.entry(s.record(j).await.state).or_insert(0) += 1;
    }
    assert_eq!(states.get(&JobState::Running), Some(&5));
    assert_eq!(states.get(&JobState::Queued), Some(&1));
    eventually(
        "registry shows 5 of 5 slots used",
        Duration::from_secs(5),
        async || {
            s.instance(&e.guid)
                .await
                .is_some_and(|i| i.slots.used == 5 && i.slots.total == 5)
        },
    )
    .await;
    std::fs::write(&flag, "").unwrap();
    for j in &jobs {
        assert_eq!(
            s.wait_terminal(j, Duration::from_secs(20)).await.state,
            JobState::Succeeded
        );
    }
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executors_share_200_jobs_and_none_runs_twice() {
    let s = stack().await;
    let cat = catalog(s.dir.path());
    let mut a = s.executor("a", &cat, |_| {}).await;
    let mut b = s.executor("b", &cat, |_| {}).await;
    let mut jobs = Vec::new();
    for _ in 0..200 {
        jobs.push(s.enqueue("record", json!({})).await);
    }
    let mut per_instance: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    for j in &jobs {
        let r = s.wait_terminal(j, Duration::from_secs(60)).await;
        assert_eq!(r.state, JobState::Succeeded, "{j}: {:?}", r.error);
        *per_instance
            .entry(r.instance.expect("instance"))
            .or_default() += 1;
    }
    let log = std::fs::read_to_string(s.dir.path().join("ran.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 200, "every job ran exactly once");
    let unique: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(unique.len(), 200, "no job id ran twice");
    let expected: BTreeSet<String> = jobs.iter().map(|j| j.to_string()).collect();
    assert_eq!(unique, expected.iter().map(String::as_str).collect());
    assert_eq!(
        per_instance.len(),
        2,
        "both executors took jobs: {per_instance:?}"
    );
    for j in jobs.iter().take(20) {
        let started = s
            .events(j)
            .await
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Started { .. }))
            .count();
        assert_eq!(started, 1);
    }
    a.drain().await;
    b.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_targeted_job_runs_only_there() {
    let s = stack().await;
    let cat = catalog(s.dir.path());
    let mut a = s.executor("a", &cat, |_| {}).await;
    let mut b = s.executor("b", &cat, |_| {}).await;
    let mut jobs = Vec::new();
    for i in 0..10 {
        let target = Target::Instance(b.guid);
        jobs.push(
            s.enqueue_to("echo", json!({"text": format!("n{i}")}), target)
                .await,
        );
    }
    for j in &jobs {
        let r = s.wait_terminal(j, Duration::from_secs(30)).await;
        assert_eq!(r.state, JobState::Succeeded);
        assert_eq!(r.instance, Some(b.guid));
    }
    a.drain().await;
    b.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_limit_holds_below_the_instance_limit() {
    let s = stack().await;
    let cat = catalog(s.dir.path()).replace(
        "[commands.wait_file]",
        "[commands.wait_file]\nchannels = [\"default\", \"slow\"]",
    );
    let mut e = s
        .executor("chan", &cat, |c| {
            c.channels = vec!["default".into(), "slow".into()];
            c.channel_slots.insert("slow".into(), 1);
        })
        .await;
    let flag = s.dir.path().join("slow-go");
    let p = json!({"path": flag.display().to_string()});
    let first = s
        .enqueue_to("wait_file", p.clone(), Target::Channel("slow".into()))
        .await;
    let second = s
        .enqueue_to("wait_file", p.clone(), Target::Channel("slow".into()))
        .await;
    let other = s
        .enqueue_to("wait_file", p, Target::Channel("default".into()))
        .await;
    s.wait_state(&first, JobState::Running).await;
    s.wait_state(&other, JobState::Running).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.record(&second).await.state, JobState::Queued);
    std::fs::write(&flag, "").unwrap();
    for j in [first, second, other] {
        assert_eq!(
            s.wait_terminal(&j, Duration::from_secs(20)).await.state,
            JobState::Succeeded
        );
    }
    e.drain().await;
}
