//! The gateway's side of the audit store (`tw.store.*`): jobs that are no longer live, their
//! output, job history and the audit log. The gateway checks the ACL first; the store answers
//! exactly the query it is given. It needs only a NATS connection and the name space.

use crate::error::{ApiError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::wire::history::STORE_JOBS_OUTPUT;
use taskwire_core::wire::{OutputPage, OutputQuery, StoreErrorCode, StoreReply};

/// How long to wait for an audit writer's answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the store said.
#[derive(Debug)]
pub enum Stored<T> {
    Found(T),
    NotFound,
    /// No audit writer is running: only live jobs can be answered.
    NoStore,
}

/// Asks the audit writers' queue group on `tw.store.<verb>`.
#[derive(Debug, Clone)]
pub struct StoreClient {
    client: async_nats::Client,
    ns: Namespace,
}

impl StoreClient {
    pub fn new(client: async_nats::Client, ns: Namespace) -> Self {
        Self { client, ns }
    }

    /// Asks the store `verb` with `query`. Invalid queries and an unavailable database become
    /// API errors that say so.
    pub async fn ask<T: DeserializeOwned>(
        &self,
        verb: &str,
        query: &impl Serialize,
    ) -> Result<Stored<T>, ApiError> {
        let body = serde_json::to_vec(query)
            .map_err(|e| ApiError::internal("encoding a store query", e))?;
        let answer = tokio::time::timeout(
            STORE_TIMEOUT,
            self.client.request(self.ns.store(verb), body.into()),
        )
        .await;
        let msg = match answer {
            Ok(Ok(m)) => m,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Ok(Stored::NoStore);
            }
            Ok(Err(e)) => return Err(ApiError::internal("asking the audit store", e)),
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the audit store did not answer in time; try again",
                ));
            }
        };
        let reply: StoreReply<T> = serde_json::from_slice(&msg.payload)
            .map_err(|e| ApiError::internal("reading the audit store's answer", e))?;
        match reply {
            StoreReply::Ok(v) => Ok(Stored::Found(v)),
            StoreReply::Error(e) => match e.code {
                StoreErrorCode::NotFound => Ok(Stored::NotFound),
                StoreErrorCode::InvalidQuery => {
                    Err(ApiError::new(ErrorCode::InvalidRequest, e.message))
                }
                StoreErrorCode::Unavailable => Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!("{}; history is delayed, not lost; try again", e.message),
                )),
            },
        }
    }

    /// One page of the audit store's chunks of `job_id` from `from`; `None` when no store knows
    /// the job.
    pub async fn stored_page(
        &self,
        job_id: uuid::Uuid,
        from: u64,
    ) -> Result<Option<OutputPage>, ApiError> {
        let q = OutputQuery {
            job_id,
            from_seq: from,
            max_bytes: None,
        };
        Ok(match self.ask::<OutputPage>(STORE_JOBS_OUTPUT, &q).await? {
            Stored::Found(p) => Some(p),
            Stored::NotFound | Stored::NoStore => None,
        })
    }
}
