//! The REST API through real HTTP.

use crate::helpers::*;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_run_and_read_the_output_back() {
    let s = Stack::new().await;
    s.ready().await;
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        s.http.get(s.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let job = s.run("alice", "lines", json!({"n": 3})).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["via"], "http");
    let id = job["job_id"].as_str().unwrap();

    let nd = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/output?format=ndjson")))
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut in_order: Vec<u8> = Vec::new();
    let mut last = 0;
    for line in nd.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let seq = v["seq"].as_u64().unwrap();
        assert_eq!(seq, last + 1, "ordered, gapless");
        last = seq;
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().unwrap())
            .unwrap();
        in_order.extend(&data);
        match v["stream"].as_str().unwrap() {
            "stdout" => stdout.extend(data),
            "stderr" => stderr.extend(data),
            other => panic!("unexpected stream {other}"),
        }
    }
    assert_eq!(stdout, b"line 1\nline 2\nline 3\n\xffend");
    assert_eq!(stderr, b"done\n");

    // Two pipes have no order between them; the text log is the chunks in sequence order.
    let text = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!(text.len(), stdout.len() + stderr.len());
    assert_eq!(&text[..], &in_order[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_same_job() {
    let s = Stack::new().await;
    s.ready().await;
    let send = |key: &'static str, text: &'static str| {
        s.http
            .post(s.url("/api/v1/jobs"))
            .bearer_auth(token("alice"))
            .header("Idempotency-Key", key)
            .json(&json!({"command": "echo", "params": {"text": text}}))
            .send()
    };
    let a: Value = send("k-1", "once").await.unwrap().json().await.unwrap();
    let b: Value = send("k-1", "once").await.unwrap().json().await.unwrap();
    assert_eq!(a["job_id"], b["job_id"]);
    let r = send("k-1", "different").await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // The same key from another user is another job.
    let c: Value = s
        .http
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(token("bob"))
        .header("Idempotency-Key", "k-1")
        .json(&json!({"command": "echo", "params": {"text": "once"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(a["job_id"], c["job_id"]);
    let done = s.wait_final("alice", a["job_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded");
    let (_, list) = s.get("root", "/api/v1/jobs?user=alice").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        1,
        "ran once: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_are_audited() {
    let s = Stack::new().await;
    s.ready().await;
    let (status, body) = s.submit("alice", "lines", json!({"n": 0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_params");
    assert_eq!(
        body["error"]["message"],
        "parameter 'n': must be at least 1"
    );

    let (status, body) = s.submit("alice", "echo", json!({"text": "-rf"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start with '-'")
    );

    let r = s
        .http
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(token("alice"))
        .header("content-type", "application/json")
        .body("{\"command\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");

    let (status, body) = s
        .post(
            "alice",
            "/api/v1/jobs",
            json!({"command": "echo", "params": {"text": "a"}, "user": "root"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields (like a user) are refused: {body}"
    );

    let (status, body) = s
        .post("alice", "/api/v1/jobs", json!({"command": "echo", "params": {"text": "a"}, "channel": "x", "all_instances": true}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = s
        .post(
            "root",
            "/api/v1/jobs",
            json!({"command": "nowhere", "params": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "no_instance");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("offered commands: blob, burst, drip, echo, lines")
    );

    let (status, _) = s.get("alice", "/api/v1/jobs/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .get("alice", "/api/v1/jobs/0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| !e.allowed && e.reason == "parameter 'n': must be at least 1")
    );
    assert!(
        audit.iter().any(|e| e.action == "jobs.submit"
            && !e.allowed
            && e.reason.contains("not a valid job request")),
        "malformed requests are audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_list_what_the_caller_may_run_and_where() {
    let s = Stack::new().await;
    s.ready().await;
    let (status, body) = s.get("alice", "/api/v1/commands").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "blob", "burst", "drip", "echo", "lines", "logdrip", "stubborn"
        ]
    );
    assert_eq!(body[4]["params"][0]["name"], "n");
    assert_eq!(body[4]["channels"], json!(["default"]));
    assert_eq!(body[4]["instances"].as_array().unwrap().len(), 1);
    let (_, body) = s.get("root", "/api/v1/commands").await;
    assert_eq!(body.as_array().unwrap().len(), 9);
    let (_, body) = s.get("carol", "/api/v1/commands").await;
    assert!(body.as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes() {
    let s = Stack::new().await;
    let spec: Value = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut documented = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    // The public contract: these names are kept.
    let mut expected = vec![
        "GET /healthz",
        "GET /readyz",
        "GET /openapi.json",
        "GET /api/v1/me",
        "GET /api/v1/commands",
        "GET /api/v1/instances",
        "POST /api/v1/jobs",
        "GET /api/v1/jobs",
        "GET /api/v1/jobs/{id}",
        "GET /api/v1/jobs/{id}/output",
        "GET /api/v1/jobs/{id}/stream",
        "POST /api/v1/jobs/{id}/stop",
        "POST /api/v1/jobs/{id}/kill",
        "GET /api/v1/ws",
        "DELETE /api/v1/jobs/{id}",
        "GET /api/v1/audit",
        "GET /api/v1/schedules",
        "POST /api/v1/schedules",
        "POST /api/v1/schedules/preview",
        "GET /api/v1/schedules/{id}",
        "PATCH /api/v1/schedules/{id}",
        "DELETE /api/v1/schedules/{id}",
        "POST /api/v1/schedules/{id}/pause",
        "POST /api/v1/schedules/{id}/resume",
        "GET /api/v1/schedules/{id}/history",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    // Every documented route is served by a handler (an unknown route is a 404 saying there
    // is no such path, a known one with the wrong method a 405).
    let unknown = s
        .http
        .get(s.url("/api/v1/nope"))
        .bearer_auth(token("root"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let no_such_path = "in this API; GET /openapi.json lists every path";
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(no_such_path),
        "{body}"
    );
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{id}", "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d");
        let req = match method {
            "GET" => s.http.get(s.url(&path)),
            "POST" => s.http.post(s.url(&path)).json(&json!({})),
            "DELETE" => s.http.delete(s.url(&path)),
            "PATCH" => s.http.patch(s.url(&path)).json(&json!({})),
            other => panic!("undocumented method {other}"),
        };
        let r = req.bearer_auth(token("root")).send().await.unwrap();
        let status = r.status();
        let body = r.bytes().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{route}");
        assert!(
            !String::from_utf8_lossy(&body).contains(no_such_path),
            "{route} is documented but not routed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_can_be_deleted_by_those_allowed() {
    let s = Stack::new().await;
    s.ready().await;
    let job = s.run("alice", "echo", json!({"text": "bye"})).await;
    let id = job["job_id"].as_str().unwrap();
    let path = format!("/api/v1/jobs/{id}");
    let (status, body) = s.delete("bob", &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to alice")
    );
    let (status, body) = s.delete("carol", &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "carol has no delete: {body}");
    let (status, body) = s.delete("alice", &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], id);
    assert_eq!(s.get("alice", &path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.get("root", &format!("{path}/output")).await.0,
        StatusCode::NOT_FOUND
    );
    let mut c = s
        .topo
        .output_stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: s.ns.output_any(&id.parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        c.info().await.unwrap().num_pending,
        0,
        "the stored output is gone"
    );
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "jobs.delete" && e.actor.as_deref() == Some("alice") && e.allowed)
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "jobs.delete" && e.actor.as_deref() == Some("bob") && !e.allowed)
    );

    // A running job cannot be deleted.
    let dir = tempfile::tempdir().unwrap();
    let (_, job) = s
        .submit(
            "alice",
            "stubborn",
            json!({"dir": dir.path().display().to_string()}),
        )
        .await;
    let id = job["job_id"].as_str().unwrap();
    s.wait_started(id).await;
    let (status, body) = s.delete("root", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stop or cancel it first")
    );
    let (status, _) = s
        .post("root", &format!("/api/v1/jobs/{id}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.delete("root", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a super user deletes any finished job"
    );
}

/// Every error answer under `/api/v1`, the framework's own refusals included, is the
/// documented `{"error": {"code", "message"}}` with the status of its code and a message
/// that says what to do; each is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_of_the_api_is_the_documented_json() {
    let s = Stack::new().await;
    s.ready().await;
    let job = "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d";
    let big = "x".repeat(300 * 1024);
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str, &str)> = vec![
        (
            "a method the path does not take",
            s.http.put(s.url("/api/v1/jobs")).bearer_auth(token("root")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "PUT is not allowed on /api/v1/jobs",
        ),
        (
            "a path that does not exist",
            s.http.get(s.url("/api/v1/nope")).bearer_auth(token("root")),
            StatusCode::NOT_FOUND,
            "not_found",
            "GET /openapi.json lists every path",
        ),
        (
            "no token",
            s.http.get(s.url("/api/v1/jobs")),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization: Bearer",
        ),
        (
            "a path that does not exist, asked without a token",
            s.http.delete(s.url("/api/v1/nowhere")),
            StatusCode::NOT_FOUND,
            "not_found",
            "there is no DELETE /api/v1/nowhere",
        ),
        (
            "a body over max_body_bytes",
            s.http
                .post(s.url("/api/v1/jobs"))
                .bearer_auth(token("root"))
                .header("content-type", "application/json")
                .body(format!("{{\"command\": \"{big}\"}}")),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "raise [gateway] max_body_bytes",
        ),
        (
            "a query value of the wrong type",
            s.http
                .get(s.url(&format!("/api/v1/jobs/{job}/stream?from_seq=x")))
                .bearer_auth(token("root"))
                .header("accept", "text/event-stream"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "from_seq",
        ),
        (
            "an unknown query key",
            s.http
                .get(s.url("/api/v1/jobs?colour=red"))
                .bearer_auth(token("root")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "colour",
        ),
        (
            "an unknown output format",
            s.http
                .get(s.url(&format!("/api/v1/jobs/{job}/output?format=xml")))
                .bearer_auth(token("root")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use text or ndjson",
        ),
        (
            "a socket path without a WebSocket",
            s.http.get(s.url("/api/v1/ws")).bearer_auth(token("root")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "open it with a WebSocket client",
        ),
        (
            "a stream without a WebSocket or event stream",
            s.http
                .get(s.url(&format!("/api/v1/jobs/{job}/stream")))
                .bearer_auth(token("root")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Accept: text/event-stream",
        ),
        (
            "a schedule change that is not JSON",
            s.http
                .patch(s.url(&format!("/api/v1/schedules/{job}")))
                .bearer_auth(token("root"))
                .body("enabled=false"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send JSON like",
        ),
    ];
    for (what, req, status, code, says) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{what}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                r.headers().get("allow").is_some(),
                "{what}: no Allow header"
            );
        }
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ctype.starts_with("application/json"), "{what}: {ctype}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: {message}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{what}: {body}");
    }
    let audit = s.audit().await;
    assert!(
        audit.iter().any(|e| e.action == "unknown"
            && e.actor.is_none()
            && e.reason.contains("there is no DELETE /api/v1/nowhere")),
        "an unknown path asked without a token is audited, with no actor: {audit:?}"
    );
    for (action, says) in [
        ("unknown", "PUT is not allowed"),
        ("unknown", "there is no GET /api/v1/nope"),
        ("jobs.submit", "max_body_bytes"),
        ("jobs.stream", "from_seq"),
        ("jobs.list", "colour"),
        ("jobs.output", "use text or ndjson"),
        ("ws.connect", "WebSocket client"),
        ("schedules.update", "Send JSON like"),
    ] {
        assert!(
            audit.iter().any(|e| e.action == action
                && !e.allowed
                && e.actor.as_deref() == Some("root")
                && e.reason.contains(says)),
            "no malformed {action} entry saying '{says}' in {audit:?}"
        );
    }
}
