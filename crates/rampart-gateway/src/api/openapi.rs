//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the API, built from the route table
//! the router is built from and, for bodies, from the `rampart-proto` types themselves
//! (schemars; JSON Schema 2020-12, which OpenAPI 3.1 uses as is).

use axum::Json;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::ROUTES;
use super::contract::{self, Reply};

/// Routes anyone may call (no token).
fn public(path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/readyz"
            | "/api/auth/login"
            | "/api/auth/refresh"
            | "/api/auth/logout"
            | "/api/openapi.json"
    ) || path.starts_with("/api/auth/oidc/")
}

fn success(reply: &Reply, g: &mut SchemaGenerator) -> (String, Value) {
    let content = |media: &str, schema: Value| json!({ media: { "schema": schema } });
    match reply {
        Reply::Json(status, schema) => (
            status.to_string(),
            json!({"description": "Success", "content": content("application/json", schema(g).to_value())}),
        ),
        Reply::Empty => ("204".into(), json!({"description": "Done; no body"})),
        Reply::Text(media) => (
            "200".into(),
            json!({"description": "Success", "content": content(media, json!({"type": "string"}))}),
        ),
        Reply::Recording => (
            "200".into(),
            json!({"description": "The recording as it was written", "content": {
                "application/x-asciicast": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }}),
        ),
        Reply::Upgrade => (
            "101".into(),
            json!({"description": "Switching protocols: a WebSocket, or Rampart's tunnel framing (docs/tunnel-protocol.md)"}),
        ),
    }
}

fn operation(method: &str, path: &str, summary: &str, g: &mut SchemaGenerator) -> Value {
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let contract = contract::of_route(method, path);
    if let Some(c) = &contract {
        for (name, kind, required, description) in c.query {
            params.push(json!({"name": name, "in": "query", "required": required, "description": description, "schema": {"type": kind}}));
        }
    }
    let mut responses = Map::new();
    if let Some(c) = &contract {
        let (status, answer) = success(&c.reply, g);
        responses.insert(status, answer);
    }
    // Every refusal and error has the same body, whatever its status.
    responses.insert("default".into(), json!({"$ref": "#/components/responses/Error"}));
    let mut op = json!({
        "summary": summary,
        "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
        "parameters": params,
        "responses": responses,
    });
    if !public(path) {
        op["security"] = json!([{"bearer": []}]);
    }
    if let Some(c) = &contract
        && let Some(body) = c.body
    {
        op["requestBody"] = json!({
            "required": !c.body_optional,
            "content": {"application/json": {"schema": body(g).to_value()}},
        });
    }
    op
}

pub fn spec() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for (method, path, summary) in ROUTES {
        let op = operation(method, path, summary, &mut g);
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let error = g.subschema_for::<rampart_proto::ErrorBody>().to_value();
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rampart gateway API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sign in with POST /api/auth/login (or an identity provider) and send the access token as `Authorization: Bearer …`. Resources follow Azure's layout (subscriptions, resource groups, bastionHosts, virtualMachines). Every error is `{\"error\": {\"code\", \"message\"}}` naming its reason.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas,
            "responses": {"Error": {
                "description": "A refusal or error naming its reason (401 unauthenticated, 403 refused, 404 not found, 400/422 a bad request, 409 conflict, 429 too many attempts)",
                "content": {"application/json": {
                    "schema": error,
                    "example": {"error": {"code": "AuthorizationFailed", "message": "refused: …"}},
                }},
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
    fn every_route_is_documented_once_per_method_with_its_contract() {
        let spec = super::spec();
        let paths = spec["paths"].as_object().expect("paths");
        let operations: usize = paths.values().map(|p| p.as_object().map_or(0, |o| o.len())).sum();
        assert_eq!(operations, super::ROUTES.len());
        for (method, path, _) in super::ROUTES {
            assert!(super::contract::of_route(method, path).is_some(), "{method} {path} has no contract");
        }
        let login = &spec["paths"]["/api/auth/login"]["post"];
        assert!(login["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string());
        let schemas = spec["components"]["schemas"].as_object().expect("schemas");
        assert!(schemas.contains_key("LoginRequest") && schemas.contains_key("Bastion"), "{schemas:?}");
        // Every $ref resolves.
        let text = spec.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
