//! The route table: each route is registered once, with its documentation, so the router and
//! the OpenAPI document (`GET /openapi.json`) are generated from the same list and cannot
//! drift apart.

use crate::call::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// What the documentation says about one route.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    pub summary: &'static str,
    /// The permission needed (`None`: any authenticated user; `Some("")`: no authentication).
    pub permission: Option<&'static str>,
    pub tag: &'static str,
    /// Success status and what it returns.
    pub ok: (u16, &'static str),
    /// Query parameters, with a description each.
    pub query: &'static [(&'static str, &'static str)],
    /// Whether the request has a JSON body.
    pub body: Option<&'static str>,
}

/// One documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub doc: Doc,
}

/// Collects routes and their documentation.
#[derive(Default)]
pub struct Api {
    paths: BTreeMap<&'static str, MethodRouter<AppState>>,
    docs: Vec<RouteDoc>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("docs", &self.docs).finish()
    }
}

impl Api {
    pub fn route<H, T>(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: H,
        doc: Doc,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "DELETE" => MethodFilter::DELETE,
            "PATCH" => MethodFilter::PATCH,
            _ => MethodFilter::PUT,
        };
        let mr = self
            .paths
            .remove(path)
            .unwrap_or_default()
            .on(filter, handler);
        self.paths.insert(path, mr);
        self.docs.push(RouteDoc { method, path, doc });
        self
    }

    /// The routes, and their documentation.
    pub fn build(self) -> (Router<AppState>, Vec<RouteDoc>) {
        let mut router = Router::new();
        for (path, mr) in self.paths {
            router = router.route(path, mr);
        }
        (router, self.docs)
    }
}

/// The OpenAPI 3.1 document of `docs`.
pub fn openapi(docs: &[RouteDoc]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in docs {
        let mut op = json!({
            "summary": r.doc.summary,
            "tags": [r.doc.tag],
            "responses": {
                r.doc.ok.0.to_string(): {"description": r.doc.ok.1},
                "default": {
                    "description": "An error: a stable code and a message saying what was wrong and what to do",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            }
        });
        match r.doc.permission {
            Some("") => {
                op["security"] = json!([]);
            }
            Some(p) => {
                op["description"] = json!(format!("Needs the `{p}` permission."));
            }
            None => {}
        }
        let mut params: Vec<Value> = Vec::new();
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, desc) in r.doc.query {
            params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}}));
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = r.doc.body {
            op["requestBody"] = json!({
                "required": true,
                "description": body,
                "content": {"application/json": {"schema": {"type": "object"}}}
            });
        }
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "taskwire", "version": taskwire_core::VERSION},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string", "enum": taskwire_core::wire::api::ErrorCode::ALL},
                        "message": {"type": "string"}
                    }}}
                }
            }
        }
    })
}
