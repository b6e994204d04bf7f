//! `network bastion session list|delete`: who is connected to what, and cutting them off.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use rampart_core::{AuditEvent, ResourceId, Scope};
use rampart_proto::api;

use super::bastions::resolve_subscription;
use super::caller::Caller;
use super::{ApiError, AppState};
use crate::server::Gateway;

/// Azure's action names for the Sessions page and its disconnect button.
pub(crate) const LIST: &str = "Microsoft.Network/bastionHosts/getActiveSessions/action";
pub(crate) const DISCONNECT: &str = "Microsoft.Network/bastionHosts/disconnectActiveSessions/action";

async fn bastion(gw: &AppState, sub: &str, group: &str, name: &str) -> Result<ResourceId, ApiError> {
    Ok(ResourceId::bastion(&resolve_subscription(gw, sub).await?.id, group, name))
}

pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<Json<Vec<api::Session>>, ApiError> {
    let id = bastion(&gw, &sub, &group, &name).await?;
    Ok(Json(live_sessions(&gw, &caller, &id).await?))
}

/// The live sessions on a bastion, for a caller allowed to see them.
pub(crate) async fn live_sessions(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
) -> Result<Vec<api::Session>, ApiError> {
    caller.require(gw, AuditEvent::Read, LIST, &Scope::Resource(id.clone())).await?;
    Ok(gw
        .sessions
        .on_bastion(&id.to_string())
        .iter()
        .map(|s| api::Session {
            session_id: s.id.clone(),
            user_name: s.user.clone(),
            client_address: s.client.clone(),
            protocol: s.protocol.to_string(),
            target_ip_address: s.target_ip.clone(),
            target_port: s.target_port,
            target_resource_id: s.target_resource_id.clone(),
            start_time: s.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            duration_seconds: s.started.elapsed().as_secs(),
            bytes_to_target: s.counters.tunnel_to_socket.load(Ordering::Relaxed),
            bytes_from_target: s.counters.socket_to_tunnel.load(Ordering::Relaxed),
        })
        .collect())
}

/// Ends the session at once; its relay tells the client who ended it.
pub async fn disconnect(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name, session)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = bastion(&gw, &sub, &group, &name).await?;
    disconnect_session(&gw, &caller, &id, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends a live session on a bastion and records who did it.
pub(crate) async fn disconnect_session(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
    session: &str,
) -> Result<(), ApiError> {
    caller.require(gw, AuditEvent::SessionDisconnect, DISCONNECT, &Scope::Resource(id.clone())).await?;
    let found = gw.sessions.get(session).filter(|s| s.bastion_id.eq_ignore_ascii_case(&id.to_string()));
    let Some(found) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SessionNotFound",
            format!("no live session '{session}' on bastion '{}'", id.name),
        ));
    };
    found.stop(rampart_core::EndReason::DisconnectedBy { by: caller.name().to_string() });
    let what = format!(
        "disconnected session {session} of {} to {}:{}",
        found.user, found.target_ip, found.target_port
    );
    caller.record(gw, AuditEvent::SessionDisconnect, &id.to_string(), what).await?;
    Ok(())
}
