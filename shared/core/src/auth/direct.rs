//! Direct NATS clients: the permissions and inbox of a user the gateway's auth callout makes
//! for a client that connects with its taskwire token, and the NATS JWTs that carry them.
//!
//! The rule, in one place (the gateway applies it, `server_conf` and the docs state it):
//!
//! - A client connects with its taskwire token (an API token or a JWT) as the connection's
//!   token. nats-server asks the gateway on [`CALLOUT_SUBJECT`]; the gateway authenticates
//!   the token exactly as its HTTP door does, audits the decision, and answers with a user
//!   signed by the callout issuer (an account key) in account [`super::ACCOUNT`].
//! - That user may publish only to `tw.api.>` (of its name space) and subscribe only to its
//!   own inbox `_INBOX.<h>.>`, where `h` is [`inbox_prefix`]'s hash of the token as presented:
//!   the client computes it itself, and no other client can read its replies. It answers
//!   nobody's requests (no `resp`).
//! - The user expires at [`session_expiry`]: the token's own expiry, or the session length
//!   (`[gateway] nats_session`) from now, whichever comes first. nats-server closes the
//!   connection then; the client's reconnect signs in again, so a token that was removed or
//!   expired loses its connection within one session length and is refused from then on.
//!
//! This module never decides who a token belongs to (the gateway's authenticator does), and
//! never grants a direct client more than the two lists above.

