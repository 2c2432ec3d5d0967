//! Authentication and the role x command x verb matrix, with every decision audited.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_known_token_are_refused_and_audited() {
    let s = Stack::new().await;
    let r = s.http.get(s.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let r = s
        .http
        .get(s.url("/api/v1/me"))
        .bearer_auth("tw_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(s.url("/api/v1/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let denied: Vec<_> = s
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "me" && !e.allowed && e.actor.is_none())
        .collect();
    assert_eq!(denied.len(), 3, "each refused request is audited");
    assert!(denied[1].reason.contains("not known"));
    assert!(denied[0].source.starts_with("127.0.0.1:"));

    let (status, me) = s.get("alice", "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"], "alice");
    assert_eq!(me["roles"], json!(["ops"]));
    assert_eq!(me["super_user"], false);
    assert!(
        me["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("run"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_by_command_matrix_with_denials_audited() {
    let s = Stack::new().await;
    s.ready().await;
    // (user, command, allowed)
    let matrix = [
        ("alice", "echo", true),
        ("alice", "secret", false),   // empty role list: super users only
        ("alice", "unlisted", false), // not in the allowed commands
        ("carol", "echo", false),     // lead has no run permission
        ("dave", "echo", false),      // no role at all
        ("root", "echo", true),
        ("root", "secret", true),
        ("root", "unlisted", true),
    ];
    for (user, command, allowed) in matrix {
        let params = if command == "echo" {
            json!({"text": "x"})
        } else {
            json!({})
        };
        let (status, body) = s.submit(user, command, params).await;
        if allowed {
            assert_eq!(status, StatusCode::ACCEPTED, "{user} {command}: {body}");
            s.wait_final(user, body["job_id"].as_str().unwrap()).await;
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{user} {command}: {body}");
            assert_eq!(body["error"]["code"], "forbidden");
        }
    }
    let audit = s.audit().await;
    for (user, command, allowed) in matrix {
        let found = audit.iter().any(|e| {
            e.action == "jobs.submit"
                && e.actor.as_deref() == Some(user)
                && e.allowed == allowed
                && e.target.as_deref().is_some_and(|t| t.starts_with(command))
        });
        assert!(found, "audit record for {user} {command} allowed={allowed}");
    }
    let carol = audit
        .iter()
        .find(|e| e.actor.as_deref() == Some("carol") && e.action == "jobs.submit")
        .unwrap();
    assert!(
        carol.reason.contains("no role granting run"),
        "{}",
        carol.reason
    );

    // Instances need read_instances.
    assert_eq!(s.get("alice", "/api/v1/instances").await.0, StatusCode::OK);
    assert_eq!(
        s.get("carol", "/api/v1/instances").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_only_their_own_jobs_unless_permitted() {
    let s = Stack::new().await;
    s.ready().await;
    let job = s.run("alice", "echo", json!({"text": "mine"})).await;
    let id = job["job_id"].as_str().unwrap();
    assert_eq!(job["requested_by"], "alice");
    for (user, status) in [
        ("alice", StatusCode::OK),
        ("bob", StatusCode::FORBIDDEN),
        ("dave", StatusCode::FORBIDDEN),
        ("carol", StatusCode::OK),
        ("root", StatusCode::OK),
    ] {
        assert_eq!(
            s.get(user, &format!("/api/v1/jobs/{id}")).await.0,
            status,
            "{user} get"
        );
        let r = s
            .http
            .get(s.url(&format!("/api/v1/jobs/{id}/output")))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{user} output");
    }
    let (_, body) = s.get("bob", &format!("/api/v1/jobs/{id}")).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to alice")
    );
    // The list shows bob nothing of alice's, and carol everything.
    let (_, bobs) = s.get("bob", "/api/v1/jobs").await;
    assert!(bobs["jobs"].as_array().unwrap().is_empty());
    let (_, carols) = s.get("carol", "/api/v1/jobs").await;
    assert_eq!(carols["jobs"][0]["job_id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_commands_from_the_environment_replace_the_file() {
    let mut cfg = gateway_config();
    cfg.apply_allowed_commands_env(Some(r#"{"secret": {"roles": ["ops"]}}"#))
        .unwrap();
    let s = Stack::with(cfg).await;
    s.ready().await;
    assert_eq!(
        s.submit("alice", "secret", json!({})).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        s.submit("alice", "echo", json!({"text": "x"})).await.0,
        StatusCode::FORBIDDEN,
        "the environment's list replaces the file's"
    );
    let mut bad = gateway_config();
    let e = bad
        .apply_allowed_commands_env(Some("{not json"))
        .unwrap_err();
    assert!(e.contains("TASKWIRE_ALLOWED_COMMANDS is not valid"), "{e}");
}

/// (audit action, HTTP method, path, expected status per user).
type Case = (
    &'static str,
    &'static str,
    String,
    [(&'static str, StatusCode); 5],
);

/// Every verb for every kind of user, on a job of alice's: the status says allowed or denied,
/// and every decision is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_for_every_role_on_someone_elses_job() {
    let s = Stack::new().await;
    s.ready().await;
    let done = s.run("alice", "echo", json!({"text": "x"})).await;
    let id = done["job_id"].as_str().unwrap().to_string();
    // (verb, path, method) and who may: alice (ops: run, read_own, stop_own, kill_own, delete,
    // read_instances), bob (ops, not the owner), carol (lead: read_any, kill_any, read_audit),
    // dave (no role), root (super user).
    let ok = StatusCode::OK;
    let no = StatusCode::FORBIDDEN;
    // For stop/kill the job has ended: an allowed request answers 409, a denied one 403.
    let ended = StatusCode::CONFLICT;
    let cases: Vec<Case> = vec![
        (
            "jobs.get",
            "GET",
            format!("/api/v1/jobs/{id}"),
            [
                ("alice", ok),
                ("bob", no),
                ("carol", ok),
                ("dave", no),
                ("root", ok),
            ],
        ),
        (
            "jobs.output",
            "GET",
            format!("/api/v1/jobs/{id}/output"),
            [
                ("alice", ok),
                ("bob", no),
                ("carol", ok),
                ("dave", no),
                ("root", ok),
            ],
        ),
        (
            "jobs.list",
            "GET",
            "/api/v1/jobs".to_string(),
            [
                ("alice", ok),
                ("bob", ok),
                ("carol", ok),
                ("dave", no),
                ("root", ok),
            ],
        ),
        (
            "instances.list",
            "GET",
            "/api/v1/instances".to_string(),
            [
                ("alice", ok),
                ("bob", ok),
                ("carol", no),
                ("dave", no),
                ("root", ok),
            ],
        ),
        (
            "jobs.stop",
            "POST",
            format!("/api/v1/jobs/{id}/stop"),
            [
                ("alice", ended),
                ("bob", no),
                ("carol", no),
                ("dave", no),
                ("root", ended),
            ],
        ),
        (
            "jobs.kill",
            "POST",
            format!("/api/v1/jobs/{id}/kill"),
            [
                ("alice", ended),
                ("bob", no),
                ("carol", ended),
                ("dave", no),
                ("root", ended),
            ],
        ),
    ];
    for (action, method, path, expect) in &cases {
        for (user, status) in expect {
            let got = match *method {
                "GET" => s.get(user, path).await.0,
                _ => s.post(user, path, json!({})).await.0,
            };
            assert_eq!(got, *status, "{user} {action}");
        }
    }
    let audit = s.audit().await;
    for (action, _, _, expect) in &cases {
        for (user, status) in expect {
            let allowed = *status != StatusCode::FORBIDDEN;
            assert!(
                audit.iter().any(|e| e.action == *action
                    && e.actor.as_deref() == Some(*user)
                    && e.allowed == allowed),
                "audit of {user} {action} allowed={allowed}"
            );
        }
    }
    // Delete last (it removes the job): bob and carol may not, alice may.
    assert_eq!(s.delete("bob", &format!("/api/v1/jobs/{id}")).await.0, no);
    assert_eq!(s.delete("carol", &format!("/api/v1/jobs/{id}")).await.0, no);
    assert_eq!(s.delete("dave", &format!("/api/v1/jobs/{id}")).await.0, no);
    assert_eq!(s.delete("alice", &format!("/api/v1/jobs/{id}")).await.0, ok);
}
