//! `GET /api/rdpfile` (what `az network bastion rdp` asks for on Windows before starting
//! mstsc): an .rdp file through Rampart's RD Gateway, with a tunnel token for the VM as its
//! gateway access token, granted as every tunnel is (roles, settings, policy, audited).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use rampart_proto::tunnel::TunnelRequest;
use serde::Deserialize;

use super::webtunnel::{AzTarget, choose_bastion, message};
use crate::admission::Denial;
use crate::api::{ApiError, AppState, AuthUser, ClientAddr, UserAgent};

#[derive(Deserialize)]
pub struct RdpFileQuery {
    #[serde(rename = "resourceId", default)]
    resource_id: String,
    #[serde(default)]
    rdpport: Option<u16>,
}

pub async fn rdp_file(
    State(gw): State<AppState>,
    ClientAddr(client): ClientAddr,
    UserAgent(user_agent): UserAgent,
    user: Result<AuthUser, ApiError>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<RdpFileQuery>,
) -> Response {
    let mut request = TunnelRequest {
        bastion_id: String::new(),
        target_ip_address: None,
        target_resource_id: Some(q.resource_id.clone()),
        resource_port: q.rdpport.unwrap_or(3389),
    };
    let entry = crate::tunnel::grant_entry(client, user_agent, &request);
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            let denial = Denial::unauthenticated(e.message);
            return message(&gw.admission.refuse(entry, denial).await);
        }
    };
    let probe = AuthUser { claims: user.claims.clone(), client, user_agent: None };
    let caller = match crate::api::caller::Caller::load(&gw, probe).await {
        Ok(c) => c,
        Err(e) => {
            let denial = Denial::new(crate::admission::DenialKind::Forbidden, e.code, e.message);
            return message(&gw.admission.refuse(entry, denial).await);
        }
    };
    let bastion = match choose_bastion(&gw, &AzTarget::Machine(q.resource_id.clone()), &caller).await {
        Ok(b) => b,
        Err(denial) => return message(&gw.admission.refuse(entry, denial).await),
    };
    request.bastion_id = bastion.to_string();
    let grant = match crate::tunnel::issue(&gw, user, &request, entry, None).await {
        Ok(g) => g,
        Err(denial) => return message(&denial),
    };
    let gateway = crate::portal::rdp_file_address(&gw, &headers, &uri);
    let text = rampart_proto::rdp_file::through_gateway(&gateway, &grant.target, &grant.tunnel_token, None);
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-rdp"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
