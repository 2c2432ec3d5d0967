//! The shared layer against a real nats-server: a watched copy of a bucket that answers only
//! once it caught up and follows the bucket again after the server restarts, and the schedule
//! store telling a lost compare-and-set (a conflict) from an outage.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use taskwire_core::kv_copy::KvCopy;
use taskwire_core::schedule::store::ScheduleStore;
use taskwire_core::topology::{self, TopologyConfig};
use taskwire_core::wire::{Misfire, Overlap, Schedule, ScheduleTarget, Timing};
use taskwire_core::{ErrorKind, Namespace};
use taskwire_testkit::{NatsServer, eventually};
use tokio_util::sync::CancellationToken;

async fn topo(nats: &NatsServer) -> (async_nats::Client, topology::Topology) {
    taskwire_core::telemetry::init_for_tests();
    let client = taskwire_core::nats::connect(&nats.url(), "core-test")
        .await
        .unwrap();
    let js = taskwire_core::nats::jetstream(client.clone());
    let t = topology::ensure(&js, &Namespace::root(), &TopologyConfig::default())
        .await
        .unwrap();
    (client, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_answers_once_caught_up_and_follows_again_after_a_server_restart() {
    let mut nats = NatsServer::start();
    let (_client, t) = topo(&nats).await;
    // A bucket that keeps its keys (the registry's forget theirs after 10 s).
    let kv = t.schedules.clone();
    // Values that exist before the copy starts: it must not answer before it holds them all.
    for i in 0..200 {
        kv.put(format!("k{i}"), format!("v{i}").into())
            .await
            .unwrap();
    }
    let copy: std::sync::Arc<KvCopy<String>> = Default::default();
    let stop = CancellationToken::new();
    let follow = tokio::spawn({
        let (copy, kv, stop) = (copy.clone(), kv.clone(), stop.clone());
        async move {
            let keep = |_: &str, v: &[u8]| Some(String::from_utf8_lossy(v).to_string());
            copy.follow(&kv, ">", keep, stop).await;
        }
    });
    eventually("the copy is live", Duration::from_secs(10), async || {
        copy.is_live()
    })
    .await;
    let snap = copy.snapshot().unwrap();
    assert_eq!(snap.len(), 200, "live means every existing value is held");
    assert_eq!(copy.get("k7").map(|(v, _)| v), Some("v7".to_string()));
    kv.delete("k7").await.unwrap();
    eventually(
        "a deleted key leaves the copy",
        Duration::from_secs(10),
        async || copy.get("k7").is_none() && copy.is_live(),
    )
    .await;

    // The server goes away and comes back: the copy follows the bucket again by itself.
    nats.kill();
    nats.restart();
    eventually(
        "a write after the restart lands",
        Duration::from_secs(20),
        async || kv.put("after", "restart".into()).await.is_ok(),
    )
    .await;
    eventually(
        "the copy holds what was written after the restart",
        Duration::from_secs(30),
        async || copy.get("after").map(|(v, _)| v) == Some("restart".to_string()),
    )
    .await;
    stop.cancel();
    follow.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_bucket_is_a_current_copy_at_once() {
    let nats = NatsServer::start();
    let (_client, t) = topo(&nats).await;
    let copy: std::sync::Arc<KvCopy<String>> = Default::default();
    let stop = CancellationToken::new();
    let follow = tokio::spawn({
        let (copy, kv, stop) = (copy.clone(), t.instances.clone(), stop.clone());
        async move {
            let keep = |_: &str, v: &[u8]| Some(String::from_utf8_lossy(v).to_string());
            copy.follow(&kv, ">", keep, stop).await;
        }
    });
    eventually(
        "the copy of an empty bucket is live",
        Duration::from_secs(10),
        async || copy.snapshot().is_some_and(|s| s.is_empty()),
    )
    .await;
    stop.cancel();
    follow.await.unwrap();
}

fn schedule() -> Schedule {
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    Schedule {
        id: uuid::Uuid::now_v7(),
        name: String::new(),
        command: "hello".into(),
        params: Default::default(),
        target: ScheduleTarget::default(),
        timing: Timing::Once { at },
        owner: "alice".into(),
        owner_roles: vec![],
        enabled: true,
        overlap: Overlap::Skip,
        misfire: Misfire::Skip,
        jitter: None,
        active_since: at,
        job_id: None,
        created_at: at,
        updated_at: at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_change_that_lost_the_race_is_a_conflict_and_an_outage_is_not() {
    let mut nats = NatsServer::start();
    let (client, t) = topo(&nats).await;
    let store = ScheduleStore::new(client, t.schedules.clone(), t.fires.clone());
    let mut s = schedule();
    let first = store.create(&s).await.unwrap();
    s.name = "renamed".into();
    store.update(&s, first).await.unwrap();
    // A second writer still holding the first revision loses.
    s.name = "late".into();
    let lost = store.update(&s, first).await.unwrap_err();
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
    assert!(lost.to_string().contains("changed meanwhile"), "{lost}");
    let removal = store.remove(&s, Some(first)).await.unwrap_err();
    assert_eq!(removal.kind(), ErrorKind::Conflict, "{removal}");
    // With the server gone, the same change is an outage to wait out, not a conflict.
    let (current, rev) = store.get(&s.id).await.unwrap().unwrap();
    nats.kill();
    let outage = store.update(&current, rev).await.unwrap_err();
    assert_eq!(outage.kind(), ErrorKind::Unavailable, "{outage}");
}

/// Any replica of a bucket answers a direct read, and one that is behind lacks what a quorum
/// stored a moment ago: an executor given a job right after its submit, or a client reading
/// the job it was just given, must still find the record. A mirror that holds none of the
/// records and answers direct reads for the bucket stands in for such a replica here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_just_stored_is_found_even_when_a_replica_without_it_answers() {
    use async_nats::jetstream::stream;
    use taskwire_core::jobs::JobStore;
    use taskwire_core::wire::{JobRecord, JobSpec, Target, Via};
    let nats = NatsServer::start();
    let (client, t) = topo(&nats).await;
    let js = taskwire_core::nats::jetstream(client.clone());
    let ns = Namespace::root();
    let bucket = ns.bucket_jobs();
    // It mirrors one key only (a mirror starts answering once it has caught up with a
    // message), so it lacks every record.
    t.jobs.put("marker", "x".into()).await.unwrap();
    let mut lagging = js
        .create_stream(stream::Config {
            name: "LAGGING_REPLICA".into(),
            mirror: Some(stream::Source {
                name: format!("KV_{bucket}"),
                filter_subject: Some(format!("$KV.{bucket}.marker")),
                ..Default::default()
            }),
            mirror_direct: true,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    eventually(
        "the mirror holds its key",
        Duration::from_secs(10),
        async || lagging.info().await.is_ok_and(|i| i.state.messages == 1),
    )
    .await;
    let store = JobStore::new(js, t.jobs.clone(), ns);
    let mut missed_by_a_replica = 0;
    for i in 0..40 {
        let spec = JobSpec::new(
            "echo",
            Target::Channel("default".into()),
            "alice",
            Via::Http,
        );
        let id = spec.job_id;
        store.create(&JobRecord::queued(spec)).await.unwrap();
        if t.jobs.entry(id.to_string()).await.unwrap().is_none() {
            missed_by_a_replica += 1;
        }
        let (found, _) = store
            .get(&id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("record {i} ({id}) not found right after it was stored"));
        assert_eq!(found.spec.job_id, id);
    }
    // The stand-in did answer some reads (else this test proves nothing).
    assert!(
        missed_by_a_replica > 0,
        "the lagging replica never answered a read"
    );
    // A record that does not exist is still none (asked of the leader).
    assert!(store.get(&uuid::Uuid::now_v7()).await.unwrap().is_none());
}
