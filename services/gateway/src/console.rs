//! The web console: the built front end (`services/gateway/console`, `npm run build`) served
//! at `/` and `/assets/<file>` from a folder on disk. The console talks to the gateway only
//! through the public API, so serving it needs no permission; the page itself holds no data.
//!
//! The folder is `[gateway] console_dir`, or else the first `services/gateway/console/dist`
//! found above the executable (the checkout it was built in). Without a build, `/` answers 503
//! with a page that says how to build it, never a blank page.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a source checkout keeps the built console, relative to the checkout.
const CHECKOUT_DIST: &str = "services/gateway/console/dist";

/// Only what the page loads from its own origin; xterm.js sets inline styles.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

/// The console's files, or where they were looked for.
#[derive(Debug, Clone)]
pub struct Console {
    dir: Option<PathBuf>,
    searched: Vec<PathBuf>,
}

impl Console {
    /// The configured folder, else the build of the checkout the executable was built in
    /// (`<checkout>/target/<profile>/taskwire`; the checkout is the nearest folder above the
    /// executable that holds a `Cargo.toml`). Never the working directory: a gateway started
    /// in a folder others can write to must not serve their scripts on its origin.
    pub fn locate(configured: Option<&std::path::Path>) -> Self {
        let console = match configured {
            Some(dir) => Self {
                dir: Some(dir.to_path_buf()),
                searched: vec![dir.to_path_buf()],
            },
            None => {
                let searched: Vec<PathBuf> = std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
                    .and_then(|d| {
                        // the checkout: the nearest folder above it holding a Cargo.toml
                        d.ancestors()
                            .find(|a| a.join("Cargo.toml").is_file())
                            .map(|a| vec![a.join(CHECKOUT_DIST)])
                    })
                    .unwrap_or_default();
                let dir = searched
                    .iter()
                    .find(|d| d.join("index.html").is_file())
                    .cloned();
                Self { dir, searched }
            }
        };
        match &console.dir {
            Some(d) => tracing::info!(dir = %d.display(), "web console files"),
            None => tracing::warn!("web console not built; / explains how to build it"),
        }
        console
    }

    /// The folder served, when one was configured or found.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    fn missing_page(&self) -> Response {
        let looked: String = self
            .searched
            .iter()
            .map(|p| format!("<li><code>{}</code></li>", escape(&p.display().to_string())))
            .collect();
        let looked = if looked.is_empty() {
            "<li>nowhere: the executable is not inside a checkout, so set \
             <code>console_dir</code></li>"
                .to_string()
        } else {
            looked
        };
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>taskwire: console not built</title></head><body>\
             <h1>The taskwire web console is not built</h1>\
             <p>The API works (<a href=\"/openapi.json\">/openapi.json</a>); only the console's \
             files are missing. Build them with <code>ops/up</code>, or with \
             <code>npm ci &amp;&amp; npm run build</code> in <code>services/gateway/console</code>, \
             or point <code>[gateway] console_dir</code> (environment \
             <code>TASKWIRE_GATEWAY__CONSOLE_DIR</code>) at a built <code>dist</code> folder.</p>\
             <p>Looked for <code>index.html</code> in:</p><ul>{looked}</ul></body></html>"
        );
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        set_headers(&mut resp, "text/html; charset=utf-8");
        resp
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" | "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

fn set_headers(resp: &mut Response, ctype: &'static str) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Rebuilt files are picked up at once; they are small and served from the page cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
}

/// `GET /` and `GET /assets/{file}`, served from `console`.
pub fn routes(console: Console) -> Router {
    Router::new()
        .route("/", axum::routing::get(index))
        .route("/assets/{file}", axum::routing::get(asset))
        .with_state(Arc::new(console))
}

async fn serve_file(console: &Console, relative: &str) -> Response {
    let Some(dir) = console.dir() else {
        return console.missing_page();
    };
    let Some(ctype) = content_type(relative) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    match tokio::fs::read(dir.join(relative)).await {
        Ok(bytes) => {
            let mut resp = bytes.into_response();
            set_headers(&mut resp, ctype);
            resp
        }
        Err(_) if relative == "index.html" => console.missing_page(),
        Err(_) => (StatusCode::NOT_FOUND, "no such console file").into_response(),
    }
}

/// `GET /`: the console's page.
async fn index(State(console): State<Arc<Console>>) -> Response {
    serve_file(&console, "index.html").await
}

/// `GET /assets/{file}`: one built file. Names are single path components of letters, digits,
/// `.`, `-` and `_`, never starting with a dot, so nothing outside the folder can be named.
async fn asset(State(console): State<Arc<Console>>, Path(file): Path<String>) -> Response {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !plain {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    }
    serve_file(&console, &format!("assets/{file}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_kinds_of_file_are_served() {
        assert_eq!(
            content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("app.css"), Some("text/css; charset=utf-8"));
        assert_eq!(content_type("secrets"), None);
        assert_eq!(content_type("config.toml"), None);
    }

    /// The quoted names of a TypeScript union or list that starts with `head` in `src`.
    fn ts_names(src: &str, head: &str) -> Vec<String> {
        let start = src
            .find(head)
            .unwrap_or_else(|| panic!("types.ts has no {head}"));
        let body = &src[start + head.len()..];
        let end = body.find(';').unwrap_or(body.len());
        body[..end]
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_console_types_name_the_same_states_and_permissions_as_rust() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/src/types.ts");
        let src = std::fs::read_to_string(&path).unwrap();
        let states: Vec<String> = taskwire_core::wire::JobState::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        assert_eq!(ts_names(&src, "export type JobState ="), states);
        assert_eq!(
            ts_names(&src, "export const JOB_STATES: JobState[] ="),
            states
        );
        let terminal: Vec<String> = taskwire_core::wire::JobState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str().to_string())
            .collect();
        assert_eq!(ts_names(&src, "export const TERMINAL"), terminal);
        let perms: Vec<String> = crate::identity::Permission::ALL
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        assert_eq!(ts_names(&src, "export type Permission ="), perms);
    }

    #[test]
    fn page_text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
