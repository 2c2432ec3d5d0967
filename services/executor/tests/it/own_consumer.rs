//! The instance's own consumer of `TW_INST`: a kill broker makes it on the executor's request
//! (the executor may make no consumer), with one replica in memory and the instance's filter;
//! it answers again for a consumer that is there, makes one that is gone, refuses what is no
//! request; and an executor whose consumer disappears asks for it again and runs the jobs sent
//! to it meanwhile. And the kill broker's view of what an instance runs: a job its live
//! instance does not list ends lost.

use crate::helpers::*;
use async_nats::jetstream::consumer::pull;
use serde_json::json;
use std::time::Duration;
use taskwire_core::auth::roles::Role;
use taskwire_core::wire::{ConsumerOutcome, ConsumerReply, ConsumerRequest, JobState, Target};
use taskwire_testkit::eventually;

async fn ask(client: &async_nats::Client, subject: String, body: Vec<u8>) -> ConsumerReply {
    let m = client.request(subject, body.into()).await.unwrap();
    serde_json::from_slice(&m.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_broker_makes_the_instance_consumer_and_makes_it_again_when_it_is_gone() {
    let s = stack().await;
    let cat = catalog(s.dir.path());
    let mut e = s.executor("a", &cat, |_| {}).await;
    let ns = s.ns.clone();
    let name = ns.consumer_instance(&e.guid);
    let inst = s.js.get_stream(ns.stream_instance_jobs()).await.unwrap();

    // Made for the executor's start, as the one config there is.
    let mut info = None;
    eventually(
        "the instance's consumer exists",
        Duration::from_secs(20),
        async || {
            info = inst.consumer_info(&name).await.ok();
            info.is_some()
        },
    )
    .await;
    let c = info.unwrap().config;
    assert_eq!(c.num_replicas, 1);
    assert!(c.memory_storage);
    assert_eq!(c.filter_subject, ns.dispatch_instance(&e.guid));
    assert!(c.deliver_subject.is_none(), "a pull consumer: {c:?}");

    // Asked as that executor: kept while it is there, made when it is gone.
    let role = Role::Executor {
        guid: e.guid,
        channels: vec!["default".into()],
    };
    let client = taskwire_core::nats::connect_to(
        &s.endpoint(&role).with_inbox(role.inbox_prefix()),
        "as-executor",
    )
    .await
    .unwrap();
    let subject = ns.instance_consumer_request(&e.guid);
    let body = serde_json::to_vec(&ConsumerRequest { after: 0 }).unwrap();
    let r = ask(&client, subject.clone(), body.clone()).await;
    assert_eq!(r.outcome, Some(ConsumerOutcome::Kept), "{r:?}");
    let r = ask(&client, subject.clone(), b"not json".to_vec()).await;
    assert!(r.outcome.is_none(), "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("ConsumerRequest"),
        "{r:?}"
    );

    // Gone (as after its node's loss): the executor notices, asks again, and runs what was
    // sent to it meanwhile.
    inst.delete_consumer(&name).await.unwrap();
    let job = s
        .enqueue_to(
            "echo",
            json!({"text": "still here"}),
            Target::Instance(e.guid),
        )
        .await;
    let r = s.wait_terminal(&job, Duration::from_secs(60)).await;
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    assert_eq!(r.instance, Some(e.guid));
    assert!(
        inst.get_consumer::<pull::Config>(&name).await.is_ok(),
        "made again"
    );
    e.drain().await;
}

/// A job its live instance does not run (its record says running there, the instance's
/// heartbeats do not list it) ends `lost`, whatever the clocks say: here its start is an hour
/// after the instance's, as after a reboot with a clock behind. One the instance runs stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_its_live_instance_does_not_run_ends_lost_whatever_the_clocks_say() {
    use taskwire_core::wire::{JobRecord, JobSpec, Via};
    let dir = tempfile::tempdir().unwrap();
    let s = taskwire_teststack::Stack::builder()
        .kill_broker()
        .executor_with(&catalog(dir.path()), |c| {
            c.heartbeat_interval = Duration::from_millis(300)
        })
        .start()
        .await;
    let guid = s.executors[0].guid;
    // Running there, from its record only.
    let spec = JobSpec::new("echo", Target::Instance(guid), "alice", Via::Http);
    let ghost = spec.job_id;
    let mut rec = JobRecord::queued(spec);
    rec.state = JobState::Running;
    rec.instance = Some(guid);
    rec.started_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    s.jobs.create(&rec).await.unwrap();
    // Really running there, longer than the broker's lost_after (2 s).
    let real = s
        .enqueue_to(
            "wait_file",
            json!({"path": dir.path().join("go").display().to_string()}),
            Target::Instance(guid),
        )
        .await;
    s.wait_state(&real, JobState::Running).await;
    let r = s.wait_terminal(&ghost, Duration::from_secs(30)).await;
    assert_eq!(r.state, JobState::Lost, "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("has not run the job"),
        "{r:?}"
    );
    // The real one runs on, past the broker's lost_after and many of its sweeps.
    let (running, _) = s.jobs.get(&real).await.unwrap().unwrap();
    let began = running.started_at.unwrap();
    eventually(
        "the real job has run for 4 s",
        Duration::from_secs(30),
        async || chrono::Utc::now() - began > chrono::Duration::seconds(4),
    )
    .await;
    let (still, _) = s.jobs.get(&real).await.unwrap().unwrap();
    assert_eq!(still.state, JobState::Running, "{still:?}");
    std::fs::write(dir.path().join("go"), "").unwrap();
    let r = s.wait_terminal(&real, Duration::from_secs(30)).await;
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
}
