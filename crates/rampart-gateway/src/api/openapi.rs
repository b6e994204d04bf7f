//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the API, built from the same
//! route table as the router.

use axum::Json;
use serde_json::{Map, Value, json};

use super::ROUTES;

fn operation(method: &str, path: &str, summary: &str) -> Value {
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let public = matches!(path, "/healthz" | "/api/auth/login" | "/api/auth/refresh" | "/api/openapi.json");
    let mut op = json!({
        "summary": summary,
        "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
        "parameters": params,
        "responses": {
            "200": {"description": "Success"},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
    });
    if !public {
        op["security"] = json!([{"bearer": []}]);
    }
    if matches!(method, "post" | "put" | "patch") {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    }
    op
}

pub fn spec() -> Value {
    let mut paths = Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation(method, path, summary);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Rampart gateway API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {"Error": {
                "description": "An error naming its reason",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}}
                }}}
            }},
        },
    })
}

pub async fn document() -> Json<Value> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_once_per_method() {
        let spec = super::spec();
        let paths = spec["paths"].as_object().expect("paths");
        let operations: usize = paths.values().map(|p| p.as_object().map_or(0, |o| o.len())).sum();
        assert_eq!(operations, super::ROUTES.len());
        assert!(paths.contains_key("/api/tunnels"));
    }
}
