//! Identity sources: users who came through different doors (a configured token, the
//! identity provider's JWT, the authenticating proxy) are different people, whatever their
//! names. Super-user grants name their source, and ownership compares the whole identity.

use crate::authn::{SECRET, hs, jwt_config, me, proxy_config};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskwire_gateway::GatewayConfig;
use taskwire_gateway::config::JwtConfig;

/// A JWT of the identity provider whose `sub` is `admin`, with role ops.
fn admin_jwt() -> String {
    let now = chrono::Utc::now().timestamp();
    hs(
        &json!({"sub": "admin", "groups": ["ops"], "exp": now + 300,
                "iss": "https://idp.test", "aud": "taskwire"}),
        SECRET,
    )
}

/// The test gateway with JWTs whose user is `sub`, and `super_users` added.
fn with_jwt(super_users: &[&str]) -> GatewayConfig {
    let mut cfg = gateway_config();
    cfg.super_users
        .extend(super_users.iter().map(|u| u.to_string()));
    cfg.jwt = Some(JwtConfig {
        user_claim: "sub".into(),
        ..jwt_config(true)
    });
    cfg
}

async fn submit_as(s: &Stack, bearer: &str, command: &str, params: Value) -> (StatusCode, Value) {
    let r = s
        .http
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(bearer)
        .json(&json!({"command": command, "params": params}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_with_sub_admin_is_not_the_configured_super_user_admin() {
    // `admin` is a super user: the token user of that name (as `taskwire up` makes it).
    let s = Stack::with(with_jwt(&["admin"])).await;
    s.ready().await;
    let jwt = admin_jwt();
    let (status, body) = me(&s, &jwt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "jwt:admin");
    assert_eq!(body["super_user"], false, "{body}");
    assert_eq!(body["roles"], json!(["ops"]));

    // Only the JWT's roles: `secret` is for super users, the audit log needs read_audit.
    let (status, body) = submit_as(&s, &jwt, "secret", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let audit = s
        .http
        .get(s.url("/api/v1/audit"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), StatusCode::FORBIDDEN);
    // What ops may do, it may, recorded under its own identity.
    let (status, job) = submit_as(&s, &jwt, "echo", json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["requested_by"], "jwt:admin");
    // Another user's job is not its to read (ops has read_own only).
    let (status, root_job) = s.submit("root", "echo", json!({"text": "root's"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{root_job}");
    let r = s
        .http
        .get(s.url(&format!(
            "/api/v1/jobs/{}",
            root_job["job_id"].as_str().unwrap()
        )))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The refusals are audited with the whole identity as the actor.
    let audit = s.audit().await;
    assert!(
        audit.iter().any(|e| e.actor.as_deref() == Some("jwt:admin")
            && e.action == "jobs.submit"
            && !e.allowed),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(
            |e| e.actor.as_deref() == Some("jwt:admin") && e.reason.contains("is a super user")
        ),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_users_name_a_jwt_user_by_its_source() {
    let s = Stack::with(with_jwt(&["jwt:admin"])).await;
    s.ready().await;
    let jwt = admin_jwt();
    let (status, body) = me(&s, &jwt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "jwt:admin");
    assert_eq!(body["super_user"], true, "{body}");
    let (status, job) = submit_as(&s, &jwt, "secret", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let ended = s.wait_final("root", job["job_id"].as_str().unwrap()).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_user_alice_cannot_read_the_jobs_of_token_user_alice() {
    let s = Stack::with(proxy_config("127.0.0.0/8")).await;
    s.ready().await;
    let as_proxy_alice = |rb: reqwest::RequestBuilder| {
        rb.header("X-Remote-User", "alice")
            .header("X-Remote-Groups", "ops")
    };
    let (status, token_job) = s.submit("alice", "echo", json!({"text": "token"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{token_job}");
    let token_job = token_job["job_id"].as_str().unwrap().to_string();
    s.wait_final("alice", &token_job).await;

    // Proxy alice (read_own through role ops) may not read token alice's job, nor list it.
    let r = as_proxy_alice(s.http.get(s.url(&format!("/api/v1/jobs/{token_job}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to alice"),
        "{body}"
    );
    let r = as_proxy_alice(
        s.http
            .get(s.url(&format!("/api/v1/jobs/{token_job}/output"))),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Its own job is its own, and token alice may not read that one.
    let r = as_proxy_alice(s.http.post(s.url("/api/v1/jobs")))
        .json(&json!({"command": "echo", "params": {"text": "proxy"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let proxy_job: Value = r.json().await.unwrap();
    assert_eq!(proxy_job["requested_by"], "proxy:alice");
    let proxy_job = proxy_job["job_id"].as_str().unwrap().to_string();
    let r = as_proxy_alice(s.http.get(s.url(&format!("/api/v1/jobs/{proxy_job}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = s.get("alice", &format!("/api/v1/jobs/{proxy_job}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let list = |body: &Value| -> Vec<String> {
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_string())
            .collect()
    };
    let r = as_proxy_alice(s.http.get(s.url("/api/v1/jobs")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let listed = list(&r.json().await.unwrap());
    assert!(
        listed.contains(&proxy_job) && !listed.contains(&token_job),
        "{listed:?}"
    );
    let (status, body) = s.get("alice", "/api/v1/jobs").await;
    assert_eq!(status, StatusCode::OK);
    let listed = list(&body);
    assert!(
        listed.contains(&token_job) && !listed.contains(&proxy_job),
        "{listed:?}"
    );
}
