//! Answers `tw.store.<verb>` requests from gateways (queue group: each request is answered
//! by one writer). The gateway has already checked who may read what; the store answers
//! exactly the query it is given.

use crate::query;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskwire_core::Namespace;
use taskwire_core::wire::history::{
    STORE_AUDIT_LIST, STORE_JOBS_GET, STORE_JOBS_LIST, STORE_JOBS_OUTPUT,
};
use taskwire_core::wire::{JobRef, StoreError, StoreErrorCode, StoreReply};
use tokio_util::sync::CancellationToken;

/// Queue group of the audit writers' query subscribers.
pub const QUEUE_GROUP: &str = "taskwire-audit-writer";

fn reply<T: Serialize>(answer: query::Answer<T>) -> Vec<u8> {
    let r = match answer {
        Ok(v) => StoreReply::Ok(v),
        Err(e) => StoreReply::Error(e),
    };
    serde_json::to_vec(&r).unwrap_or_default()
}

fn parse<Q: DeserializeOwned>(body: &[u8]) -> query::Answer<Q> {
    serde_json::from_slice(body).map_err(|e| StoreError {
        code: StoreErrorCode::InvalidQuery,
        message: format!("the query is not valid JSON for this verb: {e}"),
    })
}

/// Answers one request body for `verb`.
pub async fn answer(db: &DatabaseConnection, verb: &str, body: &[u8]) -> Vec<u8> {
    match verb {
        STORE_JOBS_LIST => match parse(body) {
            Ok(q) => reply(query::jobs(db, &q).await),
            Err(e) => reply::<()>(Err(e)),
        },
        STORE_JOBS_GET => match parse::<JobRef>(body) {
            Ok(q) => reply(query::job(db, q.job_id).await),
            Err(e) => reply::<()>(Err(e)),
        },
        STORE_JOBS_OUTPUT => match parse(body) {
            Ok(q) => reply(query::output(db, &q).await),
            Err(e) => reply::<()>(Err(e)),
        },
        STORE_AUDIT_LIST => match parse(body) {
            Ok(q) => reply(query::audit(db, &q).await),
            Err(e) => reply::<()>(Err(e)),
        },
        other => reply::<()>(Err(StoreError {
            code: StoreErrorCode::InvalidQuery,
            message: format!(
                "'{other}' is not a store query; use {STORE_JOBS_LIST}, {STORE_JOBS_GET}, {STORE_JOBS_OUTPUT} or {STORE_AUDIT_LIST}"
            ),
        })),
    }
}

/// Answers `tw.store.<verb>` in the writers' queue group until `stop`.
pub async fn serve(
    client: &async_nats::Client,
    ns: &Namespace,
    db: DatabaseConnection,
    stop: CancellationToken,
) -> taskwire_core::Result<taskwire_core::serve::Responder> {
    let prefix = ns.store("");
    taskwire_core::serve::respond(client, ns.store_all(), QUEUE_GROUP, stop, move |msg| {
        let db = db.clone();
        let verb = msg
            .subject
            .as_str()
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .to_string();
        async move { Some(answer(&db, &verb, &msg.payload).await.into()) }
    })
    .await
}
