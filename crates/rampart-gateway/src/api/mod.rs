//! The HTTP API. JSON in and out; every error is an [`ErrorBody`] with a stable code and a
//! message that names the reason.

pub use json_body::JsonBody;

pub(crate) mod access;
pub(crate) mod activation;
pub(crate) mod audit;
pub(crate) mod bastions;
pub(crate) mod caller;
mod contract;
pub(crate) mod federation;
mod host_keys;
pub(crate) mod inventory;
mod json_body;
pub(crate) mod mfa;
mod nodes;
mod openapi;
pub(crate) mod principals;
pub(crate) mod recordings;
pub(crate) mod session;
pub(crate) mod sessions;
pub(crate) mod shareable;
pub(crate) mod ssh;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rampart_core::Refusal;
use rampart_proto::ErrorBody;
use rampart_proto::tunnel::{CONNECT_PATH, GRANT_PATH, MUX_PATH, STREAM_PATH};
use rampart_store::StoreError;

use crate::auth::AccessClaims;
use crate::server::Gateway;
use crate::tunnel;

pub type AppState = Arc<Gateway>;

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl ClientAddr {
    pub fn from_parts(parts: &Parts) -> SocketAddr {
        parts
            .extensions
            .get::<ClientAddr>()
            .map(|c| c.0)
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(ClientAddr::from_parts(parts)))
    }
}

