//! `rampart node list`: the gateway nodes sharing this store, as their heartbeats show them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use rampart_core::AuditEvent;
use rampart_proto::api;

use super::caller::Caller;
use super::{ApiError, AppState};

/// Who may drain a node: who may change bastions in every subscription; who may see them:
/// anyone who may read bastions somewhere.
const WRITE: &str = "Microsoft.Network/bastionHosts/write";
const READ_NODES: &str = "Microsoft.Network/bastionHosts/read";

pub async fn list(State(gw): State<AppState>, caller: Caller) -> Result<Json<Vec<api::Node>>, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::Read, READ_NODES).await?;
    let now = chrono::Utc::now();
    let nodes = gw.store.list_nodes().await?;
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| api::Node {
                heartbeat_age_seconds: u64::try_from(
                    now.signed_duration_since(n.last_heartbeat).num_seconds(),
                )
                .unwrap_or(0),
                name: n.name,
                address: n.address,
                state: n.state.as_str().to_string(),
                started_at: n.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                last_heartbeat: n.last_heartbeat.to_rfc3339_opts(SecondsFormat::Millis, true),
                sessions: n.sessions,
            })
            .collect(),
    ))
}

/// `rampart node drain NAME`: the node refuses new work, reports not ready, and stops once its
/// last session ends (or at its drain deadline). A node serves every subscription, so only
/// someone who may change bastions in every subscription may drain one.
pub async fn drain(
    State(gw): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    for sub in gw.store.list_subscriptions().await? {
        caller
            .require(&gw, AuditEvent::BastionChange, WRITE, &rampart_core::Scope::Subscription(sub.id))
            .await?;
    }
    let nodes = gw.store.list_nodes().await?;
    let Some(node) = nodes.iter().find(|n| n.name.eq_ignore_ascii_case(&name)) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NodeNotFound",
            format!("no node '{name}'; `rampart node list` shows them"),
        ));
    };
    if !matches!(node.state, rampart_store::NodeState::Active | rampart_store::NodeState::Draining) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NodeNotRunning",
            format!("node '{}' is {}, not running", node.name, node.state.as_str()),
        ));
    }
    let event =
        rampart_store::StoreEvent::DrainNode { name: node.name.clone(), by: caller.name().to_string() };
    gw.store.publish(&event).await?;
    caller
        .record(&gw, AuditEvent::BastionChange, &format!("node/{}", node.name), "drain requested".into())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
