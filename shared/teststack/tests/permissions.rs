//! NATS as a security boundary, on a real nats-server with the generated config: for the
//! internal subjects, streams and buckets, an anonymous client is refused, each role that
//! should not touch one is refused (a permission violation the client sees), and the role
//! that should is allowed. Executor A's key cannot act as executor B.

#![allow(clippy::unwrap_used)]

use async_nats::{Event, ServerError};
use std::time::Duration;
use taskwire_core::auth::roles::Role;
use taskwire_teststack::Stack;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A connection as `role` that reports every permission violation the server sends it.
struct Probe {
    client: async_nats::Client,
    violations: mpsc::UnboundedReceiver<String>,
    sentinel: u32,
}

impl Probe {
    async fn connect(s: &Stack, role: &Role) -> Self {
        let (tx, violations) = mpsc::unbounded_channel();
        let ep = s.endpoint(role);
        let kp = taskwire_core::auth::keys::read_seed(ep.credentials.as_ref().unwrap()).unwrap();
        let client = async_nats::ConnectOptions::with_nkey(kp.seed().unwrap())
            .custom_inbox_prefix(role.inbox_prefix())
            .event_callback(move |e| {
                let tx = tx.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(m)) = e
                        && m.to_lowercase().contains("permissions violation")
                    {
                        let _ = tx.send(m);
                    }
                }
            })
            .connect(s.nats_url())
            .await
            .unwrap();
        Self {
            client,
            violations,
            sentinel: 0,
        }
    }

    /// The next violation, waiting for it (bounded).
    async fn next_violation(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(20), self.violations.recv())
            .await
            .expect("no permission violation reported within 20 s")
            .unwrap()
    }

    /// Whether publishing to `subject` is refused.
    async fn publish_refused(&mut self, subject: &str) -> bool {
        self.client
            .publish(subject.to_string(), "x".into())
            .await
            .unwrap();
        self.refused(subject).await
    }

    /// Whether subscribing to `subject` is refused.
    async fn subscribe_refused(&mut self, subject: &str) -> bool {
        let _sub = self.client.subscribe(subject.to_string()).await.unwrap();
        self.refused(subject).await
    }

    /// Whether the server refused what was just asked about `subject`. Allowed actions are
    /// told apart by a forbidden sentinel publish after them: the server answers in order, so
    /// the next violation names the sentinel when the action itself passed.
    async fn refused(&mut self, subject: &str) -> bool {
        self.sentinel += 1;
        let sentinel = format!("tw.sentinel.{}", self.sentinel);
        self.client
            .publish(sentinel.clone(), "x".into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        let first = self.next_violation().await;
        if first.contains(&sentinel) {
            return false;
        }
        assert!(first.contains(subject), "unexpected violation: {first}");
        let second = self.next_violation().await;
        assert!(second.contains(&sentinel), "{second}");
        true
    }
}

