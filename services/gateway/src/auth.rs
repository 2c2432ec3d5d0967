//! Who is asking. Three ways, all configured, nothing anonymous:
//!
//! - API tokens from the configuration, stored only as SHA-256 hashes;
//! - JWT bearer tokens (HS256 secret, RS256 public key or a JWKS file), checking `exp`, `nbf`,
//!   `iss` and `aud`, with the user and roles taken from configurable claims;
//! - headers set by an authenticating proxy, accepted only from its configured networks.
//!
//! The user recorded for audit is always the authenticated one, never a field of the request.
//! Each source names its users apart ([`Source`]): a token user is recorded by its name,
//! a JWT user as `jwt:<claim>`, a proxy user as `proxy:<header>`, so a JWT whose `sub` is
//! `admin` is never the configured token user `admin`, and never owns its jobs.
//!
//! A door turns what it received into [`Credentials`] (HTTP headers, or the `Authorization`
//! header of a NATS request); nothing past authentication sees a header.

use crate::config::{JwtConfig, ProxyConfig, TokenConfig};
use crate::identity::{Principal, Source};
use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use taskwire_core::wire::api::frames::WS_TOKEN_PROTOCOL;

/// What a request presented to prove who it is. Its `Debug` never shows a token.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The bearer token, from `Authorization: Bearer` or (browsers' WebSockets) the
    /// `bearer.<token>` subprotocol; `Err` when the header is there but not of that form.
    bearer: Option<Result<String, AuthFailure>>,
    /// The authenticating proxy's user header, when present (`None` inside: not text).
    proxy_user: Option<Option<String>>,
    /// The proxy's groups header.
    proxy_groups: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "bearer",
                &self.bearer.as_ref().map(|b| b.as_ref().map(|_| "<token>")),
            )
            .field("proxy_user", &self.proxy_user)
            .finish()
    }
}

impl Credentials {
    /// From the `Authorization` header of a NATS API request (absent: no credentials).
    pub fn from_authorization(value: Option<&str>) -> Self {
        Self {
            bearer: value.map(parse_bearer),
            ..Self::default()
        }
    }

    /// The bearer token presented, if it was well formed.
    pub fn token(&self) -> Option<&str> {
        match &self.bearer {
            Some(Ok(t)) => Some(t),
            _ => None,
        }
    }
}

/// Why authentication failed (said to the caller and recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Unknown,
    Jwt(String),
    UntrustedProxy,
}

impl AuthFailure {
    pub fn message(&self) -> String {
        match self {
            AuthFailure::Missing => {
                "no credentials: send 'Authorization: Bearer <token>' (taskwire up prints an admin token)".into()
            }
            AuthFailure::Malformed => "the Authorization header must be 'Bearer <token>'".into(),
            AuthFailure::Unknown => {
                "the token is not known: check it, or create one with `taskwire token`".into()
            }
            AuthFailure::Jwt(why) => format!("the JWT was refused: {why}"),
            AuthFailure::UntrustedProxy => {
                "proxy identity headers are accepted only from the configured proxy addresses".into()
            }
        }
    }
}

/// Everything that can authenticate a request.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<[u8; 32], Principal>,
    jwt: Option<JwtVerifier>,
    proxy: Option<ProxyTrust>,
}

impl Authenticator {
    pub fn new(
        tokens: &[TokenConfig],
        jwt: Option<&JwtConfig>,
        proxy: Option<&ProxyConfig>,
    ) -> Result<Self, String> {
        let mut by_hash = HashMap::new();
        for t in tokens {
            if let Some(h) = decode_hex32(&t.sha256) {
                by_hash.insert(h, Principal::new(Source::Token, &t.user, t.roles.clone()));
            }
        }
        Ok(Self {
            tokens: by_hash,
            jwt: jwt.map(JwtVerifier::new).transpose()?,
            proxy: proxy.map(ProxyTrust::new).transpose()?,
        })
    }

