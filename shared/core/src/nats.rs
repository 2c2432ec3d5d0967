//! Connecting to NATS: one named connection per service, authenticated with the service's own
//! key, retried at startup while the server cannot be reached, reconnecting forever
//! afterwards (a NATS restart must not kill a service). A server that refuses the identity
//! ends the start at once with a message that says what to fix: waiting cannot help.

use crate::auth::keys::read_seed;
use crate::error::{Error, Result};
use async_nats::jetstream;
use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default NATS URL when none is configured.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Where a service connects and as whom.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Server URL(s), comma separated.
    pub url: String,
    /// The identity's key file (`<role>.nk` from `taskwire nats init`, or a `.creds` file);
    /// `None` connects without one, which a taskwire NATS refuses.
    pub credentials: Option<PathBuf>,
    /// The identity's inbox prefix (its permissions allow replies there only).
    pub inbox_prefix: Option<String>,
}

impl Endpoint {
    /// `url` with the credentials in `credentials` (if any).
    pub fn new(url: impl Into<String>, credentials: Option<PathBuf>) -> Self {
        Self {
            url: url.into(),
            credentials,
            inbox_prefix: None,
        }
    }

    /// The same endpoint with replies under `prefix`.
    pub fn with_inbox(mut self, prefix: impl Into<String>) -> Self {
        self.inbox_prefix = Some(prefix.into());
        self
    }
}

async fn options(ep: &Endpoint, name: &str) -> Result<ConnectOptions> {
    let mut opts = ConnectOptions::new();
    if let Some(path) = &ep.credentials {
        opts = credentials(opts, path).await?;
    }
    if let Some(prefix) = &ep.inbox_prefix {
        opts = opts.custom_inbox_prefix(prefix);
    }
    Ok(opts
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10))))
}

async fn credentials(opts: ConnectOptions, path: &Path) -> Result<ConnectOptions> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Keys {
        path: path.to_path_buf(),
        message: format!("cannot read it ({e}); set nats_credentials (TASKWIRE_NATS_CREDENTIALS) to this service's key file from `taskwire nats init`"),
    })?;
    if text.contains("BEGIN NATS USER JWT") {
        return opts.credentials_file(path).await.map_err(|e| Error::Keys {
            path: path.to_path_buf(),
            message: format!("is not a usable .creds file: {e}"),
        });
    }
    let kp = read_seed(path)?;
    let seed = kp.seed().map_err(|e| Error::Keys {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(opts.nkey(seed))
}

fn refused(ep: &Endpoint, e: &async_nats::ConnectError) -> Option<Error> {
    let hint = match &ep.credentials {
        None => "it requires credentials: set nats_credentials (TASKWIRE_NATS_CREDENTIALS) to this service's key file from `taskwire nats init`".to_string(),
        Some(p) => format!(
            "the key in {} is not one it knows; use the file `taskwire nats init` made for this service, and the server config made with it",
            p.display()
        ),
    };
    matches!(
        e.kind(),
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication
    )
    .then(|| Error::Refused {
        url: ep.url.clone(),
        message: format!("{e}: {hint}"),
    })
}

/// The servers of `url`: one URL or several, comma separated (`nats://a:4222,nats://b:4222`),
/// each with or without its scheme. The client learns the rest of a cluster from the servers
/// it reaches, and reconnects to any of them.
pub fn servers(url: &str) -> Result<Vec<ServerAddr>> {
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>().map_err(|e| {
                Error::Config(format!(
                    "NATS server '{u}' in '{url}' is not a server URL ({e}); write each as nats://host:port, several separated by commas, in nats_url or TASKWIRE_NATS_URL"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if addrs.is_empty() {
        return Err(Error::Config(
            "nats_url (TASKWIRE_NATS_URL) names no server; give nats://host:port, several separated by commas".into(),
        ));
    }
    Ok(addrs)
}

/// Connects as `name` (shown in the server's connection list), retrying with backoff while
/// the server cannot be reached; fails at once when it refuses the identity.
pub async fn connect_to(ep: &Endpoint, name: &str) -> Result<async_nats::Client> {
    let mut backoff =
        crate::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempt = 0u32;
    let addrs = servers(&ep.url)?;
    loop {
        let opts = options(ep, name).await?.max_reconnects(None);
        match opts.connect(addrs.as_slice()).await {
            Ok(c) => {
                if attempt > 0 {
                    tracing::info!(url = %ep.url, "connected to NATS");
                }
                return Ok(c);
            }
            Err(e) => {
                if let Some(err) = refused(ep, &e) {
                    return Err(err);
                }
                if e.kind() == ConnectErrorKind::ServerParse {
                    return Err(Error::Connect {
                        url: ep.url.clone(),
                        source: e,
                    });
                }
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!(url = %ep.url, error = %e, "NATS not reachable yet; retrying");
                }
                backoff.wait().await;
            }
        }
    }
}

/// Connects without retrying: for commands that should fail fast with a clear error.
pub async fn connect_once_to(ep: &Endpoint, name: &str) -> Result<async_nats::Client> {
    let addrs = servers(&ep.url)?;
    options(ep, name)
        .await?
        .connect(addrs.as_slice())
        .await
        .map_err(|source| {
            refused(ep, &source).unwrap_or(Error::Connect {
                url: ep.url.clone(),
                source,
            })
        })
}

/// [`connect_to`] without credentials (a NATS without authentication).
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client> {
    connect_to(&Endpoint::new(url, None), name).await
}

/// [`connect_once_to`] without credentials.
pub async fn connect_once(url: &str, name: &str) -> Result<async_nats::Client> {
    connect_once_to(&Endpoint::new(url, None), name).await
}

/// A JetStream context with bounded ack waits and back-pressure on in-flight publishes.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(client)
}

/// `f` (a question to NATS or JetStream), given up after `limit`: its error, or that no
/// answer came in time, as text for a log line or an answer.
pub async fn ask_within<T, E: std::fmt::Display>(
    limit: Duration,
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer from JetStream within {}s",
            limit.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_names_every_server() {
        let list =
            servers("nats://127.0.0.1:14221, nats://127.0.0.1:14222,127.0.0.1:14223").unwrap();
        let ports: Vec<u16> = list.iter().map(|a| a.port()).collect();
        assert_eq!(ports, [14221, 14222, 14223]);
        assert_eq!(servers("nats://n1:4222").unwrap().len(), 1);
        let bad = servers("nats://a:4222,nats://b:port")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("'nats://b:port'") && bad.contains("comma"),
            "{bad}"
        );
        assert!(servers(" , ").is_err());
    }
}
