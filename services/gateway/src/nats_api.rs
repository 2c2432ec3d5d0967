//! The NATS request API: `tw.api.jobs.submit`, `tw.api.jobs.get`, `tw.api.jobs.stop`,
//! `tw.api.jobs.kill`, `tw.api.commands.list` and `tw.api.instances.list`, served by the gateways' queue group with exactly the same
//! authentication, ACL and audit as HTTP. The token travels in an `Authorization: Bearer`
//! header of the request message. Any service or script can drive taskwire by publishing to
//! NATS.
//!
//! Replies are JSON: `{"ok": <answer>}` or `{"error": {"code": "...", "message": "..."}}`.

use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, Caller};
use axum::http::{HeaderMap, HeaderValue};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use taskwire_core::wire::Via;
use tokio_util::sync::CancellationToken;

/// Queue group shared by every gateway, so each request is answered once.
pub const QUEUE_GROUP: &str = "taskwire-gateway";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRef {
    job_id: String,
}

/// Serves requests until `stop`.
pub async fn serve(st: AppState, stop: CancellationToken) {
    let subject = st.ns.api_all();
    let mut sub = match st
        .client
        .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%subject, error = %e, "cannot serve the NATS API");
            return;
        }
    };
    let prefix = st.ns.api("");
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = stop.cancelled() => break,
        };
        let st = st.clone();
        let prefix = prefix.clone();
        tokio::spawn(async move {
            let Some(reply) = msg.reply.clone() else {
                return;
            };
            let verb = msg
                .subject
                .as_str()
                .strip_prefix(&prefix)
                .unwrap_or("")
                .to_string();
            let answer = match handle(&st, &verb, &msg).await {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "error": { "code": e.code, "message": e.message } }),
            };
            if let Err(e) = st.client.publish(reply, answer.to_string().into()).await {
                tracing::warn!(error = %e, "cannot answer a NATS API request");
            }
        });
    }
    let _ = sub.unsubscribe().await;
}

