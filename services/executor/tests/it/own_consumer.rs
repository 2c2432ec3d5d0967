//! The instance's own consumer of `TW_INST`: a kill broker makes it on the executor's request
//! (the executor may make no consumer), with one replica in memory and the instance's filter;
//! it answers again for a consumer that is there, makes one that is gone, refuses what is no
//! request; and an executor whose consumer disappears asks for it again and runs the jobs sent
//! to it meanwhile.

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
