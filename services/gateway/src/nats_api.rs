//! The NATS request API: `tw.api.<verb>`, served by the gateways' queue group with exactly
//! the same authentication, ACL and audit as HTTP (the same operations of `crate::ops`).
//! The token travels in an `Authorization: Bearer` header of the request message; the
//! payload is the verb's JSON input (`docs/protocol.md` lists them). Any service or script can
//! drive taskwire by publishing to NATS.
//!
//! Replies are `wire::api::NatsReply`: `{"ok": <answer>}` or `{"error": {"code", "message"}}`.
//! One verb answers with many messages: `jobs.follow` sends a job's output to the request's
//! reply subject (`nats_follow`), after the same checks as every other verb.

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
use taskwire_core::wire::api::direct::FollowRequest;
use taskwire_core::wire::api::{JobIdRef, NatsReply, ScheduleInput};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Queue group shared by every gateway, so each request is answered once.
pub const QUEUE_GROUP: &str = "taskwire-gateway";

/// The verbs and the action each is (every other verb is `unknown`).
const VERB_ACTIONS: [(&str, Action); 19] = [
    ("me", Action::Me),
    ("jobs.submit", Action::JobsSubmit),
    ("jobs.follow", Action::JobsFollow),
    ("jobs.get", Action::JobsGet),
    ("jobs.list", Action::JobsList),
    ("jobs.stop", Action::JobsStop),
    ("jobs.kill", Action::JobsKill),
    ("audit.list", Action::AuditList),
    ("commands.list", Action::CommandsList),
    ("instances.list", Action::InstancesList),
    ("schedules.list", Action::SchedulesList),
    ("schedules.create", Action::SchedulesCreate),
    ("schedules.get", Action::SchedulesGet),
    ("schedules.update", Action::SchedulesUpdate),
    ("schedules.delete", Action::SchedulesDelete),
    ("schedules.pause", Action::SchedulesPause),
    ("schedules.resume", Action::SchedulesResume),
    ("schedules.history", Action::SchedulesHistory),
    ("schedules.preview", Action::SchedulesPreview),
];

/// What a follow request's body looks like.
const FOLLOW_EXAMPLE: &str = r#"{"job_id": "<uuid>", "from_seq": 1}"#;