async fn handle(st: &AppState, verb: &str, msg: &async_nats::Message) -> Result<Value, ApiError> {
    let caller = Caller {
        source: "nats".into(),
        ip: None,
        via: Via::Nats,
    };
    let mut headers = HeaderMap::new();
    if let Some(h) = &msg.headers {
        for name in ["Authorization", "Idempotency-Key"] {
            if let Some(v) = h.get(name)
                && let Ok(v) = HeaderValue::from_str(v.as_str())
            {
                headers.insert(name, v);
            }
        }
    }
    let encode = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| ApiError::internal("encoding the answer", e))
    };
    match verb {
        "jobs.submit" => crate::routes::jobs::submit_as(st, &headers, &caller, &msg.payload).await,
        "jobs.get" => {
            let who = st.authenticate(&headers, &caller, "jobs.get").await?;
            let r: JobRef = match serde_json::from_slice(&msg.payload) {
                Ok(r) => r,
                Err(e) => {
                    let m = format!("expected {{\"job_id\": \"<uuid>\"}}: {e}");
                    st.audit_malformed(Some(&who.user), "jobs.get", &m, &caller)
                        .await?;
                    return Err(ApiError::new(ErrorCode::InvalidRequest, m));
                }
            };
            if let Some(v) =
                crate::routes::jobs::scheduled(st, &headers, &caller, &r.job_id).await?
            {
                return Ok(v);
            }
            let rec =
                crate::routes::jobs::load_job(st, &headers, &caller, "jobs.get", &r.job_id).await?;
            encode(serde_json::to_value(rec))
        }
        "jobs.stop" | "jobs.kill" => {
            let who = st.authenticate(&headers, &caller, verb).await?;
            let r: JobRef = match serde_json::from_slice(&msg.payload) {
                Ok(r) => r,
                Err(e) => {
                    let m = format!("expected {{\"job_id\": \"<uuid>\"}}: {e}");
                    st.audit_malformed(Some(&who.user), verb, &m, &caller)
                        .await?;
                    return Err(ApiError::new(ErrorCode::InvalidRequest, m));
                }
            };
            let mode = if verb == "jobs.stop" {
                taskwire_core::wire::KillMode::Stop
            } else {
                taskwire_core::wire::KillMode::Kill
            };
            crate::routes::control::end_as(st, &headers, &caller, &r.job_id, mode).await
        }
        "commands.list" => {
            let list = crate::routes::commands::list_as(st, &headers, &caller).await?;
            encode(serde_json::to_value(list))
        }
        "instances.list" => {
            st.authorize(
                &headers,
                &caller,
                "instances.list",
                None,
                crate::acl::Permission::ReadInstances,
            )
            .await?;
            encode(serde_json::to_value(
                crate::routes::system::registry(st).await?,
            ))
        }
        "jobs.list" => {
            let q = serde_json::from_slice(&msg.payload).map_err(|e| e.to_string());
            let list = crate::routes::jobs::list_as(st, &headers, &caller, q).await?;
            encode(serde_json::to_value(list))
        }
        "audit.list" => {
            let q = serde_json::from_slice(&msg.payload).map_err(|e| e.to_string());
            let page = crate::routes::audit::list_as(st, &headers, &caller, q).await?;
            encode(serde_json::to_value(page))
        }
        "schedules.list" => crate::routes::schedules::list_as(st, &headers, &caller).await,
        "schedules.create" => {
            crate::routes::schedules::create_as(st, &headers, &caller, &msg.payload).await
        }
        "schedules.preview" => {
            crate::routes::schedules::preview_as(st, &headers, &caller, &msg.payload).await
        }
        "schedules.get" | "schedules.update" | "schedules.delete" | "schedules.pause"
        | "schedules.resume" | "schedules.history" => {
            use crate::routes::schedules as sch;
            let (id, rest) = match schedule_ref(&msg.payload) {
                Ok(x) => x,
                Err(m) => {
                    let who = st.authenticate(&headers, &caller, verb).await?;
                    st.audit_malformed(Some(&who.user), verb, &m, &caller)
                        .await?;
                    return Err(ApiError::new(ErrorCode::InvalidRequest, m));
                }
            };
            match verb {
                "schedules.get" => sch::get_as(st, &headers, &caller, &id).await,
                "schedules.update" => {
                    let body = serde_json::to_vec(&rest).unwrap_or_default();
                    sch::update_as(st, &headers, &caller, &id, &body).await
                }
                "schedules.delete" => sch::delete_as(st, &headers, &caller, &id).await,
                "schedules.pause" => sch::set_enabled_as(st, &headers, &caller, &id, false).await,
                "schedules.resume" => sch::set_enabled_as(st, &headers, &caller, &id, true).await,
                _ => {
                    let q: sch::HistoryQuery = serde_json::from_value(rest).map_err(|e| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            format!("history takes schedule_id, since and limit: {e}"),
                        )
                    })?;
                    sch::history_as(st, &headers, &caller, &id, &q).await
                }
            }
        }
        other => {
            let who = st.authenticate(&headers, &caller, other).await.ok();
            let m = format!(
                "'{}' is not a verb of the NATS API; use jobs.submit, jobs.get, jobs.list, jobs.stop, jobs.kill, audit.list, commands.list, instances.list or schedules.list|create|get|update|delete|pause|resume|history|preview",
                other.chars().take(64).collect::<String>()
            );
            st.audit_malformed(who.as_ref().map(|w| w.user.as_str()), other, &m, &caller)
                .await?;
            Err(ApiError::new(ErrorCode::NotFound, m))
        }
    }
}

/// `{"schedule_id": "<uuid>", ...}`: the id, and the other fields.
fn schedule_ref(payload: &[u8]) -> Result<(String, Value), String> {
    let mut v: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("expected {{\"schedule_id\": \"<uuid>\"}}: {e}"))?;
    let id = v
        .as_object_mut()
        .and_then(|o| o.remove("schedule_id"))
        .and_then(|i| i.as_str().map(str::to_string))
        .ok_or_else(|| "expected {\"schedule_id\": \"<uuid>\"}".to_string())?;
    Ok((id, v))
}