use crate::auth::ACCOUNT;
use crate::error::{Error, Result};
use crate::names::Namespace;
use crate::wire::api::direct::{
    AUTH_REQUEST_AUDIENCE, AUTH_REQUEST_TYPE, AUTH_RESPONSE_TYPE, AuthRequest, AuthResponse,
    CLAIMS_VERSION, NO_LIMIT, NatsClaims, SubjectRule, USER_TYPE, UserGrant,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::{KeyPair, KeyPairType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Where nats-server asks who a connection is (in the callout's account).
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The header of every NATS JWT (nats-io/jwt v2).
const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
const JWT_ALG: &str = "ed25519-nkey";

/// How many hex digits of the token's SHA-256 name its inbox.
pub const INBOX_HASH_DIGITS: usize = 32;

/// The inbox prefix of a direct client holding `token`: `_INBOX.<h>` with `h` the first 32
/// lower-case hex digits of the SHA-256 of the token as presented. The client sets it as its
/// inbox prefix (`nats --inbox-prefix`, async-nats `custom_inbox_prefix`).
pub fn inbox_prefix(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut h = String::with_capacity(INBOX_HASH_DIGITS);
    for b in digest.iter().take(INBOX_HASH_DIGITS / 2) {
        h.push_str(&format!("{b:02x}"));
    }
    format!("_INBOX.{h}")
}

/// What the user of a direct client holding `token` may do: publish `tw.api.>`, subscribe
/// its own inbox, nothing else.
pub fn grant(ns: &Namespace, token: &str) -> UserGrant {
    UserGrant {
        publish: SubjectRule {
            allow: vec![ns.api_all()],
            deny: Vec::new(),
        },
        subscribe: SubjectRule {
            allow: vec![format!("{}.>", inbox_prefix(token))],
            deny: Vec::new(),
        },
        subs: NO_LIMIT,
        data: NO_LIMIT,
        payload: NO_LIMIT,
        claim_type: USER_TYPE.into(),
        version: CLAIMS_VERSION,
    }
}

/// When a direct client's user expires (Unix seconds): at the token's own expiry if it has
/// one, and never later than `session` after `now`.
pub fn session_expiry(now: i64, token_expiry: Option<i64>, session: Duration) -> i64 {
    let longest = now.saturating_add(i64::try_from(session.as_secs()).unwrap_or(i64::MAX));
    token_expiry.map_or(longest, |exp| exp.min(longest))
}

/// The `exp` of a token shaped like a JWT (read without checking it: call this only for a
/// token that authenticated). `None` for an API token, or a JWT without `exp`.
pub fn token_expiry(token: &str) -> Option<i64> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_f64().map(|e| e.floor() as i64)
}

/// The user a direct client gets: `sub` the connection's nkey (from the request), in account
/// [`ACCOUNT`], named for the taskwire user, allowed [`grant`], expiring at `exp`.
pub fn user_claims(
    ns: &Namespace,
    token: &str,
    user_nkey: &str,
    user: &str,
    now: i64,
    exp: i64,
) -> NatsClaims<UserGrant> {
    NatsClaims {
        aud: Some(ACCOUNT.into()),
        exp: Some(exp),
        jti: None,
        iat: Some(now),
        iss: String::new(),
        name: Some(user.into()),
        nbf: None,
        sub: user_nkey.into(),
        nats: grant(ns, token),
    }
}

/// The answer to one authorization request: the signed user JWT, or why not.
pub fn response(
    request: &NatsClaims<AuthRequest>,
    now: i64,
    answer: std::result::Result<String, String>,
) -> NatsClaims<AuthResponse> {
    let (jwt, error) = match answer {
        Ok(jwt) => (Some(jwt), None),
        Err(e) => (None, Some(e)),
    };
    NatsClaims {
        aud: Some(request.nats.server_id.id.clone()),
        exp: None,
        jti: None,
        iat: Some(now),
        iss: String::new(),
        name: None,
        nbf: None,
        sub: request.nats.user_nkey.clone(),
        nats: AuthResponse {
            jwt,
            error,
            claim_type: AUTH_RESPONSE_TYPE.into(),
            version: CLAIMS_VERSION,
        },
    }
}

/// The callout issuer: the account key that signs direct clients' users and the answers to
/// nats-server. Its `Debug` shows only the public key.
pub struct Issuer {
    key: KeyPair,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("public_key", &self.key.public_key())
            .finish()
    }
}

impl Issuer {
    /// The issuer whose account seed (`SA…`) is in the private file `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let key = super::keys::read_seed(path)?;
        Self::new(key).map_err(|message| Error::Keys {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The issuer of account key `key`.
    pub fn new(key: KeyPair) -> std::result::Result<Self, String> {
        if key.key_pair_type() != KeyPairType::Account {
            return Err(format!(
                "holds a {:?} key; the callout issuer is an account key (a seed starting with SA)",
                key.key_pair_type()
            ));
        }
        Ok(Self { key })
    }

    /// The public key (`A…`): the `issuer` of the server's `auth_callout` block.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Signs `claims` as this issuer (see [`sign`]).
    pub fn sign<T: Serialize>(&self, claims: &mut NatsClaims<T>) -> Result<String> {
        sign(claims, &self.key)
    }
}

fn jwt_err(step: &'static str, message: impl std::fmt::Display) -> Error {
    Error::NatsJwt {
        step,
        message: message.to_string(),
    }
}

/// Signs `claims` as `signer`: sets `iss` to its public key and a fresh `jti`, and returns
/// the JWT (`header.payload.signature`, base64url without padding, the signature an nkey
/// signature over `header.payload`).
pub fn sign<T: Serialize>(claims: &mut NatsClaims<T>, signer: &KeyPair) -> Result<String> {
    claims.iss = signer.public_key();
    claims.jti = Some(uuid::Uuid::new_v4().simple().to_string().to_uppercase());
    let payload = serde_json::to_vec(claims).map_err(|e| jwt_err("encoding the claims", e))?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(JWT_HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = signer
        .sign(input.as_bytes())
        .map_err(|e| jwt_err("signing", e))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Reads a NATS JWT and checks that its `iss` signed it. Whether that issuer is trusted is
/// the caller's to decide.
pub fn verify<T: DeserializeOwned>(jwt: &str) -> Result<NatsClaims<T>> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(jwt_err(
            "reading the JWT",
            "it is not header.payload.signature",
        ));
    };
    let decode = |what: &'static str, part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|e| jwt_err(what, e))
    };
    let head: serde_json::Value = serde_json::from_slice(&decode("reading the header", header)?)
        .map_err(|e| jwt_err("reading the header", e))?;
    if head.get("alg").and_then(|a| a.as_str()) != Some(JWT_ALG) {
        return Err(jwt_err(
            "reading the header",
            format!("alg is not {JWT_ALG}"),
        ));
    }
    let claims: NatsClaims<T> = serde_json::from_slice(&decode("reading the claims", payload)?)
        .map_err(|e| jwt_err("reading the claims", e))?;
    let signer =
        KeyPair::from_public_key(&claims.iss).map_err(|e| jwt_err("reading the issuer", e))?;
    let sig = decode("reading the signature", sig)?;
    let signed = &jwt[..header.len() + 1 + payload.len()];
    signer
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| jwt_err("checking the signature", "it does not verify"))?;
    Ok(claims)
}

/// An authorization request as nats-server sends it: signed by a server key, of type
/// `authorization_request` for audience `nats-authorization-request`, not expired at `now`,
/// naming a user nkey.
pub fn read_request(jwt: &str, now: i64) -> Result<NatsClaims<AuthRequest>> {
    let r: NatsClaims<AuthRequest> = verify(jwt)?;
    let is = |key: &str, kind: KeyPairType| {
        KeyPair::from_public_key(key).is_ok_and(|k| k.key_pair_type() == kind)
    };
    if !is(&r.iss, KeyPairType::Server) {
        return Err(jwt_err(
            "checking the request",
            "its issuer is not a server key",
        ));
    }
    if r.nats.claim_type != AUTH_REQUEST_TYPE || r.aud.as_deref() != Some(AUTH_REQUEST_AUDIENCE) {
        return Err(jwt_err(
            "checking the request",
            "it is not an authorization request",
        ));
    }
    if r.exp.is_some_and(|exp| exp < now) {
        return Err(jwt_err("checking the request", "it has expired"));
    }
    if !is(&r.nats.user_nkey, KeyPairType::User) {
        return Err(jwt_err(
            "checking the request",
            "user_nkey is not a user key",
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::api::direct::{ClientInfo, ConnectOpts, ServerId};

    fn request(server: &KeyPair, user: &KeyPair, exp: i64) -> String {
        let mut r = NatsClaims {
            aud: Some(AUTH_REQUEST_AUDIENCE.into()),
            exp: Some(exp),
            jti: None,
            iat: Some(100),
            iss: String::new(),
            name: None,
            nbf: None,
            sub: "AISSUER".into(),
            nats: AuthRequest {
                server_id: ServerId {
                    id: server.public_key(),
                    ..ServerId::default()
                },
                user_nkey: user.public_key(),
                client_info: ClientInfo::default(),
                connect_opts: ConnectOpts {
                    auth_token: "tw_secret".into(),
                    ..ConnectOpts::default()
                },
                claim_type: AUTH_REQUEST_TYPE.into(),
                version: 2,
            },
        };
        sign(&mut r, server).unwrap()
    }

    #[test]
    fn the_inbox_is_the_tokens_hash_and_the_only_subscription() {
        // `printf %s tw_test_token_of_alice | sha256sum | cut -c1-32`
        let p = inbox_prefix("tw_test_token_of_alice");
        assert_eq!(p, "_INBOX.5a7054cd22fb68e8b59e288297efc128");
        assert_ne!(p, inbox_prefix("tw_test_token_of_bob"));
        let g = grant(&Namespace::root(), "tw_test_token_of_alice");
        assert_eq!(g.publish.allow, ["tw.api.>"]);
        assert_eq!(g.subscribe.allow, [format!("{p}.>")]);
        let t1 = grant(&Namespace::with_prefix("t1").unwrap(), "x");
        assert_eq!(t1.publish.allow, ["t1.tw.api.>"]);
    }

    #[test]
    fn a_session_ends_at_the_tokens_expiry_or_its_length() {
        let s = Duration::from_secs(60);
        assert_eq!(session_expiry(1000, None, s), 1060);
        assert_eq!(session_expiry(1000, Some(1010), s), 1010);
        assert_eq!(session_expiry(1000, Some(5000), s), 1060);
    }

    #[test]
    fn a_jwts_expiry_is_read_and_an_api_token_has_none() {
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","exp":1700000000}"#);
        assert_eq!(token_expiry(&format!("e30.{claims}.sig")), Some(1700000000));
        assert_eq!(token_expiry("tw_test_token_of_alice"), None);
        let no_exp = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice"}"#);
        assert_eq!(token_expiry(&format!("e30.{no_exp}.sig")), None);
    }

    #[test]
    fn a_signed_user_verifies_and_a_changed_one_does_not() {
        let issuer = KeyPair::new_account();
        let client = KeyPair::new_user();
        let mut u = user_claims(
            &Namespace::root(),
            "tok",
            &client.public_key(),
            "alice",
            100,
            160,
        );
        let jwt = sign(&mut u, &issuer).unwrap();
        let head = jwt.split('.').next().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(head).unwrap(), JWT_HEADER.as_bytes());
        let back: NatsClaims<UserGrant> = verify(&jwt).unwrap();
        assert_eq!(back.iss, issuer.public_key());
        assert_eq!(back.sub, client.public_key());
        assert_eq!(back.aud.as_deref(), Some(ACCOUNT));
        assert_eq!(back.exp, Some(160));
        assert_eq!(back, u);
        let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
        let mut forged = back.clone();
        forged.nats.subscribe.allow = vec![">".into()];
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let e = verify::<UserGrant>(&parts.join(".")).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
    }

    #[test]
    fn only_a_servers_live_authorization_request_is_read() {
        let server = KeyPair::new_server();
        let client = KeyPair::new_user();
        let r = read_request(&request(&server, &client, 200), 150).unwrap();
        assert_eq!(r.nats.user_nkey, client.public_key());
        assert_eq!(r.nats.connect_opts.auth_token, "tw_secret");
        let e = read_request(&request(&server, &client, 200), 201).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let e = read_request(&request(&KeyPair::new_account(), &client, 200), 150).unwrap_err();
        assert!(e.to_string().contains("not a server key"), "{e}");
        let reply = response(&r, 150, Err("refused".into()));
        assert_eq!(reply.aud.as_deref(), Some(server.public_key().as_str()));
        assert_eq!(reply.sub, client.public_key());
        assert_eq!(reply.nats.error.as_deref(), Some("refused"));
    }
}
