//! The NATS request API: `tw.api.<verb>`, served by the gateways' queue group with exactly
//! the same authentication, ACL and audit as HTTP (the same operations of `crate::ops`).
//! The token travels in an `Authorization: Bearer` header of the request message; the
//! payload is the verb's JSON input (`docs/protocol.md` lists them). Any service or script can
//! drive taskwire by publishing to NATS.
//!
//! Replies are `wire::api::NatsReply`: `{"ok": <answer>}` or `{"error": {"code", "message"}}`.

use crate::auth::Credentials;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use crate::ids::IdempotencyKey;
use crate::ops;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use taskwire_core::serve::Responder;
use taskwire_core::wire::KillMode;
use taskwire_core::wire::api::{JobIdRef, NatsReply, ScheduleInput};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Queue group shared by every gateway, so each request is answered once.
pub const QUEUE_GROUP: &str = "taskwire-gateway";

/// Every verb, as the unknown-verb answer lists them.
const VERBS: &str = "jobs.submit, jobs.get, jobs.list, jobs.stop, jobs.kill, audit.list, commands.list, instances.list or schedules.list|create|get|update|delete|pause|resume|history|preview";

/// Serves `tw.api.>` until `stop`.
pub async fn serve(gw: Arc<Gateway>, stop: CancellationToken) -> taskwire_core::Result<Responder> {
    let client = gw.client.clone();
    let prefix = gw.ns.api("");
    taskwire_core::serve::respond(&client, gw.ns.api_all(), QUEUE_GROUP, stop, move |msg| {
        let gw = gw.clone();
        let prefix = prefix.clone();
        async move {
            let verb = msg
                .subject
                .as_str()
                .strip_prefix(&prefix)
                .unwrap_or("")
                .to_string();
            let header = |name: &str| {
                msg.headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_string())
            };
            let request = Request {
                gw: &gw,
                caller: Caller::nats(),
                creds: Credentials::from_authorization(header("Authorization").as_deref()),
                idempotency_key: header("Idempotency-Key"),
                payload: &msg.payload,
            };
            Some(request.answer(&verb).await)
        }
    })
    .await
}

/// One request of the NATS API.
struct Request<'a> {
    gw: &'a Gateway,
    caller: Caller,
    creds: Credentials,
    idempotency_key: Option<String>,
    payload: &'a [u8],
}

/// A reply as bytes.
fn reply<T: Serialize>(answer: Result<T, ApiError>) -> Bytes {
    let r = match answer {
        Ok(v) => NatsReply::Ok(v),
        Err(e) => NatsReply::Error(e.detail()),
    };
    serde_json::to_vec(&r).unwrap_or_default().into()
}

