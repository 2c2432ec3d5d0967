//! What every HTTP handler starts from: [`Call`] (the gateway, who is calling from where,
//! their credentials and headers), and the steps every handler repeats: authenticate
//! (audited), then read the path, query and body, where anything unreadable is audited as
//! malformed and answered 400 (413 for a body over `max_body_bytes`) in the documented shape.
//!
//! Also the answers for what no handler takes: an unknown path (404), a method a path does
//! not allow (405), and a last net that turns any other plain-text error of the framework
//! under `/api/` into the documented JSON.

use crate::auth::Credentials;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use taskwire_core::wire::Via;
use taskwire_core::wire::api::{ErrorBody, ErrorDetail};
use uuid::Uuid;

/// The shared state of every route.
pub type AppState = Arc<Gateway>;

/// One HTTP request, as a handler needs it. Its `Debug` shows no header (they hold tokens).
pub struct Call {
    pub gw: AppState,
    pub caller: Caller,
    pub credentials: Credentials,
    pub headers: HeaderMap,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("caller", &self.caller)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl FromRequestParts<AppState> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, gw: &AppState) -> Result<Self, Self::Rejection> {
        let caller = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => Caller::http(*addr, Via::Http),
            None => Caller {
                source: "unknown".into(),
                ip: None,
                via: Via::Http,
            },
        };
        Ok(Self {
            gw: gw.clone(),
            caller,
            credentials: gw.auth.credentials(&parts.headers),
            headers: parts.headers.clone(),
        })
    }
}

impl Call {
    /// Authenticates the caller for `action` (a failure is audited and answered 401).
    pub async fn who(&self, action: Action) -> Result<Principal, ApiError> {
        self.gw
            .authenticate(&self.credentials, &self.caller, action)
            .await
    }

    /// Audits a request of `who` that could not be read, and answers `error`.
    pub async fn malformed(&self, who: &Principal, action: Action, error: ApiError) -> ApiError {
        self.gw
            .malformed(Some(&who.user), action, error, &self.caller)
            .await
    }

    /// A job id from the path.
    pub async fn job_id(
        &self,
        who: &Principal,
        action: Action,
        id: &str,
    ) -> Result<Uuid, ApiError> {
        self.uuid(who, action, id, "job").await
    }

    /// A schedule id from the path.
    pub async fn schedule_id(
        &self,
        who: &Principal,
        action: Action,
        id: &str,
    ) -> Result<Uuid, ApiError> {
        self.uuid(who, action, id, "schedule").await
    }

    async fn uuid(
        &self,
        who: &Principal,
        action: Action,
        id: &str,
        what: &str,
    ) -> Result<Uuid, ApiError> {
        match Uuid::parse_str(id) {
            Ok(u) => Ok(u),
            Err(_) => {
                let msg = format!(
                    "'{}' is not a {what} id (a UUID)",
                    id.chars().take(64).collect::<String>()
                );
                Err(self.malformed(who, action, ApiError::invalid(msg)).await)
            }
        }
    }

    /// The query string as `T` (unknown keys and bad values are refused, naming them).
    pub async fn query<T>(
        &self,
        who: &Principal,
        action: Action,
        q: Result<Query<T>, QueryRejection>,
    ) -> Result<T, ApiError> {
        match q {
            Ok(Query(q)) => Ok(q),
            Err(e) => {
                let msg = format!(
                    "invalid query: {}. See GET /openapi.json for this path's parameters",
                    e.body_text()
                );
                Err(self.malformed(who, action, ApiError::invalid(msg)).await)
            }
        }
    }

    /// The body as JSON of type `T`; `example` shows what to send when it is not.
    pub async fn json<T: DeserializeOwned>(
        &self,
        who: &Principal,
        action: Action,
        body: Result<Bytes, BytesRejection>,
        what: &str,
        example: &str,
    ) -> Result<T, ApiError> {
        let body = self.body(who, action, body).await?;
        match serde_json::from_slice(&body) {
            Ok(v) => Ok(v),
            Err(e) => {
                let msg = format!(
                    "the request body is not a valid {what}: {e}. Send JSON like {example}"
                );
                Err(self.malformed(who, action, ApiError::invalid(msg)).await)
            }
        }
    }

    /// The body's bytes; one over `max_body_bytes` is refused with 413, saying the limit.
    pub async fn body(
        &self,
        who: &Principal,
        action: Action,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Bytes, ApiError> {
        match body {
            Ok(b) => Ok(b),
            Err(e) => Err(self.malformed(who, action, body_error(&self.gw, &e)).await),
        }
    }
}

/// What to answer for a body that could not be read.
fn body_error(gw: &Gateway, e: &BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than the {} bytes allowed; send less, or raise [gateway] max_body_bytes",
                gw.cfg.max_body_bytes
            ),
        )
    } else {
        ApiError::invalid(format!(
            "the request body could not be read: {}",
            e.body_text()
        ))
    }
}

/// What was asked, for a message and the audit log: method and path, at most 200 characters.
fn asked(method: &Method, uri: &Uri) -> String {
    let path: String = uri.path().chars().take(200).collect();
    format!("{method} {path}")
}

/// A request for something the API does not have (no such path, or a method the path does
/// not take): answered `error` whoever asks, as the NATS API answers an unknown verb. Under
/// `/api/` it is audited as malformed with the action `unknown`, with the caller's user when
/// its credentials authenticate (a failure to authenticate is not recorded separately).
async fn not_in_the_api(call: &Call, uri: &Uri, error: ApiError) -> ApiError {
    if !uri.path().starts_with("/api/") {
        return error;
    }
    let who = call
        .gw
        .auth
        .authenticate(&call.credentials, call.caller.ip)
        .ok();
    call.gw
        .malformed(
            who.as_ref().map(|w| w.user.as_str()),
            Action::Unknown,
            error,
            &call.caller,
        )
        .await
}

/// Any path no route takes: 404.
pub async fn no_such_path(call: Call, method: Method, uri: Uri) -> ApiError {
    let error = ApiError::new(
        ErrorCode::NotFound,
        format!(
            "there is no {} in this API; GET /openapi.json lists every path",
            asked(&method, &uri)
        ),
    );
    not_in_the_api(&call, &uri, error).await
}

/// A method the path does not take: 405 (the router adds `Allow`).
pub async fn method_not_allowed(call: Call, method: Method, uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{method} is not allowed on {path}; GET /openapi.json lists the methods of every path"
        ),
    );
    not_in_the_api(&call, &uri, error).await
}

/// The last net: an error answer under `/api/` that is not JSON (one of the framework's own
/// rejections no handler turned into an [`ApiError`]) becomes the documented JSON, keeping
/// its status and its text as the message.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    if !api || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = code_of(status);
    let message = if text.is_empty() {
        format!(
            "the request was refused ({status}); GET /openapi.json describes what this API takes"
        )
    } else {
        format!("{text}; GET /openapi.json describes what this API takes")
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail { code, message },
    })
    .unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The error code that goes with an HTTP status.
fn code_of(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidParams,
        s if s.is_server_error() => ErrorCode::Unavailable,
        _ => ErrorCode::InvalidRequest,
    }
}
