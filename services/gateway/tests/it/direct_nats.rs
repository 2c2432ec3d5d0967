//! Direct NATS clients: a client that connects to nats-server with its taskwire token signs in
//! through the gateway's auth callout, may publish `tw.api.>` and receive on its own inbox
//! only, follows a job's output over `tw.api.jobs.follow`, and loses its connection when its
//! token stops authenticating. A real nats-server with an `auth_callout` block, a real
//! gateway and executor.

use crate::helpers::{CATALOG, gateway_config, token};
use async_nats::{ClientError, ConnectErrorKind, Event, HeaderMap, ServerError};
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use taskwire_core::Namespace;
use taskwire_core::auth::direct::inbox_prefix;
use taskwire_core::names::{HDR_END, HDR_SEQ, HDR_STREAM};
use taskwire_core::wire::AuditEvent;
use taskwire_gateway::GatewayConfig;
use taskwire_gateway::config::JwtConfig;
use tokio::sync::mpsc;

const SECRET: &str = "an-hs256-secret-of-at-least-32-characters";

/// The gateway tests' stack on a nats-server with the auth callout: every connection that
/// is not one of taskwire's identities goes to the gateway.
struct Direct {
    s: taskwire_teststack::Stack,
    ns: Namespace,
    /// The test's own (admin) connection.
    client: async_nats::Client,
}

/// The gateway configuration of these tests: the test users, a JWT issuer, the callout.
fn direct_config(s: &taskwire_teststack::Stack) -> GatewayConfig {
    let mut cfg = gateway_config();
    cfg.jwt = Some(JwtConfig {
        hs256_secret: Some(SECRET.into()),
        rs256_public_key_file: None,
        jwks_file: None,
        issuer: "https://idp.test".into(),
        audience: "taskwire".into(),
        user_claim: "sub".into(),
        roles_claim: "roles".into(),
        leeway_secs: 0,
    });
    cfg.nats_callout_issuer_seed = Some(s.auth.keys.issuer_path());
    cfg
}

impl Direct {
    async fn start() -> Self {
        let mut s = taskwire_teststack::Stack::builder()
            .executor(CATALOG)
            .nats_callout()
            .start()
            .await;
        let cfg = direct_config(&s);
        s.restart_gateway(cfg).await;
        s.ready().await;
        Self {
            ns: s.ns.clone(),
            client: s.client.clone(),
            s,
        }
    }

    async fn restart_gateway(&mut self, cfg: GatewayConfig) {
        self.s.restart_gateway(cfg).await;
        self.s.ready().await;
    }

    /// A direct client signed in with `tok`, on its own inbox; its events go to the receiver.
    async fn direct(
        &self,
        tok: &str,
    ) -> Result<
        (
            async_nats::Client,
            mpsc::UnboundedReceiver<(Instant, Event)>,
        ),
        async_nats::ConnectError,
    > {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .name("direct")
            .token(tok.to_string())
            .custom_inbox_prefix(inbox_prefix(tok))
            .event_callback(move |e| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((Instant::now(), e));
                }
            })
            .connect(self.s.nats_url())
            .await?;
        Ok((client, rx))
    }
}

/// A request of the NATS API on `client` as `user` (the token in `Authorization`).
async fn api(
    client: &async_nats::Client,
    ns: &Namespace,
    user: &str,
    verb: &str,
    body: Value,
) -> Value {
    let mut h = HeaderMap::new();
    h.insert("Authorization", format!("Bearer {}", token(user)).as_str());
    let reply = client
        .request_with_headers(ns.api(verb), h, body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// What a follow delivered: the first reply, the chunks by sequence, the end.
#[derive(Debug)]
struct Followed {
    first: Value,
    chunks: BTreeMap<u64, (String, Vec<u8>)>,
    /// Every chunk sequence in the order received.
    order: Vec<u64>,
    end: Option<(String, Value)>,
}

impl Followed {
    fn stream(&self, name: &str) -> Vec<u8> {
        self.chunks
            .values()
            .filter(|(s, _)| s == name)
            .flat_map(|(_, d)| d.clone())
            .collect()
    }
}

/// Follows `job` from `from_seq` as `user` over `client`, until the end message.
async fn follow(
    client: &async_nats::Client,
    ns: &Namespace,
    user: &str,
    job: &str,
    from_seq: u64,
) -> Followed {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    let mut h = HeaderMap::new();
    h.insert("Authorization", format!("Bearer {}", token(user)).as_str());
    let body = json!({"job_id": job, "from_seq": from_seq}).to_string();
    client
        .publish_with_reply_and_headers(ns.api("jobs.follow"), inbox, h, body.into())
        .await
        .unwrap();
    let mut f = Followed {
        first: Value::Null,
        chunks: BTreeMap::new(),
        order: Vec::new(),
        end: None,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if f.first.is_null() {
            f.first = serde_json::from_slice(&m.payload).unwrap();
            if f.first.get("error").is_some() {
                return f;
            }
            continue;
        }
        let header = |name: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        if let Some(kind) = header(HDR_END) {
            f.end = Some((kind, serde_json::from_slice(&m.payload).unwrap()));
            return f;
        }
        let seq: u64 = header(HDR_SEQ).unwrap().parse().unwrap();
        let stream = header(HDR_STREAM).unwrap();
        f.order.push(seq);
        f.chunks.insert(seq, (stream, m.payload.to_vec()));
    }
    panic!("the follow of {job} did not end within 60 s: {f:?}");
}

/// Audit decisions published from now on, on a subscription of the test's own.
async fn audit_log(d: &Direct) -> async_nats::Subscriber {
    let s = d.client.subscribe(d.ns.audit_all()).await.unwrap();
    d.client.flush().await.unwrap();
    s
}

/// Waits for an audit event that `pred` accepts.
async fn wait_audit(
    sub: &mut async_nats::Subscriber,
    what: &str,
    pred: impl Fn(&AuditEvent) -> bool,
) -> AuditEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if let Ok(e) = serde_json::from_slice::<AuditEvent>(&m.payload) {
            if pred(&e) {
                return e;
            }
            seen.push(e);
        }
    }
    panic!("no audit event {what} within 20 s; saw {seen:?}");
}