    /// The roles the configured tokens give the identity `user` (all of its tokens
    /// together), or `None` when it is not a token user the configuration names (a JWT or
    /// proxy identity never is, whatever its name).
    pub fn roles_of(&self, user: &str) -> Option<Vec<String>> {
        if Source::of(user).0 != Source::Token {
            return None;
        }
        let mut roles: Vec<String> = Vec::new();
        let mut known = false;
        for p in self.tokens.values().filter(|p| p.user == user) {
            known = true;
            roles.extend(p.roles.iter().cloned());
        }
        roles.sort();
        roles.dedup();
        known.then_some(roles)
    }

    /// Adds a token given in clear (the admin token of `taskwire up`).
    pub fn add_plain(&mut self, token: &str, principal: Principal) {
        self.tokens.insert(hash(token), principal);
    }

    /// What an HTTP request presents: its bearer token (header or WebSocket subprotocol)
    /// and, when a proxy is configured, the proxy's identity headers.
    pub fn credentials(&self, headers: &HeaderMap) -> Credentials {
        let mut c = Credentials {
            bearer: bearer(headers),
            ..Credentials::default()
        };
        if let Some(proxy) = &self.proxy {
            c.proxy_user = headers
                .get(proxy.user_header.as_str())
                .map(|v| v.to_str().ok().map(str::to_string));
            c.proxy_groups = headers
                .get(proxy.groups_header.as_str())
                .and_then(|g| g.to_str().ok())
                .map(str::to_string);
        }
        c
    }

    /// Authenticates a request from `peer`.
    pub fn authenticate(
        &self,
        creds: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Principal, AuthFailure> {
        if let Some(proxy) = &self.proxy
            && let Some(p) = proxy.identity(creds, peer)?
        {
            return Ok(p);
        }
        let token = creds.bearer.clone().ok_or(AuthFailure::Missing)??;
        // The map is keyed by a cryptographic hash of the token, so the lookup time does not
        // reveal how much of a guessed token was right.
        if let Some(p) = self.tokens.get(&hash(&token)) {
            return Ok(p.clone());
        }
        match &self.jwt {
            Some(v) if token.split('.').count() == 3 => v.verify(&token),
            _ => Err(AuthFailure::Unknown),
        }
    }
}

#[derive(Debug)]
struct JwtVerifier {
    cfg: JwtConfig,
    keys: Keys,
}

enum Keys {
    Hs256(DecodingKey),
    Rs256(DecodingKey),
    Jwks(JwkSet),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Keys::Hs256(_) => "Hs256",
            Keys::Rs256(_) => "Rs256",
            Keys::Jwks(_) => "Jwks",
        })
    }
}

