//! Which pages may open a socket: the gateway's own origin, or one listed in
//! `[gateway] allowed_origins`. Clients that send no `Origin` (not browsers) are accepted;
//! the origin `null` is not.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// Same origin (scheme-less comparison with `Host`) or an allowed one; the refusal says how
/// to allow it.
pub fn check(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    if allowed.iter().any(|a| a == origin) {
        return Ok(());
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o == host);
    if same {
        Ok(())
    } else {
        Err(format!(
            "WebSocket origin '{origin}' is not allowed; add it to [gateway] allowed_origins"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_and_listed_origins_only() {
        assert!(check(&headers(None, "gw:8080"), &[]).is_ok());
        assert!(check(&headers(Some("http://gw:8080"), "gw:8080"), &[]).is_ok());
        assert!(check(&headers(Some("https://gw:8080"), "gw:8080"), &[]).is_ok());
        let e = check(&headers(Some("https://evil.example"), "gw:8080"), &[]).unwrap_err();
        assert!(e.contains("allowed_origins"), "{e}");
        assert!(check(&headers(Some("null"), "gw:8080"), &[]).is_err());
        let allowed = ["https://console.example".to_string()];
        assert!(
            check(
                &headers(Some("https://console.example"), "gw:8080"),
                &allowed
            )
            .is_ok()
        );
    }
}
