//! `rampart ssh --auth-type AAD` on a recording bastion: the gateway opens the shell itself
//! (identity sign-in with a certificate of its own CA, under the same login roles) and relays
//! it to the client's terminal over a WebSocket, through the same path as a browser terminal,
//! so the session is recorded, joinable and audited like one. Raw tunnels stay refused there.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use rampart_core::{AuditEvent, AuditResult, ClientKind};
use serde::Deserialize;

use super::terminal::{ConnectForm, PendingTerminal, TargetConnection, sign_in_to_target};
use crate::api::caller::Caller;
use crate::api::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShellQuery {
    target_resource_id: Option<String>,
    target_ip_address: Option<String>,
    resource_port: Option<u16>,
    /// The login; the user's own name when absent.
    username: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
}

pub async fn shell(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    Query(q): Query<ShellQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let bastion = format!(
        "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/bastionHosts/{name}"
    );
    let username = q.username.clone().unwrap_or_else(|| crate::api::ssh::default_login(caller.name()));
    let form = ConnectForm::identity_ssh(
        bastion.clone(),
        (q.target_resource_id.clone(), q.target_ip_address.clone()),
        q.resource_port,
        username,
    );
    let mut entry = caller.entry(AuditEvent::ConnectionOpen, AuditResult::Refused);
    entry.connection_id = Some(uuid::Uuid::new_v4().to_string());
    entry.protocol = Some("ssh".into());
    entry.bastion_id = Some(bastion.chars().take(512).collect());
    let pending = match sign_in_to_target(
        &gw,
        &caller,
        caller.identity(),
        ClientKind::NativeRecorded,
        &form,
        &mut entry,
    )
    .await
    {
        Ok(p) => p,
        Err(err) => {
            if entry.result == AuditResult::Allowed {
                entry.result = AuditResult::Failed;
            }
            entry.reason_code = Some(err.code.clone());
            entry.reason = Some(err.message.clone());
            if let Err(e) = gw.store.append_audit(&entry).await {
                return ApiError::internal(e).into_response();
            }
            return err.into_response();
        }
    };
    let cols = q.cols.unwrap_or(80).clamp(10, 1000);
    let rows = q.rows.unwrap_or(24).clamp(2, 500);
    upgrade.on_upgrade(move |socket| async move {
        let PendingTerminal { connection, entry, request, mark, .. } = pending;
        if let TargetConnection::Ssh(terminal) = connection {
            super::shell::run_terminal(gw, terminal, entry, (request, mark), socket, cols, rows).await;
        }
    })
}
