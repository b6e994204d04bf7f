//! The Connect page's "Download an .rdp file": the same grant as `rampart network bastion
//! rdp --output-rdp-file` (the user's roles, the policy and the bastion's settings decide,
//! audited), written as an .rdp file that any RDP client opens through the RD Gateway.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use rampart_proto::tunnel::TunnelRequest;
use serde::Deserialize;

use super::{CONNECT, PortalUser, error_page, same_origin};
use crate::api::{ApiError, AppState, ClientAddr, UserAgent};

/// The Connect form's fields this needs (the target's credentials, if typed, are not read).
#[derive(Deserialize)]
pub struct RdpFileForm {
    csrf: String,
    bastion: String,
    target: Option<String>,
    vm: Option<String>,
    ip: Option<String>,
    port: Option<u16>,
}

pub async fn download(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    user: PortalUser,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<RdpFileForm>,
) -> Response {
    if let Err(refused) = same_origin(&headers, &uri).and_then(|()| user.check_csrf(&form.csrf)) {
        return refused.into_response();
    }
    let by_ip = form.target.as_deref() == Some("ip");
    let request = TunnelRequest {
        bastion_id: form.bastion.clone(),
        target_ip_address: if by_ip { form.ip.clone().filter(|s| !s.trim().is_empty()) } else { None },
        target_resource_id: if by_ip { None } else { form.vm.clone() },
        resource_port: form.port.unwrap_or(3389),
    };
    let back = format!("{CONNECT}?bastion={}", crate::portal::url_encode(&form.bastion));
    let entry = crate::tunnel::grant_entry(client, user_agent, &request);
    let grant = match crate::tunnel::issue(&gw, user.caller.user.clone(), &request, entry, None).await {
        Ok(grant) => grant,
        Err(denial) => return error_page(&ApiError::from(denial), &back),
    };
    let gateway = reached_as(&gw, &headers, &uri);
    let text = rampart_proto::rdp_file::through_gateway(&gateway, &grant.target, &grant.tunnel_token, None);
    let name = request
        .target_resource_id
        .as_deref()
        .and_then(|id| id.rsplit('/').next())
        .unwrap_or("target")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect::<String>();
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-rdp"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.rdp\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// The address the client reached the gateway by, which its RDP client will use too (HTTP/2
/// names it in the request's authority, HTTP/1.1 in Host); the listen address otherwise.
pub(crate) fn reached_as(gw: &crate::server::Gateway, headers: &HeaderMap, uri: &Uri) -> String {
    uri.authority()
        .map(|a| a.to_string())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| gw.config.listen.to_string())
}
