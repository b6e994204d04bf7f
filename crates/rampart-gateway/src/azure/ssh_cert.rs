//! `az network bastion ssh --auth-type AAD` (and `az ssh cert`): az's `ssh` extension asks the
//! token endpoint for `token_type=ssh-cert` with its RSA public key as a JWK (`req_cnf`), and
//! expects an OpenSSH user certificate as the access token. The gateway's SSH CA signs it, as
//! for `rampart ssh --auth-type AAD`, for the login the caller's roles give. az names no
//! target, so the certificate holds for every VM that trusts the CA: which of them the user
//! reaches is the tunnel's admission (Reader on the VM), and the login role is checked here
//! at any scope rather than on one VM.

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rampart_core::rbac::{LOGIN_ACTION, LOGIN_AS_ADMIN_ACTION, VM_USER_LOGIN};
use rampart_core::{AuditEvent, AuditResult};
use rampart_ssh::CertificateRequest;

use super::authority::OAuthError;
use crate::api::AuthUser;
use crate::api::caller::Caller;
use crate::server::Gateway;

/// The scope the `ssh` extension asks for (by cloud: Azure's, China's, US Government's).
const CHECK_MY_ACCESS: &str = "/CheckMyAccess/Linux/.default";

/// What a `token_type=ssh-cert` request asks to be certified.
pub(crate) struct CertificateAsk {
    public_key: String,
}

/// The request's certificate ask, if it is one (`None`: an ordinary token request).
pub(crate) fn ask(form: &HashMap<String, String>) -> Result<Option<CertificateAsk>, OAuthError> {
    if form.get("token_type").map(String::as_str) != Some("ssh-cert") {
        return Ok(None);
    }
    let bad = |why: &str| OAuthError::bad("invalid_request", format!("req_cnf: {why}"));
    let jwk: serde_json::Value = form
        .get("req_cnf")
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| bad("a JSON Web Key is required"))?;
    if jwk["kty"] != "RSA" {
        return Err(bad("only RSA keys (kty RSA) are certified, as az makes them"));
    }
    let part = |name: &str| {
        jwk[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .filter(|v| !v.is_empty() && v.len() <= 2048)
            .ok_or_else(|| bad(&format!("'{name}' must be base64url")))
    };
    let public_key =
        rampart_ssh::rsa_public_key(&part("n")?, &part("e")?).map_err(|e| bad(&e.to_string()))?;
    Ok(Some(CertificateAsk { public_key }))
}

/// Whether a scope is the one the `ssh` extension asks certificates under.
pub(crate) fn is_certificate_scope(scope: &str) -> bool {
    scope.ends_with(CHECK_MY_ACCESS)
}

/// Signs the certificate for `user` when a role lets them log in to VMs somewhere; audited
/// either way. Returns the certificate's base64 body (what az writes after the key type) and
/// its lifetime in seconds.
pub(crate) async fn issue(
    gw: &Gateway,
    user: AuthUser,
    ask: &CertificateAsk,
) -> Result<(String, u64), OAuthError> {
    let server = |e: String| OAuthError::server(&e);
    let caller = check(gw, user).await?;
    let login = crate::api::ssh::default_login(caller.name());
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let ttl = gw.config.ssh_certificate_ttl.as_secs();
    let certificate = gw
        .ssh_ca
        .sign(&CertificateRequest {
            public_key: &ask.public_key,
            principals: std::slice::from_ref(&login),
            key_id: &format!("rampart:{}:az", caller.name()),
            valid_after: now.saturating_sub(60),
            valid_before: now + ttl,
            serial: u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0),
        })
        .map_err(|e| OAuthError::bad("invalid_request", e.to_string()))?;
    let what = format!("SSH certificate for az, login '{login}', valid for {ttl} s");
    caller.record(gw, AuditEvent::Certificate, "az ssh-cert", what).await.map_err(|e| server(e.message))?;
    let body = certificate.split_whitespace().nth(1).unwrap_or_default().to_string();
    Ok((body, ttl))
}

/// The caller, if a role lets them log in to VMs somewhere; a refusal is audited.
pub(crate) async fn check(gw: &Gateway, user: AuthUser) -> Result<Caller, OAuthError> {
    let server = |e: String| OAuthError::server(&e);
    let caller =
        Caller::load(gw, user).await.map_err(|e| OAuthError::new(e.status, "invalid_grant", e.message))?;
    let principal = caller.principal();
    let may_log_in = caller.assignments.iter().any(|a| {
        principal.may_data(LOGIN_ACTION, &a.scope) || principal.may_data(LOGIN_AS_ADMIN_ACTION, &a.scope)
    });
    if !may_log_in {
        let message = format!(
            "'{}' holds no role that logs in to VMs ({VM_USER_LOGIN} or above, at any scope): no SSH certificate",
            caller.name()
        );
        let mut entry = caller.entry(AuditEvent::Certificate, AuditResult::Refused);
        entry.reason_code = Some("MissingPermission".into());
        entry.reason = Some(message.clone());
        gw.store.append_audit(&entry).await.map_err(|e| server(e.to_string()))?;
        return Err(OAuthError::new(StatusCode::FORBIDDEN, "unauthorized_client", message));
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn az_s_json_web_key_becomes_an_openssh_rsa_key() {
        let jwk =
            r#"{"kty": "RSA", "n": "xjlCRBqkQRyYxf0AQHl3dFv0tLXBZVu0EymdsY0TWu8", "e": "AQAB", "kid": "k"}"#;
        let form = HashMap::from([
            ("token_type".to_string(), "ssh-cert".to_string()),
            ("req_cnf".to_string(), jwk.to_string()),
        ]);
        let asked = ask(&form).expect("parses").expect("an ssh-cert request");
        assert!(asked.public_key.starts_with("ssh-rsa AAAA"), "{}", asked.public_key);
        let ec = form.clone().into_iter().map(|(k, v)| (k, v.replace("RSA", "EC"))).collect();
        assert!(ask(&ec).is_err());
        assert!(ask(&HashMap::new()).expect("ordinary").is_none());
        assert!(is_certificate_scope("https://pas.windows.net/CheckMyAccess/Linux/.default"));
    }
}