/// Serves `tw.api.>` until `stop`.
pub async fn serve(gw: Arc<Gateway>, stop: CancellationToken) -> taskwire_core::Result<Responder> {
    let client = gw.client.clone();
    let prefix = gw.ns.api("");
    let follows = stop.clone();
    taskwire_core::serve::respond(&client, gw.ns.api_all(), QUEUE_GROUP, stop, move |msg| {
        let gw = gw.clone();
        let prefix = prefix.clone();
        let follows = follows.clone();
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
            if verb == Action::JobsFollow.as_str() {
                let reply = msg.reply.clone()?;
                // The follow streams many messages: to the caller's own inbox only (a direct
                // client's is bound to its token), never to a subject of its choosing.
                if !own_inbox(&request.creds, &reply) {
                    tracing::warn!(%reply, "a follow whose reply subject is not the caller's inbox: not answered");
                    return None;
                }
                return request.follow(&gw, reply, follows).await;
            }
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

/// A document as JSON, for answers of different types in one place.
fn to_value(v: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal("encoding the answer", e))
}

/// Whether `reply` is under the caller's own inbox: a service identity's, or the inbox the
/// auth callout binds to the caller's token.
fn own_inbox(creds: &Credentials, reply: &str) -> bool {
    let direct = creds.token().is_some_and(|token| {
        reply.starts_with(&format!(
            "{}.",
            taskwire_core::auth::direct::inbox_prefix(token)
        ))
    });
    direct || taskwire_core::auth::roles::is_service_inbox(reply)
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
        self.parse_job_id(who, action, &r.job_id).await
    }

    /// A job id as the caller wrote it.
    async fn parse_job_id(
        &self,
        who: &Principal,
        action: Action,
        text: &str,
    ) -> Result<Uuid, ApiError> {
        match Uuid::parse_str(text) {
            Ok(id) => Ok(id),
            Err(_) => {
                let text: String = text.chars().take(64).collect();
                Err(self
                    .malformed(who, action, format!("'{text}' is not a job id (a UUID)"))
                    .await)
            }
        }
    }

    /// `jobs.follow`: authenticates, reads `{"job_id", "from_seq"}`, checks the caller may
    /// read the job, then streams its output to `reply` (see `nats_follow`). A refusal is the
    /// one reply. Always `None`: the follow publishes its own messages.
    async fn follow(
        &self,
        gw: &Arc<Gateway>,
        reply: async_nats::Subject,
        stop: CancellationToken,
    ) -> Option<Bytes> {
        let action = Action::JobsFollow;
        let opened = async {
            let who = self.who(action).await?;
            let r: FollowRequest = self.input(&who, action, FOLLOW_EXAMPLE).await?;
            let id = self.parse_job_id(&who, action, &r.job_id).await?;
            let feed = ops::follow::open(gw, &who, &self.caller, id).await?;
            Ok::<_, ApiError>((feed, r.from_seq.unwrap_or(1).max(1)))
        }
        .await;
        match opened {
            Ok((feed, from_seq)) => {
                let delivery = crate::nats_follow::Delivery {
                    gw: gw.clone(),
                    creds: self.creds.clone(),
                    caller: self.caller.clone(),
                    feed,
                    from_seq,
                    reply,
                };
                delivery.run(stop).await;
            }
            Err(e) => {
                let _ = gw.client.publish(reply, self::reply::<()>(Err(e))).await;
            }
        }
        None
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

    /// Authenticates for `action`, then answers what `op` does as the caller.
    async fn as_caller<T: Serialize>(
        &self,
        action: Action,
        op: impl AsyncFnOnce(Principal) -> Result<T, ApiError>,
    ) -> Bytes {
        reply(
            async {
                let who = self.who(action).await?;
                op(who).await
            }
            .await,
        )
    }

    async fn answer(&self, verb: &str) -> Bytes {
        use taskwire_core::wire::api::jobs::SUBMIT_EXAMPLE;
        use taskwire_core::wire::api::schedules::{SCHEDULE_EXAMPLE, TIMING_EXAMPLE};
        let (gw, caller) = (self.gw, &self.caller);
        let Some(action) = VERB_ACTIONS
            .iter()
            .find(|(v, _)| *v == verb)
            .map(|(_, a)| *a)
        else {
            return reply::<()>(self.unknown(verb).await);
        };
        match action {
            Action::Me => {
                self.as_caller(action, async |who| Ok(ops::fleet::me(gw, &who)))
                    .await
            }
            Action::JobsSubmit => {
                self.as_caller(action, async |who| {
                    let req = self.input(&who, action, SUBMIT_EXAMPLE).await?;
                    let key = match &self.idempotency_key {
                        None => None,
                        Some(k) => match IdempotencyKey::parse(k.as_bytes()) {
                            Ok(k) => Some(k),
                            Err(m) => return Err(self.malformed(&who, action, m).await),
                        },
                    };
                    ops::jobs::submit(gw, &who, caller, req, key).await
                })
                .await
            }
            Action::JobsGet => {
                self.as_caller(action, async |who| {
                    let id = self.job_id(&who, action).await?;
                    ops::jobs::get(gw, &who, caller, id).await
                })
                .await
            }
            Action::JobsStop | Action::JobsKill => {
                let mode = if action == Action::JobsStop {
                    KillMode::Stop
                } else {
                    KillMode::Kill
                };
                self.as_caller(action, async |who| {
                    let id = self.job_id(&who, action).await?;
                    ops::control::end(gw, &who, caller, id, mode).await
                })
                .await
            }
            Action::JobsList => {
                self.as_caller(action, async |who| {
                    let filter = self
                        .input(&who, action, "the filters of GET /api/v1/jobs")
                        .await?;
                    ops::jobs::list(gw, &who, caller, filter).await
                })
                .await
            }
            Action::AuditList => {
                self.as_caller(action, async |who| {
                    let filter = self
                        .input(&who, action, "the filters of GET /api/v1/audit")
                        .await?;
                    ops::audit_log::list(gw, &who, caller, filter).await
                })
                .await
            }
            Action::CommandsList => {
                self.as_caller(action, async |who| {
                    ops::fleet::commands(gw, &who, caller).await
                })
                .await
            }
            Action::InstancesList => {
                self.as_caller(action, async |who| {
                    ops::fleet::instances(gw, &who, caller).await
                })
                .await
            }
            Action::SchedulesList => {
                self.as_caller(action, async |who| {
                    ops::schedules::list(gw, &who, caller).await
                })
                .await
            }
            Action::SchedulesCreate => {
                self.as_caller(action, async |who| {
                    let input = self.input(&who, action, SCHEDULE_EXAMPLE).await?;
                    ops::schedules::create(gw, &who, caller, input).await
                })
                .await
            }
            Action::SchedulesPreview => {
                self.as_caller(action, async |who| {
                    let input: ScheduleInput = self.input(&who, action, TIMING_EXAMPLE).await?;
                    ops::schedules::preview(&input)
                })
                .await
            }
            Action::SchedulesGet
            | Action::SchedulesUpdate
            | Action::SchedulesDelete
            | Action::SchedulesPause
            | Action::SchedulesResume
            | Action::SchedulesHistory => self.on_schedule(action).await,
            _ => reply::<()>(self.unknown(verb).await),
        }
    }

    /// A verb about one schedule: `{"schedule_id": ..., ...}`.
    async fn on_schedule(&self, action: Action) -> Bytes {
        let (gw, caller) = (self.gw, &self.caller);
        self.as_caller(action, async |who| {
            let (id, rest) = self.schedule_ref(&who, action).await?;
            match action {
                Action::SchedulesGet => to_value(ops::schedules::get(gw, &who, caller, id).await?),
                Action::SchedulesDelete => {
                    to_value(ops::schedules::delete(gw, &who, caller, id).await?)
                }
                Action::SchedulesPause | Action::SchedulesResume => {
                    let enabled = action == Action::SchedulesResume;
                    to_value(ops::schedules::set_enabled(gw, &who, caller, id, enabled).await?)
                }
                Action::SchedulesHistory => {
                    let q = self
                        .rest(
                            &who,
                            action,
                            rest,
                            "history takes schedule_id, since and limit",
                        )
                        .await?;
                    to_value(ops::schedules::history(gw, &who, caller, id, q).await?)
                }
                Action::SchedulesUpdate => {
                    let input = self
                        .rest(&who, action, rest, "the change is not valid")
                        .await?;
                    to_value(ops::schedules::update(gw, &who, caller, id, input).await?)
                }
                other => Err(ApiError::internal(
                    "answering the NATS API",
                    format!("{other} is not a schedule verb"),
                )),
            }
        })
        .await
    }

    /// A verb the API does not have: audited as `unknown`, answered 404 with the verbs.
    async fn unknown(&self, verb: &str) -> Result<(), ApiError> {
        let who = self.gw.auth.authenticate(&self.creds, self.caller.ip).ok();
        let text: String = verb.chars().take(64).collect();
        let e = ApiError::new(
            ErrorCode::NotFound,
            format!(
                "'{text}' is not a verb of the NATS API; use one of {}",
                VERB_ACTIONS.map(|(v, _)| v).join(", ")
            ),
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