/// Every API route: method, path, summary. The router and the OpenAPI document are both
/// built from this table.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("get", HEALTHZ, "Ready check"),
    ("post", LOGIN, "Sign in with a user name and password"),
    ("post", REFRESH, "Exchange a refresh token for new tokens"),
    ("post", LOGOUT, "Revoke a refresh token"),
    ("post", OIDC_DEVICE, "Start a device sign-in with an identity provider"),
    ("post", OIDC_TOKEN, "Finish a federated sign-in: poll a device code, or redeem the CLI's loopback code"),
    ("get", IDENTITY_PROVIDERS, "List identity providers"),
    ("post", IDENTITY_PROVIDERS, "Add an OpenID Connect identity provider"),
    ("get", IDENTITY_PROVIDER, "Show an identity provider (never its secret)"),
    ("delete", IDENTITY_PROVIDER, "Delete an identity provider with its users and groups"),
    ("get", GROUPS, "List groups with their members"),
    ("get", MY_MFA, "Whether the signed-in user has an authenticator"),
    ("post", MY_TOTP, "Start TOTP enrolment: a new secret and its otpauth URI"),
    ("post", MY_TOTP_VERIFY, "Finish TOTP enrolment with a first code; returns recovery codes once"),
    ("post", MY_TOTP_DISABLE, "Remove the signed-in user's authenticator (with a current code)"),
    ("delete", USER_MFA, "Reset a user's authenticator (lost device)"),
    ("post", GROUPS, "Add an identity provider's group"),
    ("get", SUBSCRIPTIONS, "Subscriptions the caller has roles in"),
    ("get", BASTIONS, "Bastions the caller may read"),
    ("get", GROUP_BASTIONS, "Bastions in a resource group"),
    ("get", BASTION, "Show a bastion"),
    ("put", BASTION, "Create a bastion"),
    ("patch", BASTION, "Change a bastion's tier or settings"),
    ("delete", BASTION, "Delete a bastion"),
    ("get", VMS, "Registered machines the caller may read"),
    ("post", VM_IMPORT, "Register many VMs at once"),
    ("get", VM, "Show a registered VM"),
    ("put", VM, "Register a VM"),
    ("patch", VM, "Change a registered VM's OS, address or ports"),
    ("delete", VM, "Unregister a VM"),
    ("get", VMSS, "Show a scale set's instances"),
    ("put", VMSS, "Register a scale set and its instances"),
    ("delete", VMSS, "Unregister a scale set and its instances"),
    ("get", NICS, "Network interfaces the caller may read"),
    ("get", NIC, "Show a network interface"),
    ("get", USERS, "List users"),
    ("post", USERS, "Create a user"),
    ("get", USER, "Show a user"),
    ("delete", USER, "Delete a user"),
    ("put", USER_PASSWORD, "Set a user's password"),
    ("get", SERVICE_PRINCIPALS, "List service principals"),
    ("post", SERVICE_PRINCIPALS, "Create a service principal with a role at scopes (ad sp create-for-rbac)"),
    ("delete", SERVICE_PRINCIPAL, "Delete a service principal"),
    ("post", SERVICE_PRINCIPAL_RESET, "Reset a service principal's secret"),
    ("get", ROLE_DEFINITIONS, "Built-in and custom roles"),
    ("post", ROLE_DEFINITIONS, "Create a custom role"),
    ("get", ROLE_ASSIGNMENTS, "Role assignments the caller may read"),
    ("post", ROLE_ASSIGNMENTS, "Assign a role at a scope"),
    ("delete", ROLE_ASSIGNMENT, "Remove a role assignment"),
    (
        "get",
        ROLE_ACTIVATIONS,
        "Activations: your own, those you may approve, and (with role-assignment write) everyone's",
    ),
    ("post", ROLE_ACTIVATIONS, "Activate an eligible role assignment for a while"),
    (
        "post",
        ROLE_ACTIVATION_DECISION,
        "Approve or deny a pending activation (an approver, never the requester)",
    ),
    ("post", ROLE_ACTIVATION_REVOKE, "End an activation early; the sessions it admitted end"),
    ("post", GRANT_PATH, "Ask for a tunnel grant"),
    ("get", CONNECT_PATH, "Open one tunnelled connection (WebSocket, protocol v1)"),
    ("post", STREAM_PATH, "Open one tunnelled connection (an HTTP/2 stream, protocol v2)"),
    ("get", MUX_PATH, "Open a tunnel connection carrying many tunnelled connections (upgrade, protocol v3)"),
    ("get", AUDIT, "Audit records, newest first"),
    ("get", AUDIT_VERIFY, "Verify the audit log's hash chain"),
    ("get", OPENAPI, "This document"),
    ("get", SSH_CA, "The SSH certificate authority's public key"),
    ("post", SSH_CERTIFICATES, "Sign a short-lived SSH user certificate (identity sign-in)"),
    ("get", READYZ, "Ready for new work (503 while draining)"),
    ("get", METRICS, "Prometheus metrics"),
    ("get", SESSIONS, "Live sessions on a bastion, on every node"),
    (
        "get",
        SHELL,
        "A shell the gateway opens by identity sign-in and records (WebSocket; rampart ssh on a recording bastion)",
    ),
    ("get", SESSION_JOIN, "Join a browser terminal running on this node (WebSocket; ?mode=view|interact)"),
    ("get", RECORDINGS, "A bastion's session recordings (?user, ?target, ?search, ?since)"),
    ("get", RECORDING, "One recording's details"),
    ("get", RECORDING_CONTENT, "A recording's bytes (asciicast v2, or rampart-desktop-v1)"),
    ("get", RECORDING_VERIFY, "Check a recording's size and SHA-256 against those recorded"),
    ("get", NODES, "The gateway nodes sharing this store, as their heartbeats show them"),
    ("post", NODE_DRAIN, "Drain a node: it refuses new work and stops once its sessions end"),
    ("delete", SESSION, "Disconnect a session"),
    ("get", HOST_KEYS, "Host keys and RDP certificates pinned for targets the bastion reaches"),
    ("delete", HOST_KEYS, "Forget a pinned host key or certificate (?target=…&kind=ssh|rdp)"),
    ("post", LINKS_CREATE, "Make a shareable link per VM (Standard and Premium); each is shown once"),
    ("post", LINKS_GET, "The bastion's shareable links (only these VMs' when some are named)"),
    ("post", LINKS_DELETE, "Delete shareable links by VM or id; their sessions end"),
    ("post", LINKS_DELETE_BY_TOKEN, "Delete shareable links by the link (or token) handed out"),
];