impl Request<'_> {
    async fn who(&self, action: Action) -> Result<Principal, ApiError> {
        self.gw
            .authenticate(&self.creds, &self.caller, action)
            .await
    }

    async fn malformed(&self, who: &Principal, action: Action, msg: String) -> ApiError {
        self.gw
            .malformed(
                Some(&who.user),
                action,
                ApiError::invalid(msg),
                &self.caller,
            )
            .await
    }

    /// The payload as `T`; `expected` says what to send when it is not.
    async fn input<T: DeserializeOwned>(
        &self,
        who: &Principal,
        action: Action,
        expected: &str,
    ) -> Result<T, ApiError> {
        match serde_json::from_slice(self.payload) {
            Ok(v) => Ok(v),
            Err(e) => Err(self
                .malformed(who, action, format!("expected {expected}: {e}"))
                .await),
        }
    }

    /// `{"job_id": "<uuid>"}`.
    async fn job_id(&self, who: &Principal, action: Action) -> Result<Uuid, ApiError> {
        let r: JobIdRef = self.input(who, action, r#"{"job_id": "<uuid>"}"#).await?;
        match Uuid::parse_str(&r.job_id) {
            Ok(id) => Ok(id),
            Err(_) => {
                let text: String = r.job_id.chars().take(64).collect();
                Err(self
                    .malformed(who, action, format!("'{text}' is not a job id (a UUID)"))
                    .await)
            }
        }
    }

    /// `{"schedule_id": "<uuid>", ...the verb's other fields}`: the id, and the rest.
    async fn schedule_ref(
        &self,
        who: &Principal,
        action: Action,
    ) -> Result<(Uuid, Value), ApiError> {
        let expected = r#"{"schedule_id": "<uuid>"}"#;
        let mut v: Value = self.input(who, action, expected).await?;
        let id = v
            .as_object_mut()
            .and_then(|o| o.remove("schedule_id"))
            .and_then(|i| i.as_str().and_then(|s| Uuid::parse_str(s).ok()));
        match id {
            Some(id) => Ok((id, v)),
            None => Err(self
                .malformed(who, action, format!("expected {expected} with a UUID"))
                .await),
        }
    }

    /// The rest of a schedule request as `T`.
    async fn rest<T: DeserializeOwned>(
        &self,
        who: &Principal,
        action: Action,
        rest: Value,
        what: &str,
    ) -> Result<T, ApiError> {
        match serde_json::from_value(rest) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.malformed(who, action, format!("{what}: {e}")).await),
        }
    }

    async fn answer(&self, verb: &str) -> Bytes {
        let (gw, caller) = (self.gw, &self.caller);
        match verb {
            "jobs.submit" => {
                let action = Action::JobsSubmit;
                reply(
                    async {
                        let who = self.who(action).await?;
                        let req = self
                            .input(&who, action, taskwire_core::wire::api::jobs::SUBMIT_EXAMPLE)
                            .await?;
                        let key = match &self.idempotency_key {
                            None => None,
                            Some(k) => match IdempotencyKey::parse(k.as_bytes()) {
                                Ok(k) => Some(k),
                                Err(m) => return Err(self.malformed(&who, action, m).await),
                            },
                        };
                        ops::jobs::submit(gw, &who, caller, req, key).await
                    }
                    .await,
                )
            }
            "jobs.get" => {
                let action = Action::JobsGet;
                reply(
                    async {
                        let who = self.who(action).await?;
                        let id = self.job_id(&who, action).await?;
                        ops::jobs::get(gw, &who, caller, id).await
                    }
                    .await,
                )
            }
            "jobs.stop" | "jobs.kill" => {
                let (action, mode) = if verb == "jobs.stop" {
                    (Action::JobsStop, KillMode::Stop)
                } else {
                    (Action::JobsKill, KillMode::Kill)
                };
                reply(
                    async {
                        let who = self.who(action).await?;
                        let id = self.job_id(&who, action).await?;
                        ops::control::end(gw, &who, caller, id, mode).await
                    }
                    .await,
                )
            }
            "jobs.list" => {
                let action = Action::JobsList;
                reply(
                    async {
                        let who = self.who(action).await?;
                        let filter = self
                            .input(&who, action, "the filters of GET /api/v1/jobs")
                            .await?;
                        ops::jobs::list(gw, &who, caller, filter).await
                    }
                    .await,
                )
            }
            "audit.list" => {
                let action = Action::AuditList;
                reply(
                    async {
                        let who = self.who(action).await?;
                        let filter = self
                            .input(&who, action, "the filters of GET /api/v1/audit")
                            .await?;
                        ops::audit_log::list(gw, &who, caller, filter).await
                    }
                    .await,
                )
            }
            "commands.list" => reply(
                async {
                    let who = self.who(Action::CommandsList).await?;
                    ops::fleet::commands(gw, &who, caller).await
                }
                .await,
            ),
            "instances.list" => reply(
                async {
                    let who = self.who(Action::InstancesList).await?;
                    ops::fleet::instances(gw, &who, caller).await
                }
                .await,
            ),
            "schedules.list" => reply(
                async {
                    let who = self.who(Action::SchedulesList).await?;
                    ops::schedules::list(gw, &who, caller).await
                }
                .await,
            ),
            "schedules.create" => {
                let action = Action::SchedulesCreate;
                reply(
                    async {
                        let who = self.who(action).await?;
                        let input = self
                            .input(
                                &who,
                                action,
                                taskwire_core::wire::api::schedules::SCHEDULE_EXAMPLE,
                            )
                            .await?;
                        ops::schedules::create(gw, &who, caller, input).await
                    }
                    .await,
                )
            }
            "schedules.preview" => {
                let action = Action::SchedulesPreview;
                reply(
                    async {
                        let who = self.who(action).await?;
                        let input: ScheduleInput = self
                            .input(
                                &who,
                                action,
                                taskwire_core::wire::api::schedules::TIMING_EXAMPLE,
                            )
                            .await?;
                        ops::schedules::preview(&input)
                    }
                    .await,
                )
            }
            "schedules.get" => self.on_schedule(Action::SchedulesGet).await,
            "schedules.update" => self.on_schedule(Action::SchedulesUpdate).await,
            "schedules.delete" => self.on_schedule(Action::SchedulesDelete).await,
            "schedules.pause" => self.on_schedule(Action::SchedulesPause).await,
            "schedules.resume" => self.on_schedule(Action::SchedulesResume).await,
            "schedules.history" => self.on_schedule(Action::SchedulesHistory).await,
            other => reply::<()>(self.unknown(other).await),
        }
    }

    /// A verb about one schedule: `{"schedule_id": ..., ...}`.
    async fn on_schedule(&self, action: Action) -> Bytes {
        let (gw, caller) = (self.gw, &self.caller);
        let who = match self.who(action).await {
            Ok(w) => w,
            Err(e) => return reply::<()>(Err(e)),
        };
        let (id, rest) = match self.schedule_ref(&who, action).await {
            Ok(x) => x,
            Err(e) => return reply::<()>(Err(e)),
        };
        match action {
            Action::SchedulesGet => reply(ops::schedules::get(gw, &who, caller, id).await),
            Action::SchedulesDelete => reply(ops::schedules::delete(gw, &who, caller, id).await),
            Action::SchedulesPause => {
                reply(ops::schedules::set_enabled(gw, &who, caller, id, false).await)
            }
            Action::SchedulesResume => {
                reply(ops::schedules::set_enabled(gw, &who, caller, id, true).await)
            }
            Action::SchedulesHistory => reply(
                async {
                    let q = self
                        .rest(
                            &who,
                            action,
                            rest,
                            "history takes schedule_id, since and limit",
                        )
                        .await?;
                    ops::schedules::history(gw, &who, caller, id, q).await
                }
                .await,
            ),
            _ => reply(
                async {
                    let input = self
                        .rest(&who, action, rest, "the change is not valid")
                        .await?;
                    ops::schedules::update(gw, &who, caller, id, input).await
                }
                .await,
            ),
        }
    }

    /// A verb the API does not have: audited as `unknown`, answered 404 with the verbs.
    async fn unknown(&self, verb: &str) -> Result<(), ApiError> {
        let who = self.gw.auth.authenticate(&self.creds, self.caller.ip).ok();
        let text: String = verb.chars().take(64).collect();
        let e = ApiError::new(
            ErrorCode::NotFound,
            format!("'{text}' is not a verb of the NATS API; use {VERBS}"),
        );
        Err(self
            .gw
            .malformed(
                who.as_ref().map(|w| w.user.as_str()),
                Action::Unknown,
                e,
                &self.caller,
            )
            .await)
    }
}
