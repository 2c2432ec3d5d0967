//! Serving a request/reply subject against a real nats-server: one member of the queue group
//! answers each request, and a stop answers what the member already had before it leaves.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskwire_testkit::{NatsServer, eventually};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_answered_once_and_a_stop_answers_what_was_received() {
    let nats = NatsServer::start();
    let client = taskwire_core::nats::connect(&nats.url(), "serve-test")
        .await
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    // Answers go out only while the gate is open: a request can be held under way.
    let (gate, gate_rx) = watch::channel(true);
    let member = |name: &'static str| {
        let (served, gate) = (served.clone(), gate_rx.clone());
        move |msg: async_nats::Message| {
            let (served, mut gate) = (served.clone(), gate.clone());
            async move {
                served.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
                Some(format!("{name}:{}", String::from_utf8_lossy(&msg.payload)).into())
            }
        }
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let serve = |m| taskwire_core::serve::respond(&client, "t.echo".into(), "q", stop.clone(), m);
    let a = serve(member("a")).await.unwrap();
    let b = serve(member("b")).await.unwrap();
    // Requests without a reply subject are ignored; every request is answered by one member.
    client.publish("t.echo", "ignored".into()).await.unwrap();
    for i in 0..10 {
        let r = client
            .request("t.echo", format!("{i}").into())
            .await
            .unwrap();
        let text = String::from_utf8(r.payload.to_vec()).unwrap();
        assert!(
            text == format!("a:{i}") || text == format!("b:{i}"),
            "{text}"
        );
    }
    assert_eq!(served.load(Ordering::SeqCst), 10);
    // A request under way when both members are told to stop still gets its answer: the
    // stops wait for it.
    gate.send_replace(false);
    let asking = tokio::spawn({
        let client = client.clone();
        async move { client.request("t.echo", "last".into()).await }
    });
    eventually(
        "the last request reached a member",
        Duration::from_secs(10),
        async || served.load(Ordering::SeqCst) == 11,
    )
    .await;
    stop.cancel();
    gate.send_replace(true);
    let last = asking.await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&last.payload).ends_with(":last"));
    tokio::join!(a.stopped(), b.stopped());
    // Stopped: nobody answers any more.
    let none = client.request("t.echo", "late".into()).await.unwrap_err();
    assert_eq!(none.kind(), async_nats::RequestErrorKind::NoResponders);
}

/// A responder on `t.api` that answers "answer" and counts the requests it handled.
async fn counting(
    client: &async_nats::Client,
) -> (taskwire_core::serve::Responder, Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let r = taskwire_core::serve::respond(client, "t.api".into(), "q", stop, {
        let handled = handled.clone();
        move |_msg: async_nats::Message| {
            handled.fetch_add(1, Ordering::SeqCst);
            async { Some("answer".into()) }
        }
    })
    .await
    .unwrap();
    (r, handled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_reply_is_no_inbox_is_never_handled() {
    let nats = NatsServer::start();
    let client = taskwire_core::nats::connect(&nats.url(), "serve-test")
        .await
        .unwrap();
    let (_r, handled) = counting(&client).await;
    // An answer to the forged reply subject would be published with the responder's
    // permissions (a forged audit notice here).
    client
        .publish_with_reply("t.api", "tw.audit.job_deleted", "x".into())
        .await
        .unwrap();
    // One member reads requests in order: once the next one is answered, the first was
    // looked at, and refused before its handler ran.
    let r = client.request("t.api", "y".into()).await.unwrap();
    assert_eq!(&r.payload[..], b"answer");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_never_answers_into_its_own_inbox() {
    // An answer there could pass for the answer to one of the service's own requests (the
    // gateway's kill requests to executors wait in its inbox).
    let nats = NatsServer::start();
    let ep = taskwire_core::nats::Endpoint::new(nats.url(), None).with_inbox("_INBOX.svc");
    let service = taskwire_core::nats::connect_to(&ep, "serve-test-service")
        .await
        .unwrap();
    let caller = taskwire_core::nats::connect(&nats.url(), "serve-test-caller")
        .await
        .unwrap();
    let (_r, handled) = counting(&service).await;
    let mut own = service.subscribe("_INBOX.svc.kill.x").await.unwrap();
    // The caller is another connection: wait until its requests reach the service.
    eventually(
        "the service answers the caller",
        Duration::from_secs(10),
        async || caller.request("t.api", "probe".into()).await.is_ok(),
    )
    .await;
    let before = handled.load(Ordering::SeqCst);
    caller
        .publish_with_reply("t.api", "_INBOX.svc.kill.x", "x".into())
        .await
        .unwrap();
    // Requests are read in order: once the next one is answered, the first was refused.
    let r = caller.request("t.api", "y".into()).await.unwrap();
    assert_eq!(&r.payload[..], b"answer");
    assert_eq!(handled.load(Ordering::SeqCst), before + 1);
    // The refused one sent nothing into the service's inbox: a message published now comes
    // first, and nothing before it.
    caller
        .publish("_INBOX.svc.kill.x", "marker".into())
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut own))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first.payload[..], b"marker");
}
