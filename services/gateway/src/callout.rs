//! NATS auth callout: direct NATS clients sign in with their taskwire token.
//!
//! nats-server (2.10+, with an `auth_callout` block naming this gateway's issuer) sends every
//! connection that is not one of taskwire's own identities to `$SYS.REQ.USER.AUTH`, as a JWT
//! signed by the server. The gateways answer it in their queue group: the connection's token
//! (`connect_opts.auth_token`: an API token or a JWT) is authenticated exactly as the HTTP door
//! does, the decision is audited (`nats.connect`, allowed or refused), and the answer is a
//! user signed by the issuer: allowed to publish `tw.api.>` and to receive on its own inbox
//! only, expiring with the token or after `[gateway] nats_session`, whichever is first (the
//! rule is `taskwire_core::auth::direct`'s). A refused token gets an error answer: the client
//! sees "Authorization Violation".
//!
//! Nothing is granted without its audit record: when the decision cannot be recorded, the
//! connection is refused. A request that is not a server's authorization request is not
//! answered (nats-server then times the connection out and refuses it).

use crate::auth::Credentials;
use crate::gateway::Gateway;
use crate::identity::{Action, Caller};
use crate::nats_api::QUEUE_GROUP;
use bytes::Bytes;
use std::sync::Arc;
use taskwire_core::auth::direct::{self, CALLOUT_SUBJECT, Issuer};
use taskwire_core::serve::Responder;
use taskwire_core::wire::Via;
use taskwire_core::wire::api::direct::{AuthRequest, NatsClaims};
use tokio_util::sync::CancellationToken;

/// Serves the auth callout until `stop`, when `[gateway] nats_callout_issuer_seed` is set.
pub async fn serve(gw: Arc<Gateway>, stop: CancellationToken) -> crate::Result<Option<Responder>> {
    let Some(path) = gw.cfg.nats_callout_issuer_seed.clone() else {
        return Ok(None);
    };
    let issuer = Arc::new(Issuer::from_file(&path).map_err(|e| {
        crate::GatewayError::Config(format!("[gateway] nats_callout_issuer_seed: {e}"))
    })?);
    let public_key = issuer.public_key();
    let client = gw.client.clone();
    let responder = taskwire_core::serve::respond(
        &client,
        CALLOUT_SUBJECT.to_string(),
        QUEUE_GROUP,
        stop,
        move |msg| {
            let (gw, issuer) = (gw.clone(), issuer.clone());
            async move { answer(&gw, &issuer, &msg.payload).await }
        },
    )
    .await?;
    tracing::info!(issuer = %public_key, "serving NATS auth callout: direct clients sign in with their taskwire token");
    Ok(Some(responder))
}

/// The signed answer to one authorization request (`None`: not one to answer).
async fn answer(gw: &Gateway, issuer: &Issuer, payload: &[u8]) -> Option<Bytes> {
    let now = chrono::Utc::now().timestamp();
    let request = match std::str::from_utf8(payload)
        .map_err(|e| e.to_string())
        .and_then(|text| direct::read_request(text, now).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "an auth callout request that is not a server's authorization request was ignored");
            return None;
        }
    };
    let verdict = decide(gw, issuer, &request, now).await;
    let mut response = direct::response(&request, now, verdict);
    match issuer.sign(&mut response) {
        Ok(jwt) => Some(Bytes::from(jwt)),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign an auth callout answer");
            None
        }
    }
}

/// The user JWT for the connection of `request`, or why it is refused; audited either way.
async fn decide(
    gw: &Gateway,
    issuer: &Issuer,
    request: &NatsClaims<AuthRequest>,
    now: i64,
) -> Result<String, String> {
    let action = Action::NatsConnect;
    let info = &request.nats.client_info;
    let caller = Caller {
        source: match info.host.as_str() {
            "" => "nats".to_string(),
            host => format!("nats {host}"),
        },
        ip: None,
        via: Via::Nats,
    };
    let token = request.nats.connect_opts.auth_token.as_str();
    let creds = match token {
        "" => Credentials::from_authorization(None),
        t => Credentials::from_authorization(Some(&format!("Bearer {t}"))),
    };
    // A refusal is audited by `authenticate`, as at every door.
    let who = gw
        .authenticate(&creds, &caller, action)
        .await
        .map_err(|e| e.message)?;
    let exp = direct::session_expiry(now, direct::token_expiry(token), gw.cfg.nats_session);
    let refuse = async |reason: String| match gw
        .audit(Some(&who.user), action, None, false, &reason, &caller)
        .await
    {
        Ok(()) => reason,
        Err(e) => e.message,
    };
    if exp <= now {
        // Accepted within the JWT's clock-skew leeway, but a NATS user cannot start expired.
        return Err(refuse("the token has expired; get a new one".into()).await);
    }
    let mut user = direct::user_claims(&gw.ns, token, &request.nats.user_nkey, &who.user, now, exp);
    let jwt = match issuer.sign(&mut user) {
        Ok(jwt) => jwt,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a direct client's user");
            return Err(refuse("the gateway could not sign the user; try again".into()).await);
        }
    };
    let until = chrono::DateTime::from_timestamp(exp, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    let reason = format!(
        "signed in over NATS (client {}) until {until}, receiving on {}.>",
        info.id,
        direct::inbox_prefix(token)
    );
    gw.audit(Some(&who.user), action, None, true, &reason, &caller)
        .await
        .map_err(|e| e.message)?;
    Ok(jwt)
}