impl JwtVerifier {
    fn new(cfg: &JwtConfig) -> Result<Self, String> {
        let keys = match (
            &cfg.hs256_secret,
            &cfg.rs256_public_key_file,
            &cfg.jwks_file,
        ) {
            (Some(s), None, None) => {
                if s.len() < 32 {
                    return Err("[gateway.jwt] hs256_secret must be at least 32 characters".into());
                }
                Keys::Hs256(DecodingKey::from_secret(s.as_bytes()))
            }
            (None, Some(p), None) => {
                let pem = std::fs::read(p)
                    .map_err(|e| format!("[gateway.jwt] cannot read {}: {e}", p.display()))?;
                Keys::Rs256(DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    format!(
                        "[gateway.jwt] {} is not an RSA public key in PEM: {e}",
                        p.display()
                    )
                })?)
            }
            (None, None, Some(p)) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("[gateway.jwt] cannot read {}: {e}", p.display()))?;
                Keys::Jwks(serde_json::from_str(&text).map_err(|e| {
                    format!("[gateway.jwt] {} is not a JWKS document: {e}", p.display())
                })?)
            }
            _ => {
                return Err(
                    "[gateway.jwt] needs exactly one of hs256_secret, rs256_public_key_file, jwks_file"
                        .into(),
                );
            }
        };
        if cfg.issuer.is_empty() || cfg.audience.is_empty() {
            return Err("[gateway.jwt] needs an issuer and an audience".into());
        }
        Ok(Self {
            cfg: cfg.clone(),
            keys,
        })
    }

    fn verify(&self, token: &str) -> Result<Principal, AuthFailure> {
        let bad = |e: jsonwebtoken::errors::Error| AuthFailure::Jwt(jwt_reason(&e));
        let header = jsonwebtoken::decode_header(token).map_err(bad)?;
        let (key, alg) = match &self.keys {
            Keys::Hs256(k) => (k.clone(), Algorithm::HS256),
            Keys::Rs256(k) => (k.clone(), Algorithm::RS256),
            Keys::Jwks(set) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthFailure::Jwt("it names no key (kid)".into()))?;
                let jwk = set
                    .find(kid)
                    .ok_or_else(|| AuthFailure::Jwt(format!("key '{kid}' is not in the JWKS")))?;
                (DecodingKey::from_jwk(jwk).map_err(bad)?, Algorithm::RS256)
            }
        };
        if header.alg != alg {
            return Err(AuthFailure::Jwt(format!(
                "algorithm {:?} is not accepted (expected {alg:?})",
                header.alg
            )));
        }
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.leeway = self.cfg.leeway_secs;
        // `nbf` is checked when the token has one (jsonwebtoken skips it by default).
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
                .map_err(bad)?;
        let claims = data.claims;
        let user = claims
            .get(&self.cfg.user_claim)
            .and_then(|u| u.as_str())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                AuthFailure::Jwt(format!(
                    "claim '{}' (the user) is missing",
                    self.cfg.user_claim
                ))
            })?;
        let roles = match claims.get(&self.cfg.roles_claim) {
            None => Vec::new(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => s
                .split([',', ' '])
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            Some(_) => {
                return Err(AuthFailure::Jwt(format!(
                    "claim '{}' must be a list of role names",
                    self.cfg.roles_claim
                )));
            }
        };
        Ok(Principal::new(Source::Jwt, user, roles))
    }
}

fn jwt_reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "it has expired".into(),
        K::ImmatureSignature => "it is not valid yet (nbf)".into(),
        K::InvalidAudience => "its audience (aud) is not this gateway's".into(),
        K::InvalidIssuer => "its issuer (iss) is not the configured one".into(),
        K::InvalidSignature => "its signature does not verify".into(),
        K::MissingRequiredClaim(c) => format!("claim '{c}' is missing"),
        K::InvalidAlgorithm => "its algorithm is not accepted".into(),
        other => format!("it cannot be read ({other:?})"),
    }
}

#[derive(Debug)]
struct ProxyTrust {
    nets: Vec<(IpAddr, u8)>,
    user_header: String,
    groups_header: String,
}

impl ProxyTrust {
    fn new(cfg: &ProxyConfig) -> Result<Self, String> {
        let nets = cfg
            .trusted_sources
            .iter()
            .map(|n| parse_cidr(n))
            .collect::<Result<Vec<_>, _>>()?;
        if nets.is_empty() {
            return Err("[gateway.proxy] trusted_sources must list the proxy's addresses".into());
        }
        Ok(Self {
            nets,
            user_header: cfg.user_header.clone(),
            groups_header: cfg.groups_header.clone(),
        })
    }

    /// The identity in the proxy headers, if there are any; refused from an untrusted peer.
    fn identity(
        &self,
        creds: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<Principal>, AuthFailure> {
        let Some(user) = &creds.proxy_user else {
            return Ok(None);
        };
        let trusted = peer.is_some_and(|ip| self.nets.iter().any(|n| contains(*n, ip)));
        if !trusted {
            return Err(AuthFailure::UntrustedProxy);
        }
        let user = user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or(AuthFailure::Malformed)?;
        let roles = creds
            .proxy_groups
            .as_deref()
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Principal::new(Source::Proxy, user, roles)))
    }
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = match text.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("[gateway.proxy] '{text}' is not an address or network"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => b
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("[gateway.proxy] '{text}' has an invalid prefix length"))?,
    };
    Ok((ip, bits))
}

