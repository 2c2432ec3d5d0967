//! The `[gateway]` section of the configuration: where to listen, who the users are, what
//! each role may do, and which commands each role may run.

use crate::identity::Permission;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// An API token, stored only as the SHA-256 of the token (`taskwire token` prints the line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The user this token authenticates (recorded in the audit log).
    pub user: String,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What a role may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// Which roles may run one command (Remotisan's `commands.allowed.<NAME>.roles`). An empty
/// list means super users only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedCommand {
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[gateway.commands]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    #[serde(default)]
    pub allowed: BTreeMap<String, AllowedCommand>,
}

/// JWT bearer tokens from an identity provider. Exactly one key source: an HS256 secret, an
/// RS256 public key (PEM), or a JWKS file (keys chosen by `kid`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub hs256_secret: Option<String>,
    pub rs256_public_key_file: Option<std::path::PathBuf>,
    pub jwks_file: Option<std::path::PathBuf>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Claim holding the user identifier (default `sub`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim holding the roles, a list of strings (default `roles`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_user_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway() -> u64 {
    30
}

/// Identity from an authenticating proxy in front of the gateway, trusted only from the
/// listed source networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Networks the proxy connects from, e.g. `["127.0.0.1/32", "10.0.0.0/8"]`.
    pub trusted_sources: Vec<String>,
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// Comma-separated groups, used as roles.
    #[serde(default = "default_groups_header")]
    pub groups_header: String,
}

fn default_user_header() -> String {
    "X-Remote-User".into()
}
fn default_groups_header() -> String {
    "X-Remote-Groups".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HTTP listen address (`taskwire up --http ADDR`).
    pub listen: SocketAddr,
    /// Users who may do everything, including stopping and killing any job. A plain name is
    /// a configured token user (`token:<name>` says the same); `jwt:<name>` and
    /// `proxy:<name>` name a user of the identity provider or of the proxy.
    pub super_users: Vec<String>,
    pub tokens: Vec<TokenConfig>,
    pub jwt: Option<JwtConfig>,
    pub proxy: Option<ProxyConfig>,
    pub roles: BTreeMap<String, RoleConfig>,
    pub commands: CommandsConfig,
    /// Origins allowed to open WebSockets besides the gateway's own.
    pub allowed_origins: Vec<String>,
    /// How many chunks a viewer may fall behind the job before it is disconnected.
    pub viewer_lag_chunks: usize,
    /// Bytes of a job's most recent output one gateway keeps in memory for its live viewers
    /// (per watched job; viewers further back read the stream, a few chunks at a time).
    #[serde(with = "taskwire_core::units::size_str")]
    pub feed_window: u64,
    /// How long one frame may take to reach a viewer before it counts as stuck.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub viewer_send_timeout: std::time::Duration,
    /// Kernel send buffer of each connection (SO_SNDBUF): what a slow viewer may hold
    /// unread in the kernel before the gateway notices it is slow.
    #[serde(with = "taskwire_core::units::size_str")]
    pub socket_send_buffer: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How often an open WebSocket checks that its token still authenticates (a JWT expires);
    /// one that no longer does is closed with code 4001.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub ws_recheck: std::time::Duration,
    /// The built web console (`services/gateway/console/dist`) served at `/`; unset, a
    /// source checkout's build is found by itself.
    pub console_dir: Option<std::path::PathBuf>,
    /// A file holding the nkey seed (`SU...`, one line, mode 0600) every dispatch message is
    /// signed with; executors run only messages signed by a key in their
    /// `dispatch_trusted_keys`. Unset, dispatch messages go out unsigned, and only executors
    /// with `allow_unsigned_dispatch` (development only) run them.
    pub dispatch_signing_key: Option<std::path::PathBuf>,
    /// A file holding the callout issuer's account seed (`SA...`, mode 0600). Set, the gateway
    /// serves NATS auth callout: direct NATS clients sign in with their taskwire token (see
    /// `docs/protocol.md`). Unset, it does not answer `$SYS.REQ.USER.AUTH`.
    pub nats_callout_issuer_seed: Option<std::path::PathBuf>,
    /// How long a direct NATS client's sign-in lasts at most (less when its token expires
    /// sooner); its connection is then closed, and its reconnect checks the token again.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub nats_session: std::time::Duration,
    /// How long a request waits out a NATS outage (a node lost, a stream electing a new
    /// leader) before it is answered 503 with `Retry-After`.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub outage_wait: std::time::Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            super_users: Vec::new(),
            tokens: Vec::new(),
            jwt: None,
            proxy: None,
            roles: BTreeMap::new(),
            commands: CommandsConfig::default(),
            allowed_origins: Vec::new(),
            viewer_lag_chunks: 1024,
            feed_window: 4 << 20,
            viewer_send_timeout: std::time::Duration::from_secs(10),
            socket_send_buffer: 256 * 1024,
            max_body_bytes: 256 * 1024,
            ws_recheck: std::time::Duration::from_secs(15),
            console_dir: None,
            dispatch_signing_key: None,
            nats_callout_issuer_seed: None,
            nats_session: std::time::Duration::from_secs(15),
            outage_wait: std::time::Duration::from_secs(15),
        }
    }
}

