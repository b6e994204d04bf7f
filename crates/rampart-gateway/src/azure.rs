//! What the real Azure CLI (`az` with its `bastion` and `ssh` extensions) talks to, so it can use
//! a Rampart gateway as a custom cloud (`az cloud register`): the cloud's metadata, an OAuth 2.0
//! authority in the shape MSAL expects (`authority`), an ARM-shaped read of Rampart's inventory
//! (`arm`), the bastion data plane of `az network bastion tunnel|ssh` (`webtunnel`) and
//! of `az network bastion rdp` (`rdp_file`), and SSH certificates for `--auth-type AAD`.
//! Everything here is an adapter: sign-in, roles, the admission service and the session
//! lifecycle are the ones every other client goes through.

mod arm;
pub(crate) mod auth_code;
mod authority;
pub(crate) mod device;
mod rdp_file;
mod ssh_cert;
mod webtunnel;

use axum::Router;
use axum::routing::{any, get, post};

use crate::api::AppState;
pub(crate) use webtunnel::UsedTokens;

/// The routes az uses, merged into the API's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata/endpoints", get(authority::metadata))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(authority::openid_configuration))
        .route("/{tenant}/oauth2/v2.0/token", post(authority::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(authority::device_code))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authority::authorize))
        .route("/tenants", get(arm::tenants))
        .route("/subscriptions", get(arm::subscriptions))
        .route("/subscriptions/{*rest}", any(arm::dispatch))
        .route(webtunnel::TOKENS, post(webtunnel::create_token))
        .route(webtunnel::TOKEN, axum::routing::delete(webtunnel::delete_token))
        .route("/api/rdpfile", get(rdp_file::rdp_file))
        .route("/webtunnelv2/{token}", get(webtunnel::connect))
        .route("/webtunnel/{token}", get(webtunnel::connect))
}

/// Repeated slashes in a request's path become one: az's documentation registers a cloud as
/// `https://HOST/` and then asks for `//metadata/endpoints`.
pub fn collapse_slashes<B>(req: &mut http::Request<B>) {
    let path = req.uri().path();
    if !path.contains("//") {
        return;
    }
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{collapsed}?{q}"),
        None => collapsed,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = http::uri::PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// What az sends, parsed as the routes parse it (the `azure_requests` fuzz target): ARM
/// paths, `/api/tokens` forms, token requests' scopes and SSH key requests, request paths.
pub fn fuzz(text: &str) {
    if let Some((sub, resource)) = arm::parse(text) {
        assert!(!sub.is_empty() && !sub.contains('/'), "a subscription is one segment");
        if let arm::Resource::One { group, name, .. } = resource {
            assert!(!group.contains('/') && !name.contains('/') && !name.is_empty(), "names are segments");
        }
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(text.as_bytes()).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if let Ok((target, port)) = webtunnel::target(
        field("resourceId"),
        field("hostname"),
        field("workloadHostPort"),
        field("protocol"),
    ) {
        assert!(field("workloadHostPort").trim().parse::<u16>() == Ok(port), "the port is the form's");
        if let webtunnel::AzTarget::Ip { subscription, group, .. } = target {
            assert!(!subscription.contains('/') && !group.contains('/'), "segments");
        }
    }
    let _ = authority::check_scope("https://gw.example", field("scope"), true);
    let _ = ssh_cert::ask(&form);
    if let Ok(mut req) = http::Request::get(text).body(()) {
        collapse_slashes(&mut req);
        assert!(!req.uri().path().contains("//"), "no repeated slash is left");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_slashes_collapse_and_the_query_stays() {
        let mut req = http::Request::get("https://gw.example//metadata//endpoints?api-version=2022-09-01")
            .body(())
            .expect("request");
        collapse_slashes(&mut req);
        assert_eq!(req.uri().path(), "/metadata/endpoints");
        assert_eq!(req.uri().query(), Some("api-version=2022-09-01"));
        let mut plain = http::Request::get("/api/healthz").body(()).expect("request");
        collapse_slashes(&mut plain);
        assert_eq!(plain.uri().path(), "/api/healthz");
    }
}
