//! Errors: `GatewayError` for starting the gateway, `ApiError` for answers to callers. An
//! `ApiError` has a stable code (`taskwire_core::wire::api::ErrorCode`), the HTTP status that
//! goes with it, and a message that says what was wrong and what to do; internal details are
//! logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use taskwire_core::ErrorKind;
use taskwire_core::wire::api::{ErrorBody, ErrorDetail};

pub use taskwire_core::wire::api::ErrorCode;

/// Result alias for starting the gateway.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    #[error(
        "cannot listen on {addr}: {source}. Choose another address with --http or [gateway] listen"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] taskwire_core::Error),
}

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A request that cannot be read (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// A failure of ours: logged in full, reported to the caller without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %err, "request failed");
        Self::new(
            ErrorCode::Unavailable,
            format!("{context} failed; the job system may be unavailable, try again shortly"),
        )
    }

    /// A failure of the shared layer while `context`, answered by its kind: a lost
    /// compare-and-set or a taken id is a conflict (409, its message says to read again), a
    /// missing thing 404, an invalid request 400, anything else an outage (503, details
    /// logged only).
    pub fn from_core(context: &str, err: taskwire_core::Error) -> Self {
        match err.kind() {
            ErrorKind::Conflict => Self::new(ErrorCode::Conflict, err.to_string()),
            ErrorKind::NotFound => Self::new(ErrorCode::NotFound, err.to_string()),
            ErrorKind::Invalid => Self::invalid(err.to_string()),
            ErrorKind::Unavailable | ErrorKind::Config => Self::internal(context, err),
        }
    }

    /// The code and message, as frames and NATS replies carry them.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code,
            message: self.message.clone(),
        }
    }

    /// The HTTP status of this answer.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// `Retry-After` of every 503: the seconds a client waits before it tries again.
pub const RETRY_AFTER_SECS: &str = "2";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // an outage outlasted the request's wait: when to try again
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_race_is_a_conflict_and_an_outage_is_unavailable() {
        let lost = taskwire_core::Error::Changed {
            what: "schedule",
            key: "s1".into(),
        };
        let e = ApiError::from_core("updating the schedule", lost);
        assert_eq!(
            (e.code, e.status()),
            (ErrorCode::Conflict, StatusCode::CONFLICT)
        );
        assert!(e.message.contains("changed meanwhile"), "{}", e.message);
        let timeout = taskwire_core::Error::ScheduleStore {
            step: "updating a schedule",
            message: "timed out".into(),
        };
        let e = ApiError::from_core("updating the schedule", timeout);
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(
            !e.message.contains("timed out"),
            "internals stay in the log"
        );
    }
}