/// Waits for the next event of a client that `pred` accepts; when it came.
async fn wait_event(
    rx: &mut mpsc::UnboundedReceiver<(Instant, Event)>,
    what: &str,
    within: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Instant {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while let Ok(Some((at, e))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if pred(&e) {
            return at;
        }
        seen.push(e.to_string());
    }
    panic!("the client saw no {what} within {within:?}; it saw {seen:?}");
}

/// A connect (or reconnect) the server refused.
fn refused(e: &Event) -> bool {
    match e {
        Event::ServerError(ServerError::AuthorizationViolation) => true,
        Event::ClientError(ClientError::Other(m)) => m.contains("authorization violation"),
        _ => false,
    }
}

fn violation(subject: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| {
        matches!(e, Event::ServerError(ServerError::Other(m))
            if m.to_lowercase().contains("permissions violation") && m.contains(subject))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_submits_and_follows_its_job_byte_for_byte() {
    let d = Direct::start().await;
    let tok = token("alice");
    let (alice, _events) = d.direct(&tok).await.unwrap();
    let me = api(&alice, &d.ns, "alice", "me", json!({})).await;
    assert_eq!(me["ok"]["user"], "alice", "{me}");
    let r = api(
        &alice,
        &d.ns,
        "alice",
        "jobs.submit",
        json!({"command": "lines", "params": {"n": 300}}),
    )
    .await;
    let job = r["ok"]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();

    // Live: from the first chunk while the job runs, then its end.
    let live = follow(&alice, &d.ns, "alice", &job, 1).await;
    assert_eq!(live.first, json!({"ok": {"job_id": job, "from_seq": 1}}));
    let (kind, end) = live.end.clone().unwrap();
    assert_eq!(kind, "end", "{end}");
    assert_eq!(end["type"], "end");
    assert_eq!(end["state"], "succeeded", "{end}");
    let last = end["last_seq"].as_u64().unwrap();
    assert!(last > 1, "the output came in several chunks: {end}");
    // No gap, no duplicate, in order.
    assert_eq!(live.order, (1..=last).collect::<Vec<_>>());
    let mut want: Vec<u8> = (1..=300)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    want.extend_from_slice(b"\xffend");
    assert_eq!(live.stream("stdout"), want);
    assert_eq!(live.stream("stderr"), b"done\n");

    // Replay from the middle of a finished job: exactly the same chunks from there on.
    let again = follow(&alice, &d.ns, "alice", &job, 3).await;
    assert_eq!(again.order, (3..=last).collect::<Vec<_>>());
    for (seq, chunk) in &again.chunks {
        assert_eq!(Some(chunk), live.chunks.get(seq), "chunk {seq}");
    }
    assert_eq!(again.end.unwrap().1, end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_is_refused_another_users_job() {
    let d = Direct::start().await;
    let (bob, _) = d.direct(&token("bob")).await.unwrap();
    let r = api(
        &bob,
        &d.ns,
        "bob",
        "jobs.submit",
        json!({"command": "echo", "params": {"text": "bob's"}}),
    )
    .await;
    let job = r["ok"]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let mut audit = audit_log(&d).await;
    let (alice, _) = d.direct(&token("alice")).await.unwrap();
    let refused = follow(&alice, &d.ns, "alice", &job, 1).await;
    assert_eq!(
        refused.first["error"]["code"], "forbidden",
        "{:?}",
        refused.first
    );
    assert!(
        refused.first["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read_any"),
        "{:?}",
        refused.first
    );
    wait_audit(&mut audit, "denying alice's jobs.follow", |e| {
        e.action == "jobs.follow" && !e.allowed && e.actor.as_deref() == Some("alice")
    })
    .await;
    // A bad body is answered, not ignored.
    let bad = follow(&alice, &d.ns, "alice", "not-a-uuid", 1).await;
    assert_eq!(
        bad.first["error"]["code"], "invalid_request",
        "{:?}",
        bad.first
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_reads_only_its_own_inbox_and_publishes_only_the_api() {
    let d = Direct::start().await;
    let tok = token("alice");
    let (alice, mut events) = d.direct(&tok).await.unwrap();
    // It reads nothing but its own inbox.
    let mut subs = Vec::new();
    for subject in ["tw.out.>", "tw.evt.>", "_INBOX.>"] {
        subs.push(alice.subscribe(subject).await.unwrap());
        wait_event(
            &mut events,
            "a subscription violation",
            Duration::from_secs(10),
            violation(subject),
        )
        .await;
    }
    // Every internal door is closed to it: only tw.api.> is its to publish.
    let exec_kill = d.ns.exec_kill(&uuid::Uuid::new_v4());
    let internal = [
        d.ns.dispatch_channel("default"),
        d.ns.kill_request(),
        exec_kill,
        d.ns.store("jobs.list"),
        d.ns.schedule_fire(),
        d.ns.audit("decision"),
        d.ns.audit("job_deleted"),
        d.ns.output(&uuid::Uuid::new_v4(), &uuid::Uuid::new_v4()),
        format!("$KV.{}.x", d.ns.bucket_jobs()),
        format!("$KV.{}.x", d.ns.bucket_instances()),
        format!("$JS.API.STREAM.PURGE.{}", d.ns.stream_jobs()),
        format!("$JS.API.CONSUMER.CREATE.{}", d.ns.stream_output()),
    ];
    for subject in internal {
        alice.publish(subject.clone(), "{}".into()).await.unwrap();
        wait_event(
            &mut events,
            "a publish violation",
            Duration::from_secs(10),
            violation(&subject),
        )
        .await;
    }
    // Its own inbox works: the API answers it.
    let r = api(&alice, &d.ns, "alice", "me", json!({})).await;
    assert_eq!(r["ok"]["user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_at_connect_and_audited() {
    let d = Direct::start().await;
    let mut audit = audit_log(&d).await;
    let e = d.direct("not-a-taskwire-token").await.unwrap_err();
    assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}");
    let refused = wait_audit(&mut audit, "refusing the connection", |e| {
        e.action == "nats.connect" && !e.allowed
    })
    .await;
    assert_eq!(refused.actor, None);
    assert!(refused.reason.contains("not known"), "{refused:?}");
    let (_alice, _) = d.direct(&token("alice")).await.unwrap();
    let allowed = wait_audit(&mut audit, "alice signing in", |e| {
        e.action == "nats.connect" && e.allowed
    })
    .await;
    assert_eq!(allowed.actor.as_deref(), Some("alice"));
    assert!(
        allowed.reason.contains(&inbox_prefix(&token("alice"))),
        "{allowed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_loses_its_connection_and_cannot_reconnect() {
    let d = Direct::start().await;
    let exp = chrono::Utc::now().timestamp() + 4;
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "erin", "roles": ["ops"], "exp": exp, "iss": "https://idp.test", "aud": "taskwire"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let (erin, mut events) = d.direct(&jwt).await.unwrap();
    let mut h = HeaderMap::new();
    h.insert("Authorization", format!("Bearer {jwt}").as_str());
    let r = erin
        .request_with_headers(d.ns.api("me"), h, "{}".into())
        .await
        .unwrap();
    let me: Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(me["ok"]["user"], "jwt:erin", "{me}");
    let mut audit = audit_log(&d).await;
    let gone = wait_event(
        &mut events,
        "the disconnect",
        Duration::from_secs(20),
        |e| matches!(e, Event::Disconnected),
    )
    .await;
    let at = chrono::Utc::now().timestamp() - gone.elapsed().as_secs() as i64;
    assert!(
        (exp - 1..=exp + 3).contains(&at),
        "closed at {at}, the token expired at {exp}"
    );
    wait_event(
        &mut events,
        "the refused reconnect",
        Duration::from_secs(20),
        refused,
    )
    .await;
    let refused = wait_audit(&mut audit, "refusing the reconnect", |e| {
        e.action == "nats.connect" && !e.allowed
    })
    .await;
    assert!(refused.reason.contains("expired"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_token_loses_its_connection_within_the_session() {
    let mut d = Direct::start().await;
    let mut cfg = direct_config(&d.s);
    cfg.nats_session = Duration::from_secs(2);
    d.restart_gateway(cfg.clone()).await;
    let (alice, mut events) = d.direct(&token("alice")).await.unwrap();
    // While the token is configured, a session ends and the reconnect signs in again.
    wait_event(
        &mut events,
        "the end of the first session",
        Duration::from_secs(10),
        |e| matches!(e, Event::Disconnected),
    )
    .await;
    wait_event(&mut events, "the reconnect", Duration::from_secs(10), |e| {
        matches!(e, Event::Connected)
    })
    .await;
    cfg.tokens.retain(|t| t.user != "alice");
    d.restart_gateway(cfg).await;
    // Within one session of the gateway that no longer knows the token.
    wait_event(&mut events, "the disconnect", Duration::from_secs(4), |e| {
        matches!(e, Event::Disconnected)
    })
    .await;
    wait_event(
        &mut events,
        "the refused reconnect",
        Duration::from_secs(10),
        refused,
    )
    .await;
    drop(alice);
}