fn contains((net, bits): (IpAddr, u8), ip: IpAddr) -> bool {
    let ip = match (net, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Finds the bearer token in `Authorization`, or (for WebSockets) in the subprotocol list;
/// `None` when neither is there.
fn bearer(headers: &HeaderMap) -> Option<Result<String, AuthFailure>> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        return Some(match v.to_str() {
            Ok(v) => parse_bearer(v),
            Err(_) => Err(AuthFailure::Malformed),
        });
    }
    let list = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    list.split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(WS_TOKEN_PROTOCOL))
        .map(|t| Ok(t.to_string()))
}

/// The token of an `Authorization: Bearer <token>` value.
fn parse_bearer(v: &str) -> Result<String, AuthFailure> {
    let token = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .ok_or(AuthFailure::Malformed)?
        .trim();
    if token.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    Ok(token.to_string())
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lower-case hex of a token's SHA-256, as written in the configuration.
pub fn hash_hex(token: &str) -> String {
    hash(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: `tw_` and 43 URL-safe characters (256 bits).
pub fn generate_token() -> Result<String, String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(format!(
        "tw_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with_token(token: &str) -> Authenticator {
        Authenticator::new(
            &[TokenConfig {
                user: "alice".into(),
                sha256: hash_hex(token),
                roles: vec!["ops".into()],
            }],
            None,
            None,
        )
        .unwrap()
    }

    fn bearer_headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_matched_by_hash_only() {
        let token = generate_token().unwrap();
        assert!(token.starts_with("tw_") && token.len() == 46);
        let a = auth_with_token(&token);
        let creds = |h: &HeaderMap| a.credentials(h);
        assert_eq!(
            a.authenticate(&creds(&bearer_headers(&token)), None)
                .unwrap()
                .user,
            "alice"
        );
        assert_eq!(
            a.authenticate(&creds(&bearer_headers("tw_wrong")), None),
            Err(AuthFailure::Unknown)
        );
        // A NATS request presents the same header, and gets the same answer.
        let nats = Credentials::from_authorization(Some(&format!("Bearer {token}")));
        assert_eq!(a.authenticate(&nats, None).unwrap().user, "alice");
        assert_eq!(
            a.authenticate(&Credentials::from_authorization(None), None),
            Err(AuthFailure::Missing)
        );
        assert!(
            !format!("{nats:?}").contains(&token),
            "Debug shows no token"
        );
        assert_eq!(
            hash_hex("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
    }

    #[test]
    fn bearer_from_header_or_subprotocol() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), Some(Err(AuthFailure::Malformed)));
        h.insert("authorization", "Bearer tw_x".parse().unwrap());
        assert_eq!(bearer(&h), Some(Ok("tw_x".into())));
        let mut w = HeaderMap::new();
        w.insert(
            "sec-websocket-protocol",
            "taskwire, bearer.tw_y".parse().unwrap(),
        );
        assert_eq!(bearer(&w), Some(Ok("tw_y".into())));
    }

    #[test]
    fn networks_match() {
        let n = parse_cidr("10.1.0.0/16").unwrap();
        assert!(contains(n, "10.1.200.3".parse().unwrap()));
        assert!(!contains(n, "10.2.0.1".parse().unwrap()));
        assert!(contains(
            parse_cidr("127.0.0.1").unwrap(),
            "::ffff:127.0.0.1".parse().unwrap()
        ));
        assert!(contains(
            parse_cidr("::1/128").unwrap(),
            "::1".parse().unwrap()
        ));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nonsense").is_err());
    }
}
