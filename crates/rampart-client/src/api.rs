//! Typed calls to the gateway's HTTP API.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_proto::ErrorBody;
use rampart_proto::api::{
    AuditRecord, Bastion, BastionChange, LoginRequest, RefreshRequest, Subscription, TokenResponse,
};
use rampart_proto::tunnel::{GRANT_PATH, TunnelGrant, TunnelRequest};
pub use reqwest::Method;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::trust::{Trust, TrustError, client_config};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered with an error; `message` names the reason.
    #[error("{message} ({code})")]
    Api { status: u16, code: String, message: String },
    #[error("not signed in: run `rampart login --server URL` first")]
    NotSignedIn,
    #[error("invalid gateway URL '{0}': expected https://HOST[:PORT]")]
    BadUrl(String),
    #[error("TLS: {0}")]
    Trust(#[from] TrustError),
    #[error("cannot reach the gateway: {0}")]
    Http(String),
}

impl ClientError {
    /// The gateway's error code, if it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn http_error(e: reqwest::Error) -> ClientError {
    // reqwest hides the TLS cause (e.g. a fingerprint mismatch) in the source chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    ClientError::Http(text)
}

/// A signed-in session: tokens and when the access token expires (Unix seconds).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub username: String,
    pub access_token: String,
    pub access_expires_at: i64,
    pub refresh_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn from_tokens(t: TokenResponse) -> Self {
        Session {
            username: t.username,
            access_expires_at: now() + i64::try_from(t.expires_in).unwrap_or(0),
            access_token: t.access_token,
            refresh_token: t.refresh_token,
        }
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(0)).unwrap_or(0)
}

/// Sent with every request, so the audit log shows which client connected.
pub const USER_AGENT: &str = concat!("rampart/", env!("CARGO_PKG_VERSION"));

type SessionListener = Arc<dyn Fn(&Session) + Send + Sync>;

/// A client of one gateway. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    trust: Trust,
    http: reqwest::Client,
    session: Arc<Mutex<Option<Session>>>,
    on_session_change: Option<SessionListener>,
}

