//! The HTTP door: REST under `/api/v1`, the streaming routes (handled in `crate::socket`),
//! health checks, and the OpenAPI document generated from the same route table. A handler
//! authenticates, reads its input ([`call::Call`]), calls an operation of `crate::ops` and
//! encodes its answer; every error, the framework's own included, is the documented JSON.
//!
//! - [`jobs`], [`schedules`], [`system`]: the handlers (each starts from `crate::call::Call`).
//! - [`openapi`]: the route table and `GET /openapi.json`.

pub mod jobs;
pub mod openapi;
pub mod schedules;
pub mod system;

use crate::call::{self, AppState};
use crate::socket::{session, viewer};
use axum::Router;
use openapi::{Api, Doc, RouteDoc};
use std::sync::Arc;

const PUBLIC: Option<&str> = Some("");

fn doc(
    summary: &'static str,
    permission: Option<&'static str>,
    tag: &'static str,
    ok: (u16, &'static str),
) -> Doc {
    Doc {
        summary,
        permission,
        tag,
        ok,
        query: &[],
        body: None,
    }
}

/// Every route, once, with its documentation.
pub fn table() -> Api {
    Api::default()
        .route("GET", "/healthz", system::healthz, doc("Liveness", PUBLIC, "system", (200, "ok")))
        .route("GET", "/readyz", system::readyz, doc("Readiness: NATS is connected and the instance registry readable", PUBLIC, "system", (200, "ready")))
        .route("GET", "/api/v1/me", system::me, doc("Who I am: user, roles, permissions", None, "users", (200, "the caller")))
        .route("GET", "/api/v1/instances", system::instances, doc("The instance registry", Some("read_instances"), "instances", (200, "instances")))
        .route("GET", "/api/v1/commands", system::commands, doc("The commands I may run, with parameter schemas, and where", None, "commands", (200, "commands")))
        .route("POST", "/api/v1/jobs", jobs::submit, Doc {
            body: Some("{command, params, channel | instance | all_instances | labels}; header Idempotency-Key makes a retry return the same job"),
            ..doc("Submit a job", Some("run"), "jobs", (202, "the job record, or {group_id, jobs} when it fanned out"))
        })
        .route("GET", "/api/v1/jobs", jobs::list, Doc {
            query: &[("state", "only jobs in this state"), ("command", "only this command"), ("user", "only jobs of this user"), ("instance", "only jobs on this instance"), ("since", "queued at or after this instant (RFC 3339)"), ("until", "queued before this instant (RFC 3339)"), ("cursor", "the next of the previous page"), ("limit", "page size, 1 to 500 (default 50)")],
            ..doc("Jobs, newest first: history from the audit store with live state, or only live jobs when no audit writer runs", Some("read_own or read_any"), "jobs", (200, "{jobs, next}"))
        })
        .route("GET", "/api/v1/jobs/{id}", jobs::get_one, doc("A job's record, with argv, pid, memory, output size and result once the audit store has them", Some("read_own or read_any"), "jobs", (200, "the job record")))
        .route("DELETE", "/api/v1/jobs/{id}", jobs::delete, doc(
            "Delete a finished job's record and output, live and in the audit store (which keeps who deleted it)",
            Some("delete (and read_any for another user's job)"), "jobs", (200, "{deleted: job_id}"),
        ))
        .route("GET", "/api/v1/audit", system::audit, Doc {
            query: &[("actor", "only this user"), ("action", "an action (jobs.kill) or a family (jobs.)"), ("target", "only this target"), ("allowed", "true or false"), ("since", "at or after this instant (RFC 3339)"), ("until", "before this instant (RFC 3339)"), ("cursor", "the next of the previous page"), ("limit", "page size, 1 to 500 (default 50)")],
            ..doc("The audit log, newest first", Some("read_audit"), "audit", (200, "{entries, next}"))
        })
        .route("POST", "/api/v1/jobs/{id}/stop", jobs::stop, doc(
            "Stop a job gracefully (its stop signal, grace, SIGKILL; final state stopped), or cancel it while queued",
            Some("stop_own or stop_any"), "jobs", (200, "what happened: signalled or cancelled, signals sent, survivors"),
        ))
        .route("POST", "/api/v1/jobs/{id}/kill", jobs::kill, doc(
            "Kill a job with its escalating ladder (default SIGINT, SIGTERM, SIGKILL; final state killed), or cancel it while queued",
            Some("kill_own or kill_any"), "jobs", (200, "what happened: signalled or cancelled, signals sent, survivors"),
        ))
        .route("GET", "/api/v1/jobs/{id}/output", jobs::output, Doc {
            query: &[("format", "text (default) or ndjson"), ("stream", "only stdout, stderr or system")],
            ..doc("The job's output as stored so far", Some("read_own or read_any"), "jobs", (200, "raw bytes, or NDJSON chunks"))
        })
        .route("GET", "/api/v1/ws", session::upgrade, doc(
            "One WebSocket to submit, follow several jobs, and stop or kill them (same ACL and audit as REST)",
            None, "jobs", (101, "switching to the WebSocket protocol"),
        ))
        .route("GET", "/api/v1/schedules", schedules::list, doc("Schedules: one's own (all for super users), each with its state and next fires", Some("manage_schedules"), "schedules", (200, "{schedules}")))
        .route("POST", "/api/v1/schedules", schedules::create, Doc {
            body: Some("{command, params, channel | instance | all_instances | labels, kind: cron (cron, time_zone) | once (at) | interval (every, start), name, enabled, overlap: skip|allow|queue, misfire: skip|run_once, jitter}"),
            ..doc("Create a schedule owned by the caller; every fire runs with the owner's permissions, checked again", Some("manage_schedules and run of the command"), "schedules", (201, "the schedule with its next fires"))
        })
        .route("POST", "/api/v1/schedules/preview", schedules::preview, Doc {
            body: Some("{kind, cron, time_zone | at | every, start}"),
            ..doc("The next ten fires of a timing, without saving anything", None, "schedules", (200, "{next_fires}"))
        })
        .route("GET", "/api/v1/schedules/{id}", schedules::get_one, doc("One schedule with its state and next fires", Some("manage_schedules (own, or super user)"), "schedules", (200, "the schedule")))
        .route("PATCH", "/api/v1/schedules/{id}", schedules::update, Doc {
            body: Some("any fields of the create body"),
            ..doc("Change a schedule (a timing change or a resume restarts it from now)", Some("manage_schedules (own, or super user)"), "schedules", (200, "the schedule"))
        })
        .route("DELETE", "/api/v1/schedules/{id}", schedules::delete, doc("Delete a schedule (its fire history stays until it expires)", Some("manage_schedules (own, or super user)"), "schedules", (200, "{deleted}")))
        .route("POST", "/api/v1/schedules/{id}/pause", schedules::pause, doc("Pause a schedule: no fires until resumed", Some("manage_schedules (own, or super user)"), "schedules", (200, "the schedule")))
        .route("POST", "/api/v1/schedules/{id}/resume", schedules::resume, doc("Resume a schedule from now (fires while paused do not run)", Some("manage_schedules (own, or super user)"), "schedules", (200, "the schedule")))
        .route("GET", "/api/v1/schedules/{id}/history", schedules::history, Doc {
            query: &[("since", "fires at or after this instant (RFC 3339; default one day ago)"), ("limit", "1 to 1000 (default 200)")],
            ..doc("Every fire of a schedule, oldest first: time, state (submitted, denied, skipped, missed, failed), job id or why it did not run", Some("manage_schedules (own, or super user)"), "schedules", (200, "{fires, next_since}"))
        })
        .route("GET", "/api/v1/jobs/{id}/stream", viewer::upgrade, Doc {
            query: &[("from_seq", "first chunk sequence to send (default 1)")],
            ..doc("Live output: WebSocket, or Server-Sent Events with Accept: text/event-stream", Some("read_own or read_any"), "jobs", (101, "switching to the WebSocket protocol (200 for SSE)"))
        })
}

/// Every route of the gateway, `GET /openapi.json` describing them, and the web console's
/// files (`console`).
pub fn router(gw: AppState, console: crate::console::Console) -> Router {
    let limit = gw.cfg.max_body_bytes;
    let (routes, docs) = table().build();
    let spec = Arc::new(openapi::openapi(&with_openapi(docs)));
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move { axum::Json((*spec).clone()) }
            }),
        )
        .fallback(call::no_such_path)
        .method_not_allowed_fallback(call::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(gw)
        .merge(crate::console::routes(console))
        .layer(axum::middleware::from_fn(call::json_errors))
}

/// The documented routes including `/openapi.json` itself.
pub fn with_openapi(mut docs: Vec<RouteDoc>) -> Vec<RouteDoc> {
    docs.push(RouteDoc {
        method: "GET",
        path: "/openapi.json",
        doc: doc(
            "This document",
            PUBLIC,
            "system",
            (200, "the OpenAPI document"),
        ),
    });
    docs
}