fn executor(guid: Uuid) -> Role {
    Role::Executor {
        guid,
        channels: vec!["default".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_anonymous_and_every_role_only_its_own_subjects() {
    let s = Stack::builder().start().await;
    let ns = s.ns.clone();

    // Anonymous: refused at connect.
    let anon = taskwire_core::nats::connect_once(&s.nats_url(), "anonymous").await;
    assert!(
        matches!(&anon, Err(e) if e.to_string().contains("refused")),
        "{:?}",
        anon.map(|_| ())
    );

    // Executor A and B: each confined to its own GUID.
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let dir_a = s.dir.path().join("exec-a");
    let dir_b = s.dir.path().join("exec-b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    std::fs::write(dir_a.join("instance.guid"), format!("{a}\n")).unwrap();
    std::fs::write(dir_b.join("instance.guid"), format!("{b}\n")).unwrap();
    s.provision_executor(&dir_a, &["default"]).await;
    s.provision_executor(&dir_b, &["default"]).await;
    let job = Uuid::new_v4();
    let mut pa = Probe::connect(&s, &executor(a)).await;
    // Its own: allowed.
    assert!(!pa.publish_refused(&ns.output(&a, &job)).await);
    assert!(
        !pa.publish_refused(&ns.event(&taskwire_core::names::Origin::Instance(a), &job))
            .await
    );
    assert!(
        !pa.publish_refused(&format!("$KV.{}.{a}", ns.bucket_instances()))
            .await
    );
    assert!(!pa.subscribe_refused(&ns.exec_kill(&a)).await);
    // B's: refused (kills, output, events, heartbeat, instance-targeted dispatch).
    assert!(pa.subscribe_refused(&ns.exec_kill(&b)).await);
    assert!(pa.publish_refused(&ns.output(&b, &job)).await);
    assert!(
        pa.publish_refused(&ns.event(&taskwire_core::names::Origin::Instance(b), &job))
            .await
    );
    assert!(
        pa.publish_refused(&ns.event(&taskwire_core::names::Origin::Control, &job))
            .await
    );
    assert!(
        pa.publish_refused(&format!("$KV.{}.{b}", ns.bucket_instances()))
            .await
    );
    assert!(
        pa.publish_refused(&format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
            ns.stream_jobs(),
            ns.consumer_instance(&b)
        ))
        .await
    );
    // Its own consumer it asks a kill broker for (on its own subject only); it makes and
    // deletes no consumer itself, not even its own (the config is in a body no permission
    // can check: a push consumer of its own could deliver into any subject).
    let (jobs, inst) = (ns.stream_jobs(), ns.stream_instance_jobs());
    let (own_a, own_b) = (ns.consumer_instance(&a), ns.consumer_instance(&b));
    assert!(!pa.publish_refused(&ns.instance_consumer_request(&a)).await);
    assert!(pa.publish_refused(&ns.instance_consumer_request(&b)).await);
    for subject in [
        format!(
            "$JS.API.CONSUMER.CREATE.{inst}.{own_a}.{}",
            ns.dispatch_instance(&a)
        ),
        format!("$JS.API.CONSUMER.DELETE.{inst}.{own_a}"),
        format!("$JS.API.CONSUMER.CREATE.KV_{}", ns.bucket_jobs()),
        format!("$JS.API.CONSUMER.CREATE.KV_{}.x", ns.bucket_jobs()),
    ] {
        assert!(pa.publish_refused(&subject).await, "{subject}");
    }
    assert!(
        !pa.subscribe_refused(&ns.advisory_dispatch_leader(&ns.consumer_channel("default")))
            .await
    );
    for subject in [
        format!(
            "$JS.API.CONSUMER.CREATE.{inst}.{own_b}.{}",
            ns.dispatch_instance(&b)
        ),
        format!(
            "$JS.API.CONSUMER.CREATE.{inst}.{own_a}.{}",
            ns.dispatch_instance(&b)
        ),
        format!(
            "$JS.API.CONSUMER.CREATE.{inst}.{own_a}.{}",
            ns.dispatch_all()
        ),
        format!("$JS.API.CONSUMER.CREATE.{inst}.{own_a}"),
        format!(
            "$JS.API.CONSUMER.CREATE.{jobs}.{own_a}.{}",
            ns.dispatch_instance(&a)
        ),
        format!("$JS.API.CONSUMER.DELETE.{inst}.{own_b}"),
        format!("$JS.API.CONSUMER.DELETE.{jobs}.{own_a}"),
        format!("$JS.API.CONSUMER.DELETE.{jobs}.chan-default"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{inst}.{own_b}"),
    ] {
        assert!(pa.publish_refused(&subject).await, "{subject}");
    }
    assert!(
        pa.subscribe_refused(&ns.advisory_dispatch_leader(&own_b))
            .await
    );
    // It answers kills in the part of the gateway's inbox kept for its own kill answers, and
    // nowhere else there: not the gateway's other requests, not another executor's kills.
    // The same in the kill brokers' inbox.
    for asker in [Role::Gateway, Role::KillBroker] {
        let kill_inbox = |g| taskwire_core::auth::roles::kill_inbox(&asker, g);
        let inbox = asker.inbox_prefix();
        assert!(!pa.publish_refused(&format!("{}.x", kill_inbox(&a))).await);
        for refused in [
            format!("{}.x", kill_inbox(&b)),
            format!("{inbox}.kill.x"),
            format!("{inbox}.x"),
            format!("{inbox}.x.y"),
        ] {
            assert!(pa.publish_refused(&refused).await, "{refused}");
        }
    }
    // Doors that are not an executor's.
    for subject in [
        ns.api("jobs.submit"),
        ns.store("jobs.list"),
        ns.kill_request(),
        ns.schedule_fire(),
        ns.dispatch_channel("default"),
        ns.audit("decision"),
        format!("$JS.API.STREAM.PURGE.{}", ns.stream_jobs()),
        format!("$JS.API.STREAM.DELETE.{}", ns.stream_output()),
        format!("$JS.API.CONSUMER.CREATE.{}.x", ns.stream_jobs()),
    ] {
        assert!(pa.publish_refused(&subject).await, "{subject}");
    }
    for subject in [
        ns.output_all(),
        ns.event_all(),
        "_INBOX.>".to_string(),
        ns.api_all(),
    ] {
        assert!(pa.subscribe_refused(&subject).await, "{subject}");
    }

    // The services: no one may change streams; each reads and writes only what it uses.
    let mut gw = Probe::connect(&s, &Role::Gateway).await;
    assert!(!gw.publish_refused(&ns.dispatch_channel("default")).await);
    assert!(!gw.publish_refused(&ns.audit("decision")).await);
    assert!(!gw.subscribe_refused(&ns.api_all()).await);
    assert!(gw.publish_refused(&ns.output(&a, &job)).await);
    assert!(
        gw.publish_refused(&ns.event(&taskwire_core::names::Origin::Instance(a), &job))
            .await
    );
    // A kill of a job it saw running goes straight to the job's instance.
    assert!(!gw.publish_refused(&ns.exec_kill(&a)).await);
    assert!(
        gw.publish_refused(&format!("$JS.API.STREAM.DELETE.{}", ns.stream_jobs()))
            .await
    );
    assert!(gw.subscribe_refused(&ns.output_all()).await);
    assert!(gw.subscribe_refused(&ns.store_all()).await);

    let mut aw = Probe::connect(&s, &Role::AuditWriter).await;
    assert!(!aw.subscribe_refused(&ns.store_all()).await);
    for subject in [
        ns.dispatch_channel("default"),
        ns.audit("decision"),
        ns.audit("job_deleted"),
        ns.kill_request(),
        ns.api("jobs.submit"),
        format!("$KV.{}.x", ns.bucket_jobs()),
        format!("$JS.API.STREAM.PURGE.{}", ns.stream_output()),
    ] {
        assert!(aw.publish_refused(&subject).await, "{subject}");
    }

    let mut kb = Probe::connect(&s, &Role::KillBroker).await;
    assert!(!kb.publish_refused(&ns.exec_kill(&a)).await);
    assert!(!kb.subscribe_refused(&ns.kill_request()).await);
    // It makes the executors' own consumers of TW_INST, and no other stream's.
    assert!(
        !kb.subscribe_refused(&ns.instance_consumer_request_all())
            .await
    );
    assert!(
        !kb.publish_refused(&format!(
            "$JS.API.CONSUMER.CREATE.{}.{}.{}",
            ns.stream_instance_jobs(),
            ns.consumer_instance(&a),
            ns.dispatch_instance(&a)
        ))
        .await
    );
    for subject in [
        format!("$JS.API.CONSUMER.CREATE.{}.x", ns.stream_jobs()),
        format!("$JS.API.CONSUMER.DELETE.{}.chan-default", ns.stream_jobs()),
        ns.dispatch_channel("default"),
        ns.audit("decision"),
        ns.store("jobs.list"),
        format!("$KV.{}.{a}", ns.bucket_instances()),
        format!("$JS.API.STREAM.DELETE.{}", ns.stream_events()),
    ] {
        assert!(kb.publish_refused(&subject).await, "{subject}");
    }

    let mut sc = Probe::connect(&s, &Role::Scheduler).await;
    assert!(!sc.publish_refused(&ns.schedule_fire()).await);
    for subject in [
        ns.dispatch_channel("default"),
        ns.kill_request(),
        ns.store("jobs.list"),
        ns.audit("decision"),
        format!("$KV.{}.x", ns.bucket_jobs()),
    ] {
        assert!(sc.publish_refused(&subject).await, "{subject}");
    }
    assert!(sc.subscribe_refused(&ns.schedule_fire()).await);
}
