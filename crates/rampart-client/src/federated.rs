//! Signing in with an identity provider through the gateway, as `az login` does: in the
//! system browser with a loopback redirect, or with a device code entered anywhere. The
//! gateway holds the provider's client; this side only waits.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rampart_proto::api::TokenResponse;
use rampart_proto::directory::{DeviceCodeView, FederatedTokenRequest};
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::api::{ApiClient, ClientError, Session, urlencode};

/// How long a browser sign-in may take before the CLI gives up.
const BROWSER_WAIT: Duration = Duration::from_secs(300);

fn oidc_path(provider: &str, what: &str) -> String {
    format!("/api/auth/oidc/{}/{what}", urlencode(provider))
}

/// A PKCE verifier (43 characters from 32 random bytes) and its S256 challenge.
fn pkce() -> Result<(String, String), ClientError> {
    let mut bytes = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| ClientError::Http("no random numbers".into()))?;
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Ok((verifier, challenge))
}

impl ApiClient {
    async fn federated_token(
        &self,
        provider: &str,
        request: &FederatedTokenRequest,
    ) -> Result<Session, ClientError> {
        let tokens: TokenResponse = self
            .send_unauthenticated(Method::POST, &oidc_path(provider, "token"), Some(request))
            .await?
            .ok_or_else(|| ClientError::Http("empty sign-in answer".into()))?;
        let session = Session::from_tokens(tokens);
        self.adopt_session(session.clone());
        Ok(session)
    }

    /// The device flow: `show` is given what to tell the user (az's sentence), then the
    /// gateway is polled until the code is approved, denied or expires.
    pub async fn sign_in_with_device_code(
        &self,
        provider: &str,
        show: impl FnOnce(&DeviceCodeView),
    ) -> Result<Session, ClientError> {
        let start: DeviceCodeView = self
            .send_unauthenticated::<(), _>(Method::POST, &oidc_path(provider, "devicecode"), None)
            .await?
            .ok_or_else(|| ClientError::Http("empty device code answer".into()))?;
        show(&start);
        let deadline = Instant::now() + Duration::from_secs(start.expires_in.max(1));
        let mut interval = Duration::from_secs(start.interval.max(1));
        let request = FederatedTokenRequest {
            device_code: Some(start.device_code.clone()),
            code: None,
            code_verifier: None,
        };
        loop {
            tokio::time::sleep(interval).await;
            match self.federated_token(provider, &request).await {
                Ok(session) => return Ok(session),
                Err(ClientError::Api { code, .. })
                    if code == "AuthorizationPending" && Instant::now() < deadline => {}
                Err(ClientError::Api { code, .. }) if code == "AuthorizationPending" => {
                    return Err(ClientError::Api {
                        status: 400,
                        code: "DeviceCodeExpired".into(),
                        message: "nobody approved the code in time; run the command again".into(),
                    });
                }
                Err(ClientError::Api { code, .. }) if code == "SlowDown" => {
                    interval += Duration::from_secs(5)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The browser flow: `open` gets the URL to open (and to print, for where no browser
    /// opens); the gateway sends the browser back to a loopback port with a one-time code,
    /// which only this process (holding the PKCE verifier) can redeem.
    pub async fn sign_in_with_browser(
        &self,
        provider: &str,
        open: impl FnOnce(&str),
    ) -> Result<Session, ClientError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| ClientError::Http(format!("cannot listen on a loopback port: {e}")))?;
        let port = listener.local_addr().map_err(|e| ClientError::Http(e.to_string()))?.port();
        let (verifier, challenge) = pkce()?;
        let url = format!(
            "{}/auth/oidc/{}/login?cli_port={port}&code_challenge={challenge}",
            self.server(),
            urlencode(provider)
        );
        open(&url);
        let code = tokio::time::timeout(BROWSER_WAIT, wait_for_code(&listener))
            .await
            .map_err(|_| ClientError::Http("the browser sign-in did not finish within 5 minutes".into()))??;
        let request =
            FederatedTokenRequest { device_code: None, code: Some(code), code_verifier: Some(verifier) };
        self.federated_token(provider, &request).await
    }
}

/// Serves the loopback port until a request brings `?code=`: the browser gets a page saying
/// it may close, anything else a 404.
async fn wait_for_code(listener: &tokio::net::TcpListener) -> Result<String, ClientError> {
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| ClientError::Http(e.to_string()))?;
        let (found_tx, found_rx) = tokio::sync::oneshot::channel::<String>();
        let found_tx = std::sync::Mutex::new(Some(found_tx));
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let code = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == "code")
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty() && v.len() <= 256);
            let answer = match code {
                Some(code) => {
                    if let Some(tx) = found_tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(code);
                    }
                    (
                        StatusCode::OK,
                        "Signed in to Rampart. You can close this tab and return to the command line.",
                    )
                }
                None => (StatusCode::NOT_FOUND, "Not found"),
            };
            let mut response = Response::new(Full::new(Bytes::from_static(answer.1.as_bytes())));
            *response.status_mut() = answer.0;
            std::future::ready(Ok::<_, std::convert::Infallible>(response))
        });
        let _ =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        if let Ok(code) = found_rx.await {
            return Ok(code);
        }
    }
}
