//! The API's contract as a client meets it: authentication is checked before the body (an
//! unauthenticated, malformed request is 401, not 400), every error has the one JSON form even
//! when axum's own extractors or router make it, and the OpenAPI document describes bodies
//! with their types. schemathesis checks the whole document against a live gateway from the
//! README's test command (tests/api/schemathesis.sh).

use std::process::Command;

use anyhow::{Context, Result, ensure};
use rampart_e2e::Gateway;

/// `curl -k`: status, content type and body.
fn call(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, String, String)> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sSk", "-X", method, "-o", "-", "-w", "\n%{http_code} %{content_type}"]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    if let Some(t) = token {
        cmd.args(["-H", &format!("authorization: Bearer {t}")]);
    }
    let out = cmd.arg(format!("{}{path}", gw.url)).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(out.status.success(), "curl {method} {path}: {}", String::from_utf8_lossy(&out.stderr));
    let (body, last) = text.rsplit_once('\n').context("curl's status line")?;
    let (status, content_type) = last.split_once(' ').unwrap_or((last, ""));
    Ok((status.parse()?, content_type.to_string(), body.to_string()))
}

fn error_code(body: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    v["error"]["code"].as_str().map(str::to_string).with_context(|| format!("no error code: {body}"))
}

#[test]
fn authentication_comes_first_and_every_error_is_json() -> Result<()> {
    let gw = Gateway::start(&[])?;
    // Fifty times: refused before its body was read, the answer once ended with a reset
    // HTTP/2 stream that Debian's curl reported as a framing error, one time in five.
    for _ in 0..50 {
        let (status, kind, body) = call(&gw, "POST", "/api/users", Some("{not json"), None)?;
        ensure!(status == 401 && kind.starts_with("application/json"), "{status} {kind} {body}");
        ensure!(error_code(&body)? == "Unauthenticated", "{body}");
    }

    let login = serde_json::json!({"username": "admin", "password": rampart_e2e::ADMIN_PASSWORD}).to_string();
    let (status, _, text) = call(&gw, "POST", "/api/auth/login", Some(&login), None)?;
    ensure!(status == 200, "{text}");
    let tokens: serde_json::Value = serde_json::from_str(&text)?;
    let token = tokens["accessToken"].as_str().context("accessToken")?;
    // axum's query-string rejection, a wrong method, an optional body that is not JSON.
    for (method, path, body, wanted) in [
        ("GET", "/api/audit?limit=many", None, 400),
        ("DELETE", "/api/subscriptions", None, 405),
        ("POST", "/api/roleActivations/x/revoke", Some("\"\u{ff}\""), 422),
    ] {
        let (status, kind, text) = call(&gw, method, path, body, Some(token))?;
        ensure!(status == wanted, "{method} {path}: {status} {text}");
        ensure!(kind.starts_with("application/json"), "{method} {path}: {kind} {text}");
        error_code(&text)?;
    }
    Ok(())
}

#[test]
fn the_openapi_document_describes_bodies_from_their_types() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let (status, _, text) = call(&gw, "GET", "/api/openapi.json", None, None)?;
    ensure!(status == 200);
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    ensure!(doc["openapi"] == "3.1.0");
    let login = &doc["components"]["schemas"]["LoginRequest"];
    let required: Vec<&str> =
        login["required"].as_array().context("required")?.iter().filter_map(|v| v.as_str()).collect();
    ensure!(required.contains(&"username") && required.contains(&"password"), "{login}");
    let create = &doc["paths"]["/api/users"]["post"];
    ensure!(
        create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
            == "#/components/schemas/UserView"
    );
    ensure!(create["responses"]["default"]["$ref"] == "#/components/responses/Error");
    ensure!(create["security"][0]["bearer"].is_array(), "{create}");
    ensure!(doc["paths"]["/api/auth/login"]["post"]["security"].is_null(), "sign-in needs no token");
    Ok(())
}

/// Found by schemathesis: an operator could delete the only Owner assignment (theirs) and leave
/// nobody able to grant access again. Refused, naming why, and audited.
#[test]
fn the_last_owner_assignment_cannot_be_removed() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let listed: serde_json::Value = serde_json::from_str(&gw.ok(&[
        "role",
        "assignment",
        "list",
        "--assignee",
        "admin",
        "--query",
        "[?roleDefinitionName=='Owner']",
    ])?)?;
    let id = listed[0]["id"].as_str().context("admin's Owner assignment")?.to_string();
    let err = gw.refused(&["role", "assignment", "delete", "--ids", &id])?;
    ensure!(err.contains("last assignment that may grant access"), "{err}");
    ensure!(
        rampart_e2e::audit_has(&gw.audit()?, "role-change", "refused", Some("LastAccessManager")),
        "the refusal is audited"
    );
    // With a second Owner in place, the first may go.
    drop(gw.new_user("second")?);
    let scope = listed[0]["scope"].as_str().context("scope")?;
    gw.ok(&["role", "assignment", "create", "--assignee", "second", "--role", "Owner", "--scope", scope])?;
    gw.ok(&["role", "assignment", "delete", "--ids", &id])?;
    Ok(())
}