/// Every path, named once for the table above and the router below.
const HEALTHZ: &str = "/healthz";
const LOGIN: &str = "/api/auth/login";
const REFRESH: &str = "/api/auth/refresh";
const LOGOUT: &str = "/api/auth/logout";
const OIDC_DEVICE: &str = "/api/auth/oidc/{name}/devicecode";
const OIDC_TOKEN: &str = "/api/auth/oidc/{name}/token";
const IDENTITY_PROVIDERS: &str = "/api/identityProviders";
const IDENTITY_PROVIDER: &str = "/api/identityProviders/{name}";
const GROUPS: &str = "/api/groups";
const MY_MFA: &str = "/api/me/mfa";
const MY_TOTP: &str = "/api/me/mfa/totp";
const MY_TOTP_VERIFY: &str = "/api/me/mfa/totp/verify";
const MY_TOTP_DISABLE: &str = "/api/me/mfa/totp/disable";
const USER_MFA: &str = "/api/users/{upn}/mfa";
const SUBSCRIPTIONS: &str = "/api/subscriptions";
const BASTIONS: &str = "/api/subscriptions/{subscription}/bastionHosts";
const GROUP_BASTIONS: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts";
const VMS: &str = "/api/subscriptions/{subscription}/virtualMachines";
const VM_IMPORT: &str = "/api/subscriptions/{subscription}/virtualMachines/import";
const NICS: &str = "/api/subscriptions/{subscription}/networkInterfaces";
const USERS: &str = "/api/users";
const USER_PASSWORD: &str = "/api/users/{upn}/password";
const SERVICE_PRINCIPALS: &str = "/api/servicePrincipals";
const SERVICE_PRINCIPAL: &str = "/api/servicePrincipals/{app_id}";
const SERVICE_PRINCIPAL_RESET: &str = "/api/servicePrincipals/{app_id}/credentials/reset";
const ROLE_DEFINITIONS: &str = "/api/roleDefinitions";
const ROLE_ASSIGNMENTS: &str = "/api/roleAssignments";
const ROLE_ASSIGNMENT: &str = "/api/roleAssignments/{id}";
const ROLE_ACTIVATIONS: &str = "/api/roleActivations";
const ROLE_ACTIVATION_DECISION: &str = "/api/roleActivations/{id}/{verdict}";
const ROLE_ACTIVATION_REVOKE: &str = "/api/roleActivations/{id}/revoke";
const AUDIT: &str = "/api/audit";
const AUDIT_VERIFY: &str = "/api/audit/verify";
const OPENAPI: &str = "/api/openapi.json";
const SSH_CA: &str = "/api/ssh/ca";
const SSH_CERTIFICATES: &str = "/api/ssh/certificates";
const READYZ: &str = "/readyz";
const NODES: &str = "/api/nodes";
const NODE_DRAIN: &str = "/api/nodes/{name}/drain";
const METRICS: &str = "/metrics";
const SESSION: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/sessions/{id}";
const BASTION: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}";
const LINKS_CREATE: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/createShareableLinks";
const LINKS_GET: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/getShareableLinks";
const LINKS_DELETE: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/deleteShareableLinks";
const LINKS_DELETE_BY_TOKEN: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/deleteShareableLinksByToken";
const VM: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/virtualMachines/{name}";
const VMSS: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/virtualMachineScaleSets/{name}";
const NIC: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/networkInterfaces/{name}";
const USER: &str = "/api/users/{upn}";
const SESSIONS: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/sessions";
const SHELL: &str = "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/shell";
const SESSION_JOIN: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/sessions/{id}/join";
const RECORDINGS: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/recordings";
const RECORDING: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/recordings/{id}";
const RECORDING_CONTENT: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/recordings/{id}/content";
const RECORDING_VERIFY: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/recordings/{id}/verify";
const HOST_KEYS: &str =
    "/api/subscriptions/{subscription}/resourceGroups/{group}/bastionHosts/{name}/hostKeys";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(LOGIN, post(session::login))
        .route(REFRESH, post(session::refresh))
        .route(LOGOUT, post(session::logout))
        .route(OIDC_DEVICE, post(federation::device_code))
        .route(OIDC_TOKEN, post(federation::token))
        .route(IDENTITY_PROVIDERS, get(federation::list_providers).post(federation::create_provider))
        .route(IDENTITY_PROVIDER, get(federation::show_provider).delete(federation::delete_provider))
        .route(GROUPS, get(federation::list_groups).post(federation::create_group))
        .route(MY_MFA, get(mfa::status))
        .route(MY_TOTP, post(mfa::enable))
        .route(MY_TOTP_VERIFY, post(mfa::verify))
        .route(MY_TOTP_DISABLE, post(mfa::disable))
        .route(USER_MFA, axum::routing::delete(mfa::reset))
        .route(SUBSCRIPTIONS, get(bastions::list_subscriptions))
        .route(BASTIONS, get(bastions::list_in_subscription))
        .route(GROUP_BASTIONS, get(bastions::list_in_group))
        .route(
            BASTION,
            get(bastions::show).put(bastions::create).patch(bastions::update).delete(bastions::delete),
        )
        .route(VMS, get(inventory::list_vms))
        .route(VM_IMPORT, post(inventory::import_vms))
        .route(
            VM,
            get(inventory::show_vm)
                .put(inventory::register_vm)
                .patch(inventory::update_vm)
                .delete(inventory::unregister_vm),
        )
        .route(
            VMSS,
            get(inventory::show_scale_set)
                .put(inventory::register_scale_set)
                .delete(inventory::unregister_scale_set),
        )
        .route(NICS, get(inventory::list_nics))
        .route(NIC, get(inventory::show_nic))
        .route(USERS, get(access::list_users).post(access::create_user))
        .route(USER, get(access::show_user).delete(access::delete_user))
        .route(USER_PASSWORD, axum::routing::put(access::set_password))
        .route(SERVICE_PRINCIPALS, get(principals::list).post(principals::create))
        .route(SERVICE_PRINCIPAL, axum::routing::delete(principals::delete))
        .route(SERVICE_PRINCIPAL_RESET, post(principals::reset_credential))
        .route(ROLE_DEFINITIONS, get(access::list_roles).post(access::create_role))
        .route(ROLE_ASSIGNMENTS, get(access::list_assignments).post(access::create_assignment))
        .route(ROLE_ASSIGNMENT, axum::routing::delete(access::delete_assignment))
        .route(ROLE_ACTIVATIONS, get(activation::list).post(activation::activate))
        .route(ROLE_ACTIVATION_REVOKE, post(activation::revoke))
        .route(ROLE_ACTIVATION_DECISION, post(activation::decide))
        .route(GRANT_PATH, post(tunnel::grant))
        .route(CONNECT_PATH, get(tunnel::connect))
        .route(STREAM_PATH, post(tunnel::open_stream))
        .route(MUX_PATH, get(tunnel::open_mux))
        .route(crate::rd_gateway::PATH, axum::routing::any(crate::rd_gateway::endpoint))
        .route(AUDIT, get(audit::list))
        .route(AUDIT_VERIFY, get(audit::verify))
        .route(OPENAPI, get(openapi::document))
        .route(SSH_CA, get(ssh::ca_public_key))
        .route(SSH_CERTIFICATES, post(ssh::issue_certificate))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics))
        .route(SESSIONS, get(sessions::list))
        .route(NODES, get(nodes::list))
        .route(NODE_DRAIN, post(nodes::drain))
        .route(SESSION, axum::routing::delete(sessions::disconnect))
        .route(SESSION_JOIN, get(crate::portal::join_over_api))
        .route(SHELL, get(crate::portal::native_shell))
        .route(HOST_KEYS, get(host_keys::list).delete(host_keys::forget))
        .route(LINKS_CREATE, post(shareable::create))
        .route(LINKS_GET, post(shareable::list))
        .route(LINKS_DELETE, post(shareable::delete))
        .route(LINKS_DELETE_BY_TOKEN, post(shareable::delete_by_token))
        .route(RECORDINGS, get(recordings::list))
        .route(RECORDING, get(recordings::show))
        .route(RECORDING_CONTENT, get(recordings::export))
        .route(RECORDING_VERIFY, get(recordings::verify))
        .merge(crate::azure::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// A small request body (a declared length of at most 64 KiB; never a tunnel's stream) is read
/// before the handler runs. A request refused before its body is read (401 for a missing
/// token) would otherwise end with the HTTP/2 stream reset after the answer, which Debian's
/// curl 7.88 reports as a framing error instead of the answer (one time in five, measured).
async fn read_small_body(request: axum::extract::Request) -> axum::extract::Request {
    const SMALL: u64 = 64 * 1024;
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if request.uri().path() == STREAM_PATH || !length.is_some_and(|n| n > 0 && n <= SMALL) {
        return request;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, SMALL as usize).await {
        Ok(bytes) => axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)),
        // A body that ends early or lies about its length: the handler sees an empty one and
        // refuses it as it would.
        Err(_) => axum::extract::Request::from_parts(parts, axum::body::Body::empty()),
    }
}

