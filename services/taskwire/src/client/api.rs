//! The HTTP client of the gateway's `/api/v1`: one place that sends the token, maps transport
//! failures and error answers to messages that say what to do, and decodes the documents.

use super::conn::Conn;
use crate::error::{ApiFailure, CliError};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use taskwire_core::wire::api::ErrorBody;

/// The gateway's API, as one user.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub conn: Conn,
}

/// Query pairs of a listing: `limit`, then each filter that was given.
pub fn query<'a>(limit: u32, filters: &[(&'a str, &Option<String>)]) -> Vec<(&'a str, String)> {
    let mut q = vec![("limit", limit.to_string())];
    q.extend(
        filters
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone()))),
    );
    q
}

/// Longest silence of an output stream before the connection counts as lost.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// Time allowed for one ordinary request (streams have none).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl Api {
    pub fn new(conn: Conn) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("taskwire-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self { http, conn })
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.conn.url))
            .bearer_auth(&self.conn.token)
    }

    /// Sends, and turns a transport failure or an error answer into a [`CliError`].
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response, CliError> {
        let resp = rb.send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        Err(self.failure(resp).await)
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        CliError::Unreachable {
            url: self.conn.url.clone(),
            detail,
        }
    }

    async fn failure(&self, resp: Response) -> CliError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        // The documented error body; a code this client does not know yet (a newer server)
        // is still shown with its message.
        let parsed: Option<(String, String)> = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(b) => Some((b.error.code.as_str().to_string(), b.error.message)),
            Err(_) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    Some((
                        e.get("code")?.as_str()?.to_string(),
                        e.get("message")?.as_str()?.to_string(),
                    ))
                }),
        };
        let (code, message) = parsed.unwrap_or_else(|| {
            let code = match status {
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::NOT_FOUND => "not_found",
                _ => "http_error",
            };
            let text: String = body.chars().take(200).collect();
            (
                code.to_string(),
                format!(
                    "the server answered {status}{}",
                    if text.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", text.trim())
                    }
                ),
            )
        });
        CliError::Api(ApiFailure {
            status: status.as_u16(),
            code,
            message,
            url: self.conn.url.clone(),
        })
    }

    async fn decode<T: DeserializeOwned>(&self, resp: Response) -> Result<T, CliError> {
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| CliError::BadAnswer {
            url: self.conn.url.clone(),
            detail: e.to_string(),
        })
    }

    /// `GET path?query` as JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        let resp = self
            .send(
                self.request(Method::GET, path)
                    .query(query)
                    .timeout(REQUEST_TIMEOUT),
            )
            .await?;
        self.decode(resp).await
    }

    /// `POST path` with an optional JSON body, answered with JSON.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
        headers: &[(&str, String)],
    ) -> Result<T, CliError> {
        let mut rb = self.request(Method::POST, path).timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        let resp = self.send(rb).await?;
        self.decode(resp).await
    }

    /// `DELETE path`, answered with JSON.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let resp = self
            .send(self.request(Method::DELETE, path).timeout(REQUEST_TIMEOUT))
            .await?;
        self.decode(resp).await
    }

    /// `GET path?query` answered with raw bytes.
    pub async fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, CliError> {
        let resp = self
            .send(self.request(Method::GET, path).query(query))
            .await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| self.unreachable(&e))
    }

    /// A Server-Sent Events response to read chunk by chunk (no overall time limit).
    pub async fn events(&self, path: &str, query: &[(&str, String)]) -> Result<Response, CliError> {
        self.send(
            self.request(Method::GET, path)
                .query(query)
                .header(reqwest::header::ACCEPT, "text/event-stream"),
        )
        .await
    }

    /// Reads the next piece of a streamed body; a stream silent for longer than
    /// [`STREAM_SILENCE`] (the server sends a keep-alive every 15 s) counts as a lost connection.
    pub async fn next_chunk(&self, resp: &mut Response) -> Result<Option<bytes::Bytes>, CliError> {
        match tokio::time::timeout(STREAM_SILENCE, resp.chunk()).await {
            Ok(r) => r.map_err(|e| self.unreachable(&e)),
            Err(_) => Err(CliError::Unreachable {
                url: self.conn.url.clone(),
                detail: format!(
                    "the output stream was silent for {}s",
                    STREAM_SILENCE.as_secs()
                ),
            }),
        }
    }
}
