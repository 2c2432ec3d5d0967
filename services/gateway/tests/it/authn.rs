//! JWT and proxy-header authentication through real HTTP.

use crate::helpers::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskwire_gateway::GatewayConfig;
use taskwire_gateway::config::{JwtConfig, ProxyConfig};

pub const SECRET: &str = "an-hs256-secret-of-at-least-32-characters";

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn jwt_config(hs: bool) -> JwtConfig {
    JwtConfig {
        hs256_secret: hs.then(|| SECRET.to_string()),
        rs256_public_key_file: None,
        jwks_file: (!hs).then(|| fixture("rs256-test-jwks.json")),
        issuer: "https://idp.test".into(),
        audience: "taskwire".into(),
        user_claim: "email".into(),
        roles_claim: "groups".into(),
        leeway_secs: 0,
    }
}

fn claims(exp_offset: i64, aud: &str, iss: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"email": "erin@example.test", "groups": ["ops"], "exp": now + exp_offset, "iss": iss, "aud": aud})
}

pub fn hs(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rs(claims: &Value, kid: Option<&str>) -> String {
    let pem = std::fs::read(fixture("rs256-test-private.pem")).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

pub async fn me(s: &Stack, bearer: &str) -> (StatusCode, Value) {
    let r = s
        .http
        .get(s.url("/api/v1/me"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_jwts_are_checked_for_expiry_audience_issuer_and_signature() {
    let mut cfg = gateway_config();
    cfg.jwt = Some(jwt_config(true));
    let s = Stack::with(cfg).await;
    let ok = hs(&claims(300, "taskwire", "https://idp.test"), SECRET);
    let (status, body) = me(&s, &ok).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A JWT user is named by its source: never taken for a token user of the same name.
    assert_eq!(body["user"], "jwt:erin@example.test");
    assert_eq!(body["roles"], json!(["ops"]));
    for (token, why) in [
        (
            hs(&claims(-60, "taskwire", "https://idp.test"), SECRET),
            "expired",
        ),
        (
            hs(&claims(300, "other-app", "https://idp.test"), SECRET),
            "audience",
        ),
        (
            hs(&claims(300, "taskwire", "https://evil.test"), SECRET),
            "issuer",
        ),
        (
            hs(
                &claims(300, "taskwire", "https://idp.test"),
                "a-different-secret-of-32-characters!!",
            ),
            "signature",
        ),
    ] {
        let (status, body) = me(&s, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{why}: {msg}");
    }
    // An RS256 token is not accepted where HS256 is configured.
    let (status, _) = me(&s, &rs(&claims(300, "taskwire", "https://idp.test"), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // JWT users get the ACL of their roles.
    s.ready().await;
    let r = s
        .http
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(&ok)
        .json(&json!({"command": "echo", "params": {"text": "jwt"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["requested_by"], "jwt:erin@example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_not_valid_yet_is_refused_and_audited_beyond_the_leeway() {
    let mut cfg = gateway_config();
    cfg.jwt = Some(JwtConfig {
        leeway_secs: 30,
        ..jwt_config(true)
    });
    let s = Stack::with(cfg).await;
    let with_nbf = |ahead: i64| {
        let mut c = claims(7200, "taskwire", "https://idp.test");
        c["nbf"] = json!(chrono::Utc::now().timestamp() + ahead);
        hs(&c, SECRET)
    };
    // An hour ahead: refused, saying why.
    let (status, body) = me(&s, &with_nbf(3600)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("not valid yet (nbf)"), "{msg}");
    // Within the leeway (a clock a little ahead of ours): accepted.
    let (status, body) = me(&s, &with_nbf(10)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "jwt:erin@example.test");
    // The refusal is in the audit log, with no actor (nobody was authenticated).
    let audit = s.audit().await;
    assert!(
        audit.iter().any(|e| e.action == "me"
            && !e.allowed
            && e.actor.is_none()
            && e.reason.contains("not valid yet (nbf)")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_jwts_are_verified_against_the_jwks() {
    let mut cfg = gateway_config();
    cfg.jwt = Some(jwt_config(false));
    let s = Stack::with(cfg).await;
    let good = rs(
        &claims(300, "taskwire", "https://idp.test"),
        Some("test-key-1"),
    );
    assert_eq!(me(&s, &good).await.0, StatusCode::OK);
    let (status, body) = me(
        &s,
        &rs(
            &claims(300, "taskwire", "https://idp.test"),
            Some("unknown-kid"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not in the JWKS")
    );
    let (status, _) = me(
        &s,
        &rs(
            &claims(-10, "taskwire", "https://idp.test"),
            Some("test-key-1"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A token signed with HS256 using the public key as a secret (algorithm confusion) fails.
    let public = std::fs::read_to_string(fixture("rs256-test-public.pem")).unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("test-key-1".into());
    let forged = encode(
        &h,
        &claims(300, "taskwire", "https://idp.test"),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(me(&s, &forged).await.0, StatusCode::UNAUTHORIZED);

    // The same key given as a PEM public key file.
    let mut cfg = gateway_config();
    let mut j = jwt_config(false);
    j.jwks_file = None;
    j.rs256_public_key_file = Some(fixture("rs256-test-public.pem"));
    cfg.jwt = Some(j);
    let s = Stack::with(cfg).await;
    assert_eq!(
        me(&s, &rs(&claims(300, "taskwire", "https://idp.test"), None))
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = me(&s, &rs(&claims(300, "wrong", "https://idp.test"), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

pub fn proxy_config(trusted: &str) -> GatewayConfig {
    let mut cfg = gateway_config();
    cfg.proxy = Some(ProxyConfig {
        trusted_sources: vec![trusted.into()],
        user_header: "X-Remote-User".into(),
        groups_header: "X-Remote-Groups".into(),
    });
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_are_trusted_only_from_the_proxy() {
    let s = Stack::with(proxy_config("127.0.0.0/8")).await;
    let r = s
        .http
        .get(s.url("/api/v1/me"))
        .header("X-Remote-User", "frank")
        .header("X-Remote-Groups", "ops, lead")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["user"], "proxy:frank");
    assert_eq!(me["roles"], json!(["ops", "lead"]));

    let s = Stack::with(proxy_config("10.0.0.0/8")).await;
    let r = s
        .http
        .get(s.url("/api/v1/me"))
        .header("X-Remote-User", "root")
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "spoofed proxy headers are refused, not ignored"
    );
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("configured proxy addresses")
    );
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| !e.allowed && e.reason.contains("proxy"))
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(s: &Stack, path: &str, bearer: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut req = format!("{}{path}", s.base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("taskwire, bearer.{bearer}")).unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Reads until the server closes; returns the last error frame and the close code.
async fn until_closed(ws: &mut Socket) -> (Value, u16) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut refused = Value::Null;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("the socket outlived its token");
        match next {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "error" {
                    refused = v;
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => return (refused, u16::from(frame.code)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sockets_end_when_their_jwt_expires() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let mut cfg = gateway_config();
    cfg.jwt = Some(jwt_config(true));
    cfg.ws_recheck = std::time::Duration::from_millis(200);
    let s = Stack::with(cfg).await;
    s.ready().await;
    // Valid for two to three more seconds (`exp` is in whole seconds).
    let short_claims = claims(3, "taskwire", "https://idp.test");
    let exp = short_claims["exp"].as_i64().unwrap();
    let short = hs(&short_claims, SECRET);
    let r = s
        .http
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(&short)
        .json(&json!({"command": "lines", "params": {"n": 3000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let job = job["job_id"].as_str().unwrap().to_string();

    let mut mux = open_socket(&s, "/api/v1/ws", &short).await;
    mux.send(Message::Text(
        json!({"op": "watch_jobs"}).to_string().into(),
    ))
    .await
    .unwrap();
    let mut one = open_socket(&s, &format!("/api/v1/jobs/{job}/stream"), &short).await;
    // The same output as Server-Sent Events, read beside the sockets until the server ends it.
    let sse = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{job}/stream")))
        .bearer_auth(&short)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    let sse = tokio::spawn(async move {
        let mut sse = sse;
        let mut text = Vec::new();
        while let Some(chunk) =
            tokio::time::timeout(std::time::Duration::from_secs(30), sse.chunk())
                .await
                .expect("the event stream did not end")
                .unwrap()
        {
            text.extend_from_slice(&chunk);
        }
        (
            String::from_utf8_lossy(&text).into_owned(),
            chrono::Utc::now().timestamp(),
        )
    });
    for ws in [&mut mux, &mut one] {
        let (refused, code) = until_closed(ws).await;
        assert_eq!(code, 4001);
        assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");
        let msg = refused["error"]["message"].as_str().unwrap();
        assert!(msg.contains("expired"), "{refused}");
    }
    // Not before the token expired (no leeway is configured), and soon after it.
    let closed = chrono::Utc::now().timestamp();
    assert!(
        closed >= exp,
        "closed at {closed}, the token expires at {exp}"
    );
    assert!(closed <= exp + 30, "closed at {closed}, long after {exp}");
    let (events, ended) = sse.await.unwrap();
    assert!(
        ended >= exp,
        "the event stream ended at {ended}, before {exp}"
    );
    let last = events.trim_end().rsplit("\n\n").next().unwrap_or_default();
    assert!(last.starts_with("event: error"), "{last}");
    assert!(
        last.contains("unauthorized") && last.contains("expired"),
        "{last}"
    );
    let audit = s.audit().await;
    assert!(
        audit.iter().any(|e| e.action == "ws.session" && !e.allowed),
        "the ended sessions are audited"
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "jobs.stream" && !e.allowed && e.reason.contains("expired")),
        "the ended event stream is audited"
    );
    let (status, _) = s
        .post("root", &format!("/api/v1/jobs/{job}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}
