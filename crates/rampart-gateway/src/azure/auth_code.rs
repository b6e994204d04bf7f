//! Plain `az login` (MSAL's authorization code flow with PKCE and a loopback redirect): az
//! opens the browser at `/{tenant}/oauth2/v2.0/authorize`, the user signs in to the portal as
//! usual and approves, the browser carries a code to az's listener on `localhost`, and az
//! redeems it with its PKCE verifier. Only loopback redirects are taken (az is a public client
//! on the user's own machine), PKCE with S256 is required, a code lives two minutes and is
//! redeemed once (a marker in the store's refresh-token table, as device codes are).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth;
use crate::server::Gateway;

const CODE_AUDIENCE: &str = "rampart-az-code";
const CODE_TTL_SECS: i64 = 120;

/// What az asks for at the authorize endpoint (the parameters MSAL sends).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub code_challenge: String,
    #[serde(default)]
    pub code_challenge_method: String,
    #[serde(default)]
    pub nonce: String,
    /// `form_post` (what MSAL asks for): the code is posted to the redirect; else in its query.
    #[serde(default)]
    pub response_mode: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CodeClaims {
    pub sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    pub nonce: String,
}

/// Why an authorize request is not served (shown on the page, never sent to the redirect).
pub fn check(req: &AuthorizeRequest) -> Result<(), String> {
    if req.response_type != "code" {
        return Err("only response_type=code is offered".into());
    }
    if req.client_id.is_empty() || req.client_id.len() > 64 {
        return Err("client_id is missing".into());
    }
    if !is_loopback_redirect(&req.redirect_uri) {
        return Err(format!(
            "the redirect address '{}' is not this computer's (http://localhost:PORT or http://127.0.0.1:PORT)",
            req.redirect_uri.chars().take(100).collect::<String>()
        ));
    }
    if req.code_challenge_method != "S256" || req.code_challenge.len() < 43 || req.code_challenge.len() > 128
    {
        return Err("PKCE is required: code_challenge with code_challenge_method=S256".into());
    }
    if !matches!(req.response_mode.as_str(), "" | "query" | "form_post") {
        return Err("response_mode must be query or form_post".into());
    }
    if req.state.len() > 512 || req.nonce.len() > 512 {
        return Err("state or nonce is too long".into());
    }
    Ok(())
}

/// `http://localhost:PORT[/path]` or `http://127.0.0.1:PORT[/path]`: az's own listener.
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else { return false };
    url.scheme() == "http"
        && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
}

/// A code for `user_id`, redeemable once within two minutes.
pub async fn issue(gw: &Gateway, user_id: &str, req: &AuthorizeRequest, now: i64) -> Result<String, String> {
    let jti = auth::random_secret(16);
    let claims = CodeClaims {
        sub: user_id.to_string(),
        aud: CODE_AUDIENCE.into(),
        iat: now,
        exp: now + CODE_TTL_SECS,
        jti: jti.clone(),
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        challenge: req.code_challenge.clone(),
        nonce: req.nonce.clone(),
    };
    let code = gw.keys.sign(&claims).map_err(|e| e.to_string())?;
    gw.store.insert_refresh_token(&marker(&jti), user_id, claims.exp).await.map_err(|e| e.to_string())?;
    Ok(code)
}

/// The redirect with the code and state in its query (`response_mode=query`).
pub fn redirect_with(req: &AuthorizeRequest, code: &str) -> Result<String, String> {
    let mut url = url::Url::parse(&req.redirect_uri).map_err(|e| e.to_string())?;
    url.query_pairs_mut().append_pair("code", code).append_pair("state", &req.state);
    Ok(url.to_string())
}

/// The redirect's origin (`http://localhost:PORT`), for the page that posts to it.
pub fn redirect_origin(req: &AuthorizeRequest) -> Option<String> {
    url::Url::parse(&req.redirect_uri).ok().map(|u| u.origin().ascii_serialization())
}

/// The code's one-time record in the refresh-token table: prefixed, so no string presented as
/// a refresh token (stored as its bare SHA-256) can ever name it.
fn marker(jti: &str) -> String {
    format!("az-authorization-code:{}", auth::refresh_token_hash(jti))
}

/// Redeems a code: the redirect and client must be the ones it was given for, the verifier
/// must hash to its challenge, and it must not have been redeemed. The code's claims, or why not.
pub(crate) async fn redeem(
    gw: &Gateway,
    code: &str,
    redirect_uri: &str,
    client_id: &str,
    verifier: &str,
    now: i64,
) -> Result<CodeClaims, String> {
    let claims: CodeClaims = gw.keys.verify(code, CODE_AUDIENCE).map_err(|e| format!("code: {e}"))?;
    if claims.redirect_uri != redirect_uri || claims.client_id != client_id {
        return Err("the code was given for another client or redirect address".into());
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if verifier.len() < 43 || computed != claims.challenge {
        return Err("the code_verifier does not match the code's challenge (PKCE)".into());
    }
    match gw.store.consume_refresh_token(&marker(&claims.jti), now).await {
        Ok(Some(user)) if user == claims.sub => Ok(claims),
        Ok(_) => Err("the code was already used".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redirects_and_pkce_are_served() {
        let ok = AuthorizeRequest {
            client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46".into(),
            response_type: "code".into(),
            redirect_uri: "http://localhost:49152".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            code_challenge_method: "S256".into(),
            ..Default::default()
        };
        assert_eq!(check(&ok), Ok(()));
        for bad in [
            "https://evil.example/",
            "http://localhost.evil.example:80/",
            "http://u:p@localhost:1/",
            "javascript:alert(1)",
        ] {
            let r = AuthorizeRequest { redirect_uri: bad.into(), ..ok.clone() };
            assert!(check(&r).is_err(), "{bad}");
        }
        assert!(check(&AuthorizeRequest { code_challenge_method: "plain".into(), ..ok.clone() }).is_err());
        assert!(check(&AuthorizeRequest { response_type: "token".into(), ..ok }).is_err());
    }
}
