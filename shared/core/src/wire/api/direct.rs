//! What direct NATS clients exchange with taskwire beyond the verbs of `tw.api.*`:
//!
//! - following a job's output over NATS (`tw.api.jobs.follow`): the request, the first reply
//!   and the messages that follow it (see `docs/protocol.md`, "Following a job over NATS");
//! - the claims of the NATS auth callout (nats-server 2.10+): the `authorization_request` a
//!   server sends on `$SYS.REQ.USER.AUTH`, the `authorization_response` the gateway answers
//!   with, and the `user` it signs for the client. These are nats-server's shapes (the
//!   `nats-io/jwt` v2 claims), written here field by field so the gateway reads and writes
//!   exactly them; `crate::auth::direct` signs and verifies them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---- following a job ----

/// `tw.api.jobs.follow`: the job and the first chunk wanted (default 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// The job id as text, so a malformed one is answered (and audited) as such.
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<u64>,
}

/// The `ok` answer of the first reply to a follow: the chunks from `from_seq` follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Following {
    pub job_id: Uuid,
    pub from_seq: u64,
}

/// The values of the `Tw-End` header on the last message of a follow; its body is the
/// matching [`super::Frame`] as JSON.
pub mod follow_end {
    /// Every chunk was sent: the body is an `end` frame (the job's `JobEnd`).
    pub const END: &str = "end";
    /// The follower fell too far behind: the body is a `slow` frame naming the `from_seq` to
    /// follow again from.
    pub const SLOW: &str = "slow";
    /// The follow stopped early (the token stopped authenticating, the gateway is stopping):
    /// the body is an `error` frame; follow again from the next sequence needed.
    pub const ERROR: &str = "error";
}

// ---- the auth callout ----

/// The `type` of an authorization request.
pub const AUTH_REQUEST_TYPE: &str = "authorization_request";
/// The `type` of an authorization response.
pub const AUTH_RESPONSE_TYPE: &str = "authorization_response";
/// The `type` of a user.
pub const USER_TYPE: &str = "user";
/// The `aud` of every authorization request.
pub const AUTH_REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// The claims version nats-server reads (`nats-io/jwt` v2).
pub const CLAIMS_VERSION: u32 = 2;
/// A limit of a user that is not limited.
pub const NO_LIMIT: i64 = -1;

/// A NATS JWT's registered claims around its `nats` part (`ClaimsData` of `nats-io/jwt`).
/// Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatsClaims<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The public nkey that signed the JWT.
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub sub: String,
    pub nats: T,
}

/// The server that asks (`server_id` of a request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host: String,
    /// The server's public nkey (`N…`): the `aud` of the response.
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// The connection that wants to sign in (`client_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default)]
    pub id: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub client_type: String,
}

/// What the client sent in its `CONNECT` (`connect_opts`). Its `Debug` never shows the
/// token or the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectOpts {
    /// The taskwire token (an API token or a JWT), given as the connection's token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pass: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

impl std::fmt::Debug for ConnectOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOpts")
            .field(
                "auth_token",
                &(!self.auth_token.is_empty()).then_some("<token>"),
            )
            .field("user", &self.user)
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .finish()
    }
}

/// The `nats` part of an `authorization_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    #[serde(default)]
    pub server_id: ServerId,
    /// The public nkey the server made for this connection: the `sub` of the answer and of
    /// the user.
    pub user_nkey: String,
    #[serde(default)]
    pub client_info: ClientInfo,
    #[serde(default)]
    pub connect_opts: ConnectOpts,
    #[serde(rename = "type")]
    pub claim_type: String,
    #[serde(default)]
    pub version: u32,
}

/// The `nats` part of an `authorization_response`: the signed user, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "type")]
    pub claim_type: String,
    pub version: u32,
}

