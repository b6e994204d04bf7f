//! `network bastion session list|delete`: who is connected to what, and cutting them off.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use rampart_core::{AuditEvent, ResourceId, Scope};
use rampart_proto::api;
use rampart_store::{LiveSessionRecord, StoreEvent};

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

/// The live sessions on a bastion, on every node, for a caller allowed to see them: this
/// node's as they are now, the others' as of their last heartbeat (at most a second old).
pub(crate) async fn live_sessions(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
) -> Result<Vec<api::Session>, ApiError> {
    caller.require(gw, AuditEvent::Read, LIST, &Scope::Resource(id.clone())).await?;
    let mut list: Vec<api::Session> = gw
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
            node_name: Some(gw.node.clone()),
        })
        .collect();
    let now = chrono::Utc::now();
    for s in other_nodes_sessions(gw, id).await? {
        list.push(api::Session {
            duration_seconds: u64::try_from(now.signed_duration_since(s.started_at).num_seconds())
                .unwrap_or(0),
            start_time: s.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            session_id: s.id,
            user_name: s.user,
            client_address: s.client,
            protocol: s.protocol,
            target_ip_address: s.target_ip,
            target_port: s.target_port,
            target_resource_id: s.target_resource_id,
            bytes_to_target: s.bytes_to_target,
            bytes_from_target: s.bytes_from_target,
            node_name: Some(s.node),
        });
    }
    Ok(list)
}

/// Sessions other nodes hold on a bastion, as of their last heartbeat.
async fn other_nodes_sessions(gw: &Gateway, id: &ResourceId) -> Result<Vec<LiveSessionRecord>, ApiError> {
    let all = gw.store.live_sessions(Some(&id.to_string())).await?;
    Ok(all.into_iter().filter(|s| !s.node.eq_ignore_ascii_case(&gw.node)).collect())
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

/// Ends a live session on a bastion, on whichever node holds it, and records who did it.
pub(crate) async fn disconnect_session(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
    session: &str,
) -> Result<(), ApiError> {
    caller.require(gw, AuditEvent::SessionDisconnect, DISCONNECT, &Scope::Resource(id.clone())).await?;
    let here = gw.sessions.get(session).filter(|s| s.bastion_id.eq_ignore_ascii_case(&id.to_string()));
    let (user, target_ip, target_port, node) = match here {
        Some(found) => {
            found.stop(rampart_core::EndReason::DisconnectedBy { by: caller.name().to_string() });
            (found.user.clone(), found.target_ip.clone(), found.target_port, gw.node.clone())
        }
        None => {
            let Some(found) = other_nodes_sessions(gw, id).await?.into_iter().find(|s| s.id == session)
            else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "SessionNotFound",
                    format!("no live session '{session}' on bastion '{}'", id.name),
                ));
            };
            // Its node stops it when the event arrives (LISTEN/NOTIFY: milliseconds).
            let stop = StoreEvent::StopSession {
                id: found.id.clone(),
                reason: "disconnected".into(),
                by: caller.name().to_string(),
            };
            gw.store.publish(&stop).await?;
            (found.user, found.target_ip, found.target_port, found.node)
        }
    };
    let what =
        format!("disconnected session {session} of {user} to {target_ip}:{target_port} on node {node}");
    caller.record(gw, AuditEvent::SessionDisconnect, &id.to_string(), what).await?;
    Ok(())
}
