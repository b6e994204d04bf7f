//! The Connect page: a bastion, a target and how to sign in to it.

use std::str::FromStr;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use rampart_core::{OsType, Protocol, ResourceId, Tier};
use serde::Deserialize;

use super::super::{HOME, PortalUser, error_page, render};
use super::{MachineRow, machine_row, reachable_machines, readable_bastion};
use crate::api::{ApiError, AppState};
use crate::server::Gateway;

#[derive(Deserialize)]
pub struct ConnectQuery {
    bastion: Option<String>,
    vm: Option<String>,
}

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    bastion_id: String,
    bastion_name: String,
    tier: Tier,
    machines: Vec<MachineRow>,
    by_ip: bool,
    ip_connect_reason: Option<String>,
    protocol: &'static str,
    port: u16,
    custom_ports: bool,
    custom_ports_reason: String,
}

pub async fn connect_page(
    State(gw): State<AppState>,
    user: PortalUser,
    Query(q): Query<ConnectQuery>,
) -> Response {
    match connect_page_for(&gw, &user, &q).await {
        Ok(r) => r,
        Err(e) => error_page(&e, HOME),
    }
}

async fn connect_page_for(gw: &Gateway, user: &PortalUser, q: &ConnectQuery) -> Result<Response, ApiError> {
    let bastion = readable_bastion(gw, user, q.bastion.as_deref()).await?;
    let machines = reachable_machines(gw, user, &bastion).await?;
    let chosen = match &q.vm {
        Some(raw) => {
            let wanted = ResourceId::from_str(raw)
                .map_err(|e| ApiError::bad_request("InvalidResourceId", e.to_string()))?;
            // A machine the user may not reach is refused as if it did not exist.
            let found = machines.iter().find(|m| m.id == wanted).ok_or_else(|| {
                ApiError::refused(&rampart_core::Refusal::new(rampart_core::RefusalReason::TargetNotFound {
                    id: wanted.to_string(),
                }))
            })?;
            Some(found.clone())
        }
        None => None,
    };
    let s = &bastion.settings;
    let ip_connect_reason = if !s.tier.includes_ip_connect() {
        Some(format!("the {} tier does not include IP-based connection (Standard or Premium does)", s.tier))
    } else if !s.enable_ip_connect {
        Some("IP-based connection is turned off on this bastion".to_string())
    } else {
        None
    };
    let custom_ports = s.tier.includes_custom_ports();
    let (protocol, port) = match &chosen {
        Some(m) if m.os_type == OsType::Windows => (Protocol::Rdp, m.port_rdp),
        Some(m) => (Protocol::Ssh, m.port_ssh),
        None => (Protocol::Ssh, 22),
    };
    let protocol = protocol.as_str();
    let rows: Vec<MachineRow> =
        machines.iter().map(|m| machine_row(m, chosen.as_ref().is_some_and(|c| c.id == m.id))).collect();
    let page = ConnectPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        bastion_id: bastion.id.to_string(),
        bastion_name: bastion.id.name.clone(),
        tier: s.tier,
        by_ip: chosen.is_none() && (rows.is_empty() || q.vm.is_none()) && ip_connect_reason.is_none(),
        machines: rows,
        ip_connect_reason,
        protocol,
        port,
        custom_ports,
        custom_ports_reason: format!(
            "The {} tier connects to ports 22 and 3389 only (Standard or Premium allow other ports).",
            s.tier
        ),
    };
    Ok(render(&page))
}
