//! An HTTP client of a cluster's gateways as a careful user writes one: every gateway address
//! in a list, the next one tried at once when one cannot be reached, a 503 waited out (its
//! `Retry-After`, bounded), and an `Idempotency-Key` on every submit so a retry after an
//! unanswered request names the same job. It counts what it met.

#![allow(dead_code, clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one call keeps trying before the test fails.
const CALL_BOUND: Duration = Duration::from_secs(120);

/// What one call met before its answer.
#[derive(Debug, Clone, Default)]
pub struct Trouble {
    /// 503 answers.
    pub refused: u32,
    /// From the first 503 to the answer (zero when none).
    pub refused_for: Duration,
    /// Gateways that could not be reached (connection refused or reset, no answer).
    pub unreachable: u32,
    /// The `Retry-After` of the last 503, if it had one.
    pub retry_after: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    gateways: Vec<String>,
    token: String,
    next: AtomicUsize,
    /// Every 503 met: when, which gateway, the path.
    pub refusals: Mutex<Vec<(Instant, String, String)>>,
}

impl Client {
    pub fn new(gateways: Vec<String>, token: String) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            gateways,
            token,
            next: AtomicUsize::new(0),
            refusals: Mutex::new(Vec::new()),
        }
    }

    /// `method path` with `body`, on the gateways in turn, until an answer that is not a 503
    /// (bounded): its status and body, and what the call met.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, Value, Trouble) {
        let started = Instant::now();
        let mut trouble = Trouble::default();
        let mut first_refusal: Option<Instant> = None;
        loop {
            assert!(
                started.elapsed() < CALL_BOUND,
                "{method} {path}: no answer but 503s or unreachable gateways for {CALL_BOUND:?} ({trouble:?})"
            );
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.gateways.len();
            let base = &self.gateways[i];
            let mut req = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&self.token);
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(k) = idempotency_key {
                req = req.header("Idempotency-Key", k);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(_) => {
                    // this gateway is away: the next one, now (the short pause only keeps a
                    // client whose every gateway is away from spinning)
                    trouble.unreachable += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                let now = Instant::now();
                first_refusal.get_or_insert(now);
                trouble.refused += 1;
                trouble.retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                self.refusals
                    .lock()
                    .unwrap()
                    .push((now, base.clone(), path.to_string()));
                let pause = trouble
                    .retry_after
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map_or(Duration::from_millis(250), Duration::from_secs)
                    .min(Duration::from_secs(2));
                tokio::time::sleep(pause).await;
                continue;
            }
            let text = match resp.text().await {
                Ok(t) => t,
                Err(_) => {
                    trouble.unreachable += 1;
                    continue;
                }
            };
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if let Some(f) = first_refusal {
                trouble.refused_for = f.elapsed();
            }
            return (status, value, trouble);
        }
    }

    /// Submits `body` under a new idempotency key: the job's id and what the submit met.
    pub async fn submit(&self, body: &Value) -> (uuid::Uuid, Trouble) {
        let key = uuid::Uuid::new_v4().to_string();
        let (status, v, trouble) = self
            .call(Method::POST, "/api/v1/jobs", Some(body), Some(&key))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "submit {body}: {v}");
        let id = v["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no job_id in {v}"));
        (id.parse().unwrap(), trouble)
    }

    /// The job's record (`GET /api/v1/jobs/{id}`).
    pub async fn job(&self, id: uuid::Uuid) -> Value {
        let (status, v, _) = self
            .call(Method::GET, &format!("/api/v1/jobs/{id}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "job {id}: {v}");
        v
    }

    /// Waits (bounded) until job `id` is in a state `done` accepts; its record.
    pub async fn job_until(
        &self,
        id: uuid::Uuid,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.job(id).await;
            if done(v["state"].as_str().unwrap_or_default()) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {} after {within:?}: {v}",
                v["state"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether `state` is one a job ends in.
pub fn terminal(state: &str) -> bool {
    !matches!(state, "queued" | "running" | "")
}
