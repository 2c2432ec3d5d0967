//! The stack's public HTTP API, used as a test user would: each helper sends the user's
//! token ([`crate::token`]) and returns the status with the JSON body.

use crate::stack::Stack;
use crate::users::token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a job may take to reach the state a helper waits for.
const JOB_WAIT: Duration = Duration::from_secs(30);

impl Stack {
    /// The gateway's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `method path` as `user`, with `body` as JSON when given.
    pub async fn send(
        &self,
        method: Method,
        user: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token(user));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("the gateway did not answer {path}: {e}"));
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, user: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, user, path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, user, path, Some(body)).await
    }

    pub async fn patch(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, user, path, Some(body)).await
    }

    pub async fn delete(&self, user: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, user, path, None).await
    }

    /// The body of a GET as bytes (output endpoints).
    pub async fn bytes(&self, user: &str, path: &str) -> bytes::Bytes {
        self.http
            .get(self.url(path))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the gateway did not answer {path}: {e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("the body of {path} was cut: {e}"))
    }

    /// Submits `command` with `params` as `user` (`POST /api/v1/jobs`).
    pub async fn submit(&self, user: &str, command: &str, params: Value) -> (StatusCode, Value) {
        self.post(
            user,
            "/api/v1/jobs",
            json!({"command": command, "params": params}),
        )
        .await
    }

    /// Submits as `user` and waits for the job to end; returns its final record.
    pub async fn run(&self, user: &str, command: &str, params: Value) -> Value {
        let (status, body) = self.submit(user, command, params).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let job = body["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a submit answer names its job: {body}"))
            .to_string();
        self.wait_final(user, &job).await
    }

    /// The record of `job` as `user` reads it, once it is in `pred`'s state.
    pub async fn wait_job(
        &self,
        user: &str,
        job: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + JOB_WAIT;
        loop {
            let (status, body) = self.get(user, &format!("/api/v1/jobs/{job}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if pred(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} never {what}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Waits for `job` to end (any state but queued, running, scheduled); its final record.
    pub async fn wait_final(&self, user: &str, job: &str) -> Value {
        self.wait_job(user, job, "ended", |b| {
            !["queued", "running", "scheduled"].contains(&b["state"].as_str().unwrap_or(""))
        })
        .await
    }

    /// Waits for `job` to leave the queue (running, or already ended); its record.
    pub async fn wait_started(&self, job: &str) -> Value {
        self.wait_job("root", job, "started", |b| b["state"] != "queued")
            .await
    }

    /// The whole log of `job` as `user` downloads it.
    pub async fn output(&self, user: &str, job: &str) -> Vec<u8> {
        self.bytes(user, &format!("/api/v1/jobs/{job}/output"))
            .await
            .to_vec()
    }

    /// Waits until the gateway's registry lists every executor of the stack (the gateway
    /// reads it to route jobs).
    pub async fn ready(&self) {
        let want: Vec<String> = self.executors.iter().map(|e| e.guid.to_string()).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (s, body) = self.get("root", "/api/v1/instances").await;
            let listed: Vec<&str> = body
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["guid"].as_str()).collect())
                .unwrap_or_default();
            let all = if want.is_empty() {
                !listed.is_empty()
            } else {
                want.iter().all(|g| listed.contains(&g.as_str()))
            };
            if s == StatusCode::OK && all {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the gateway never listed the instances {want:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