impl GatewayConfig {
    /// Applies `TASKWIRE_ALLOWED_COMMANDS` (JSON of the same shape as
    /// `[gateway.commands.allowed]`), which replaces the file's list when set.
    pub fn apply_allowed_commands_env(&mut self, json: Option<&str>) -> Result<(), String> {
        if let Some(text) = json {
            let allowed: BTreeMap<String, AllowedCommand> = serde_json::from_str(text).map_err(|e| {
                format!(
                    "TASKWIRE_ALLOWED_COMMANDS is not valid: {e}. Expected JSON like {{\"hello\": {{\"roles\": [\"ops\"]}}}}"
                )
            })?;
            self.commands.allowed = allowed;
        }
        Ok(())
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.tokens {
            let ok = t.sha256.len() == 64 && t.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(format!(
                    "token of user '{}': sha256 must be 64 hex characters (use `taskwire token` to make one)",
                    t.user
                ));
            }
            if t.user.is_empty() {
                return Err("a token has an empty user".into());
            }
            if let Some(p) = ["jwt:", "proxy:", "token:"]
                .into_iter()
                .find(|p| t.user.starts_with(p))
            {
                return Err(format!(
                    "token of user '{}': a token user's name may not start with '{p}' (that prefix names users of another source); name the user without it",
                    t.user
                ));
            }
            for r in &t.roles {
                if !self.roles.contains_key(r) {
                    return Err(format!(
                        "token of user '{}' has role '{r}', which is not defined under [gateway.roles]",
                        t.user
                    ));
                }
            }
        }
        for u in &self.super_users {
            let name = ["jwt:", "proxy:", "token:"]
                .into_iter()
                .find_map(|p| u.strip_prefix(p))
                .unwrap_or(u);
            if name.is_empty() {
                return Err(format!(
                    "super_users entry '{u}' names no user (write e.g. \"alice\" for a token user, \"jwt:alice\" or \"proxy:alice\")"
                ));
            }
        }
        for (cmd, allowed) in &self.commands.allowed {
            for r in &allowed.roles {
                if !self.roles.contains_key(r) {
                    return Err(format!(
                        "command '{cmd}' allows role '{r}', which is not defined under [gateway.roles]"
                    ));
                }
            }
        }
        if self.nats_session < std::time::Duration::from_secs(1) {
            return Err("nats_session must be at least 1s".into());
        }
        if self.ws_recheck.is_zero() {
            return Err("ws_recheck must be more than 0s".into());
        }
        if self.feed_window < taskwire_core::wire::output::MAX_CHUNK as u64 {
            return Err(format!(
                "feed_window must be at least {} bytes (one chunk)",
                taskwire_core::wire::output::MAX_CHUNK
            ));
        }
        if self.viewer_lag_chunks == 0 {
            return Err("viewer_lag_chunks must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_other_sources_are_refused_where_they_would_be_ambiguous() {
        let token = |user: &str| GatewayConfig {
            tokens: vec![TokenConfig {
                user: user.into(),
                sha256: "0".repeat(64),
                roles: vec![],
            }],
            ..GatewayConfig::default()
        };
        assert!(token("alice").validate().is_ok());
        for user in ["jwt:alice", "proxy:alice", "token:alice"] {
            let e = token(user).validate().unwrap_err();
            assert!(e.contains("may not start with"), "{user}: {e}");
        }
        let supers = |u: &str| GatewayConfig {
            super_users: vec![u.into()],
            ..GatewayConfig::default()
        };
        for ok in ["root", "token:root", "jwt:boss", "proxy:boss"] {
            assert!(supers(ok).validate().is_ok(), "{ok}");
        }
        let e = supers("jwt:").validate().unwrap_err();
        assert!(e.contains("names no user"), "{e}");
    }
}