impl ApiClient {
    pub fn new(server: &str, trust: Trust) -> Result<Self, ClientError> {
        let base = normalize_server(server)?;
        let tls = client_config(&trust, &[b"h2", b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(http_error)?;
        Ok(ApiClient { base, trust, http, session: Arc::new(Mutex::new(None)), on_session_change: None })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn with_session(self, session: Option<Session>) -> Self {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = session;
        self
    }

    /// Called whenever the session's tokens change (so the CLI can save them).
    pub fn on_session_change(mut self, f: impl Fn(&Session) + Send + Sync + 'static) -> Self {
        self.on_session_change = Some(Arc::new(f));
        self
    }

    pub fn session(&self) -> Option<Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn adopt_session(&self, s: Session) {
        self.set_session(s);
    }

    /// A request before any sign-in (the federated flows).
    pub(crate) async fn send_unauthenticated<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        self.send(method, path, body, None).await
    }

    fn set_session(&self, s: Session) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        if let Some(f) = &self.on_session_change {
            f(&s);
        }
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        token: Option<&str>,
    ) -> Result<Option<T>, ClientError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(http_error)?;
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let bytes = resp.bytes().await.map_err(http_error)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Http(format!("unexpected answer from the gateway: {e}")));
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: format!("Http{}", status.as_u16()),
                message: format!("the gateway answered {status}"),
            },
        })
    }

    /// A valid access token, refreshing it first when it expires within a minute.
    pub async fn access_token(&self) -> Result<String, ClientError> {
        let session = self.session().ok_or(ClientError::NotSignedIn)?;
        if session.access_expires_at - 60 > now() {
            return Ok(session.access_token);
        }
        let refreshed: TokenResponse = self
            .send(
                Method::POST,
                "/api/auth/refresh",
                Some(&RefreshRequest { refresh_token: session.refresh_token }),
                None,
            )
            .await?
            .ok_or_else(|| ClientError::Http("empty refresh answer".into()))?;
        let session = Session::from_tokens(refreshed);
        self.set_session(session.clone());
        Ok(session.access_token)
    }

    async fn authed<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        let token = self.access_token().await?;
        self.send(method, path, body, Some(&token)).await
    }

    /// Any authenticated API call; `None` for an answer with no body (204).
    pub async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        self.authed(method, path, body).await
    }

    /// An authenticated GET whose answer is plain text.
    pub async fn request_text(&self, path: &str) -> Result<String, ClientError> {
        let bytes = self.request_bytes(path).await?;
        String::from_utf8(bytes).map_err(|_| ClientError::Api {
            status: 200,
            code: "NotText".into(),
            message: "the gateway answered with bytes that are not text".into(),
        })
    }

    /// A GET whose answer is kept as bytes (a recording).
    pub async fn request_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let token = self.access_token().await?;
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .send()
            .await
            .map_err(http_error)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(http_error)?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
            Err(ClientError::Api {
                status: status.as_u16(),
                code: body
                    .as_ref()
                    .map(|b| b.error.code.clone())
                    .unwrap_or_else(|| format!("Http{}", status.as_u16())),
                message: body
                    .map(|b| b.error.message)
                    .unwrap_or_else(|| format!("the gateway answered {status}")),
            })
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.authed::<(), T>(Method::GET, path, None)
            .await?
            .ok_or_else(|| ClientError::Http("empty answer".into()))
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Session, ClientError> {
        self.login_with_mfa(username, password, None).await
    }

    /// Signs in with a second factor (a TOTP code or a recovery code) when the account has one.
    pub async fn login_with_mfa(
        &self,
        username: &str,
        password: &str,
        mfa_code: Option<&str>,
    ) -> Result<Session, ClientError> {
        self.sign_in(&LoginRequest {
            username: username.to_string(),
            password: password.to_string(),
            tenant: None,
            mfa_code: mfa_code.map(str::to_string),
        })
        .await
    }

    /// Signs in as a service principal: its application ID, secret and the gateway's tenant.
    pub async fn login_service_principal(
        &self,
        app_id: &str,
        secret: &str,
        tenant: Option<&str>,
    ) -> Result<Session, ClientError> {
        self.sign_in(&LoginRequest {
            username: app_id.to_string(),
            password: secret.to_string(),
            tenant: tenant.map(str::to_string),
            mfa_code: None,
        })
        .await
    }

    async fn sign_in(&self, request: &LoginRequest) -> Result<Session, ClientError> {
        let tokens: TokenResponse = self
            .send(Method::POST, "/api/auth/login", Some(request), None)
            .await?
            .ok_or_else(|| ClientError::Http("empty login answer".into()))?;
        let session = Session::from_tokens(tokens);
        self.set_session(session.clone());
        Ok(session)
    }

    /// Revokes the refresh token on the gateway.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let session = self.session().ok_or(ClientError::NotSignedIn)?;
        self.send::<_, serde_json::Value>(
            Method::POST,
            "/api/auth/logout",
            Some(&RefreshRequest { refresh_token: session.refresh_token }),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, ClientError> {
        self.get("/api/subscriptions").await
    }

    fn bastion_path(subscription: &str, group: &str, name: &str) -> String {
        format!("/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}")
    }

    pub async fn bastions(
        &self,
        subscription: &str,
        group: Option<&str>,
    ) -> Result<Vec<Bastion>, ClientError> {
        match group {
            Some(g) => {
                self.get(&format!("/api/subscriptions/{subscription}/resourceGroups/{g}/bastionHosts")).await
            }
            None => self.get(&format!("/api/subscriptions/{subscription}/bastionHosts")).await,
        }
    }

    pub async fn bastion(&self, subscription: &str, group: &str, name: &str) -> Result<Bastion, ClientError> {
        self.get(&Self::bastion_path(subscription, group, name)).await
    }

    /// PUT creates a bastion (defaults for what `change` leaves out); PATCH changes only
    /// what `change` gives.
    async fn write_bastion(
        &self,
        method: Method,
        (subscription, group, name): (&str, &str, &str),
        change: &BastionChange,
    ) -> Result<Bastion, ClientError> {
        self.authed(method, &Self::bastion_path(subscription, group, name), Some(change))
            .await?
            .ok_or_else(|| ClientError::Http("empty answer".into()))
    }

    pub async fn create_bastion(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
        change: &BastionChange,
    ) -> Result<Bastion, ClientError> {
        self.write_bastion(Method::PUT, (subscription, group, name), change).await
    }

    pub async fn update_bastion(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
        change: &BastionChange,
    ) -> Result<Bastion, ClientError> {
        self.write_bastion(Method::PATCH, (subscription, group, name), change).await
    }

    pub async fn delete_bastion(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Result<(), ClientError> {
        self.authed::<(), serde_json::Value>(
            Method::DELETE,
            &Self::bastion_path(subscription, group, name),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn grant_tunnel(&self, request: &TunnelRequest) -> Result<TunnelGrant, ClientError> {
        self.authed(Method::POST, GRANT_PATH, Some(request))
            .await?
            .ok_or_else(|| ClientError::Http("empty answer".into()))
    }

    /// Asks for a tunnel grant with a raw access token (or none): for tests of refusals.
    pub async fn grant_tunnel_with_token(
        &self,
        request: &TunnelRequest,
        token: Option<&str>,
    ) -> Result<TunnelGrant, ClientError> {
        self.send(Method::POST, GRANT_PATH, Some(request), token)
            .await?
            .ok_or_else(|| ClientError::Http("empty answer".into()))
    }

    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, ClientError> {
        let mut params = vec![];
        if let Some(s) = &query.since {
            params.push(format!("since={}", urlencode(s)));
        }
        if let Some(u) = &query.user {
            params.push(format!("user={}", urlencode(u)));
        }
        if let Some(r) = &query.result {
            params.push(format!("result={}", urlencode(r)));
        }
        if let Some(t) = &query.target {
            params.push(format!("target={}", urlencode(t)));
        }
        if let Some(l) = query.limit {
            params.push(format!("limit={l}"));
        }
        let qs = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
        self.get(&format!("/api/audit{qs}")).await
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    pub since: Option<String>,
    pub user: Option<String>,
    pub result: Option<String>,
    pub target: Option<String>,
    pub limit: Option<u32>,
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `https://host[:port]` without a trailing slash; only https is accepted.
pub fn normalize_server(server: &str) -> Result<String, ClientError> {
    let s = server.trim().trim_end_matches('/');
    let uri: http::Uri = s.parse().map_err(|_| ClientError::BadUrl(server.to_string()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(ClientError::BadUrl(server.to_string()));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(ClientError::BadUrl(server.to_string()));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(normalize_server("https://gw:8443/").ok().as_deref(), Some("https://gw:8443"));
        assert!(normalize_server("http://gw").is_err());
        assert!(normalize_server("gw:8443").is_err());
        assert!(normalize_server("https://gw/api").is_err());
    }
}
