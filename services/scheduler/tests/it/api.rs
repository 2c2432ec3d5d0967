//! The schedule API: create, read, change, pause and resume, delete, previews, validation
//! and permissions, over HTTP and the NATS API.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_managed_by_their_owner_and_checked_on_the_way_in() {
    let s = Stack::new().await;
    let v = s
        .schedule(
            "alice",
            json!({"name": "nightly", "command": "tick", "kind": "cron", "cron": "0 30 2 * * *", "time_zone": "Europe/Berlin"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["owner"], "alice");
    assert_eq!(v["state"], "active");
    let next = v["next_fires"].as_array().unwrap();
    assert_eq!(next.len(), 5);
    // 02:30 in Berlin is 00:30 or 01:30 UTC.
    for n in next {
        let t = n.as_str().unwrap();
        assert!(t.contains("T00:30:00") || t.contains("T01:30:00"), "{t}");
    }

    // Bad input says what is wrong.
    for (body, says) in [
        (
            json!({"command": "tick", "kind": "cron", "cron": "0 61 * * * *"}),
            "minute field: 61 is outside 0-59",
        ),
        (
            json!({"command": "tick", "kind": "cron", "cron": "* * * * * *", "time_zone": "Mars/Base"}),
            "IANA",
        ),
        (json!({"command": "tick"}), "say when it fires"),
        (
            json!({"command": "tick", "kind": "once", "at": "2001-01-01T00:00:00Z"}),
            "already passed",
        ),
        (
            json!({"command": "tick", "kind": "interval", "every": "10ms"}),
            "at least 1s",
        ),
        (
            json!({"command": "tick", "kind": "weekly"}),
            "kind 'weekly' is not known",
        ),
        (
            json!({"command": "tick", "kind": "interval", "every": "1m", "surprise": 1}),
            "unknown field",
        ),
    ] {
        let (status, e) = s.post("alice", "/api/v1/schedules", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{body}: {msg}");
    }
    // A command the owner may not run cannot be scheduled; nor may a user without the verb.
    let (status, _) = s
        .post(
            "dave",
            "/api/v1/schedules",
            json!({"command": "tick", "kind": "interval", "every": "1m"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Change, pause, resume.
    let (status, v) = s
        .patch(
            "alice",
            &format!("/api/v1/schedules/{id}"),
            json!({"cron": "0 0 * * * *", "overlap": "queue"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["cron"], "0 0 * * * *");
    assert_eq!(v["time_zone"], "Europe/Berlin", "unchanged fields stay");
    assert_eq!(v["overlap"], "queue");
    let (_, v) = s
        .post("alice", &format!("/api/v1/schedules/{id}/pause"), json!({}))
        .await;
    assert_eq!(v["state"], "paused");
    assert!(v["next_fires"].as_array().unwrap().is_empty());
    let (_, v) = s
        .post(
            "alice",
            &format!("/api/v1/schedules/{id}/resume"),
            json!({}),
        )
        .await;
    assert_eq!(v["state"], "active");

    // Only the owner (or a super user) sees and manages it.
    let (_, list) = s.get("alice", "/api/v1/schedules").await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
    let (status, _) = s.get("dave", &format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.get("root", &format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, StatusCode::OK);

    // Preview without saving.
    let (status, p) = s
        .post(
            "dave",
            "/api/v1/schedules/preview",
            json!({"kind": "interval", "every": "90s"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["next_fires"].as_array().unwrap().len(), 10);

    // The NATS API reaches the same operations.
    let client = s.admin_client("api-test").await;
    let ask = |verb: &'static str, body: Value| {
        let client = client.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert(
                "Authorization",
                format!("Bearer {}", token("alice")).as_str(),
            );
            let m = tokio::time::timeout(
                Duration::from_secs(10),
                client.request_with_headers(format!("tw.api.{verb}"), h, body.to_string().into()),
            )
            .await
            .unwrap()
            .unwrap();
            serde_json::from_slice::<Value>(&m.payload).unwrap()
        }
    };
    let got = ask("schedules.get", json!({"schedule_id": id})).await;
    assert_eq!(got["ok"]["id"], Value::from(id.clone()), "{got}");
    let list = ask("schedules.list", json!({})).await;
    assert_eq!(list["ok"]["schedules"].as_array().unwrap().len(), 1);
    let hist = ask("schedules.history", json!({"schedule_id": id})).await;
    assert!(hist["ok"]["fires"].as_array().unwrap().is_empty(), "{hist}");
    let gone = ask("schedules.delete", json!({"schedule_id": id})).await;
    assert_eq!(gone["ok"]["deleted"], Value::from(id.clone()));
    let (status, _) = s.get("alice", &format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