/// Every error answer in the API's one form, `{"error": {"code", "message"}}`, including the
/// ones axum's own extractors and router make (a bad query string, a wrong method): the
/// OpenAPI document promises it, and clients parse one shape.
/// `/healthz`, `/readyz` and `/metrics` stay plain text, as balancers and scrapers expect.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let request = if api { read_small_body(request).await } else { request };
    let response = next.run(request).await;
    let status = response.status();
    if !api {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let allow = response.headers().get(header::ALLOW).cloned();
    // These bodies are one line of text; anything longer is cut, never buffered whole.
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::UNPROCESSABLE_ENTITY => "InvalidBody",
        StatusCode::PAYLOAD_TOO_LARGE => "BodyTooLarge",
        StatusCode::UPGRADE_REQUIRED => "UpgradeRequired",
        _ => "Error",
    };
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in [(header::RETRY_AFTER, retry_after), (header::ALLOW, allow)] {
        if let Some(v) = value {
            answer.headers_mut().insert(name, v);
        }
    }
    answer
}

async fn healthz() -> &'static str {
    "ok"
}

/// 503 once the gateway is draining, so a load balancer sends new work elsewhere.
async fn readyz(State(gw): State<AppState>) -> (StatusCode, &'static str) {
    if gw.draining.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// Prometheus text format; 404 when metrics are off or served on their own listener.
async fn metrics(State(gw): State<AppState>) -> Response {
    match (&gw.metrics, &gw.config.metrics) {
        (Some(handle), crate::config::MetricsEndpoint::Https) => handle.render().into_response(),
        _ => ApiError::new(StatusCode::NOT_FOUND, "NotFound", "metrics are not served here").into_response(),
    }
}

async fn metrics_only(State(gw): State<AppState>) -> Response {
    match &gw.metrics {
        Some(handle) => handle.render().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The router of a separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route(METRICS, get(metrics_only)).with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such API route")
}

/// An error answer: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { status, code: code.into(), message: message.into(), retry_after: None }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthenticated", detail)
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the gateway failed to handle the request; see its log",
        )
    }

    pub fn refused(refusal: &Refusal) -> Self {
        let status = if refusal.reasons().iter().all(|r| {
            matches!(
                r,
                rampart_core::RefusalReason::BastionNotFound { .. }
                    | rampart_core::RefusalReason::TargetNotFound { .. }
                    | rampart_core::RefusalReason::ShareableLinkNotFound
            )
        }) {
            StatusCode::NOT_FOUND
        } else if refusal
            .reasons()
            .iter()
            .any(|r| matches!(r, rampart_core::RefusalReason::Unauthenticated { .. }))
        {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        metrics::counter!("rampart_refusals_total", "reason" => refusal.code()).increment(1);
        Self::new(status, refusal.code(), format!("refused: {refusal}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody::new(self.code, self.message))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<crate::admission::Denial> for ApiError {
    fn from(d: crate::admission::Denial) -> Self {
        use crate::admission::DenialKind;
        let status = match d.kind {
            DenialKind::BadRequest => StatusCode::BAD_REQUEST,
            DenialKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            DenialKind::Forbidden => StatusCode::FORBIDDEN,
            DenialKind::NotFound => StatusCode::NOT_FOUND,
            DenialKind::CarrierNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            DenialKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            DenialKind::TargetUnreachable => StatusCode::BAD_GATEWAY,
            DenialKind::TargetTimeout => StatusCode::GATEWAY_TIMEOUT,
            DenialKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, d.code, d.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{what} was not found"))
            }
            StoreError::Conflict(what) => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", format!("{what} already exists"))
            }
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "the store is unavailable");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "StoreUnavailable",
                    "the gateway's database is unavailable; try again in a few seconds",
                );
                e.retry_after = Some(5);
                e
            }
            other => ApiError::internal(other),
        }
    }
}

/// A signed-in user, from a valid `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub claims: AccessClaims,
    pub client: SocketAddr,
    pub user_agent: Option<String>,
}

/// The request's `User-Agent`, shortened, for audit records.
#[derive(Debug, Clone)]
pub struct UserAgent(pub Option<String>);

impl UserAgent {
    pub fn from_parts(parts: &Parts) -> Option<String> {
        Self::from_headers(&parts.headers)
    }

    pub fn from_headers(headers: &http::HeaderMap) -> Option<String> {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().filter(|c| !c.is_control()).take(256).collect())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(UserAgent(UserAgent::from_parts(parts)))
    }
}

/// Extracts the bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

pub fn bearer_in(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)
            .ok_or_else(|| ApiError::unauthenticated("no access token: sign in with `rampart login`"))?;
        let claims = state.keys.verify_access(token).map_err(ApiError::unauthenticated)?;
        Ok(AuthUser {
            claims,
            client: ClientAddr::from_parts(parts),
            user_agent: UserAgent::from_parts(parts),
        })
    }
}