/// Subjects allowed (and denied) for publishing or subscribing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// The `nats` part of a `user`: what the connection may do. No `resp`: it answers nobody's
/// requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGrant {
    #[serde(rename = "pub")]
    pub publish: SubjectRule,
    #[serde(rename = "sub")]
    pub subscribe: SubjectRule,
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    #[serde(rename = "type")]
    pub claim_type: String,
    pub version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn follow_request_and_answer_json_is_pinned() {
        let r = FollowRequest {
            job_id: "00000000-0000-0000-0000-000000000007".into(),
            from_seq: Some(3),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"job_id": "00000000-0000-0000-0000-000000000007", "from_seq": 3})
        );
        assert_eq!(serde_json::from_value::<FollowRequest>(v).unwrap(), r);
        let bare: FollowRequest = serde_json::from_value(json!({"job_id": "x"})).unwrap();
        assert_eq!(bare.from_seq, None);
        assert!(serde_json::from_value::<FollowRequest>(json!({"job_id": "x", "seq": 1})).is_err());
        let ok = Following {
            job_id: Uuid::nil(),
            from_seq: 1,
        };
        assert_eq!(
            serde_json::to_value(ok).unwrap(),
            json!({"job_id": "00000000-0000-0000-0000-000000000000", "from_seq": 1})
        );
    }

    #[test]
    fn authorization_request_as_nats_server_sends_it_is_read() {
        // The shape of nats-server 2.10+ (fields it adds later are ignored).
        let v = json!({
            "aud": "nats-authorization-request", "exp": 1700000002, "iat": 1700000000,
            "iss": "NSERVER", "jti": "J", "sub": "AISSUER",
            "nats": {
                "server_id": {"name": "n1", "host": "0.0.0.0", "id": "NSERVER", "version": "2.11.0"},
                "user_nkey": "UCLIENT",
                "client_info": {"host": "127.0.0.1", "id": 7, "user": "", "kind": "Client", "type": "nats"},
                "connect_opts": {"auth_token": "tw_secret", "lang": "rust", "version": "0.51.0", "protocol": 1},
                "type": "authorization_request", "version": 2
            }
        });
        let c: NatsClaims<AuthRequest> = serde_json::from_value(v).unwrap();
        assert_eq!(c.aud.as_deref(), Some(AUTH_REQUEST_AUDIENCE));
        assert_eq!(c.iss, "NSERVER");
        assert_eq!(c.nats.user_nkey, "UCLIENT");
        assert_eq!(c.nats.server_id.id, "NSERVER");
        assert_eq!(c.nats.client_info.host, "127.0.0.1");
        assert_eq!(c.nats.client_info.client_type, "nats");
        assert_eq!(c.nats.connect_opts.auth_token, "tw_secret");
        assert_eq!(c.nats.claim_type, AUTH_REQUEST_TYPE);
        assert!(!format!("{:?}", c.nats.connect_opts).contains("tw_secret"));
    }

    #[test]
    fn response_and_user_json_is_pinned() {
        let user = NatsClaims {
            aud: Some("TASKWIRE".into()),
            exp: Some(1700000060),
            jti: Some("J1".into()),
            iat: Some(1700000000),
            iss: "AISSUER".into(),
            name: Some("alice".into()),
            nbf: None,
            sub: "UCLIENT".into(),
            nats: UserGrant {
                publish: SubjectRule {
                    allow: vec!["tw.api.>".into()],
                    deny: Vec::new(),
                },
                subscribe: SubjectRule {
                    allow: vec!["_INBOX.0123.>".into()],
                    deny: Vec::new(),
                },
                subs: NO_LIMIT,
                data: NO_LIMIT,
                payload: NO_LIMIT,
                claim_type: USER_TYPE.into(),
                version: CLAIMS_VERSION,
            },
        };
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(
            v,
            json!({"aud": "TASKWIRE", "exp": 1700000060, "jti": "J1", "iat": 1700000000,
                   "iss": "AISSUER", "name": "alice", "sub": "UCLIENT",
                   "nats": {"pub": {"allow": ["tw.api.>"]}, "sub": {"allow": ["_INBOX.0123.>"]},
                            "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}})
        );
        assert_eq!(
            serde_json::from_value::<NatsClaims<UserGrant>>(v).unwrap(),
            user
        );
        let refused = NatsClaims {
            aud: Some("NSERVER".into()),
            exp: None,
            jti: Some("J2".into()),
            iat: Some(1700000000),
            iss: "AISSUER".into(),
            name: None,
            nbf: None,
            sub: "UCLIENT".into(),
            nats: AuthResponse {
                jwt: None,
                error: Some("the token is not known".into()),
                claim_type: AUTH_RESPONSE_TYPE.into(),
                version: CLAIMS_VERSION,
            },
        };
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            json!({"aud": "NSERVER", "jti": "J2", "iat": 1700000000, "iss": "AISSUER",
                   "sub": "UCLIENT",
                   "nats": {"error": "the token is not known", "type": "authorization_response",
                            "version": 2}})
        );
    }
}
