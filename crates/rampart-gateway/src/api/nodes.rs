//! `rampart node list`: the gateway nodes sharing this store, as their heartbeats show them.

use axum::Json;
use axum::extract::State;
use chrono::SecondsFormat;
use rampart_core::AuditEvent;
use rampart_proto::api;

use super::caller::Caller;
use super::{ApiError, AppState};

/// Who may see the nodes: anyone who may read bastions somewhere.
const READ: &str = "Microsoft.Network/bastionHosts/read";

pub async fn list(State(gw): State<AppState>, caller: Caller) -> Result<Json<Vec<api::Node>>, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::Read, READ).await?;
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
