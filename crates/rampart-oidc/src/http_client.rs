//! The HTTP client the protocol runs over: the provider's private CA when configured (and only
//! it then), no redirects (a redirect from a token endpoint is an SSRF lever), time limits, and
//! answers read up to a bound.

use std::time::Duration;

use openidconnect::{HttpRequest, HttpResponse};

use crate::OidcError;

/// Discovery documents, key sets and token answers are small; a bigger answer is refused.
const MAX_ANSWER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

pub fn build(ca_pem: Option<&str>) -> Result<reqwest::Client, OidcError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| OidcError::Config(format!("the CA file is not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(OidcError::Config("the CA file holds no certificate".into()));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| OidcError::Config(format!("HTTP client: {e}")))
}

pub async fn send(http: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let mut answer = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(describe(&e)))?;
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| HttpError(describe(&e)))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(HttpError(format!("the answer is larger than {MAX_ANSWER} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let mut response = http::Response::new(body);
    *response.status_mut() = answer.status();
    *response.headers_mut() = answer.headers().clone();
    Ok(response)
}

/// reqwest's error with its causes (the TLS reason, say), on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
