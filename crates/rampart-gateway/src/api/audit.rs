//! Reading the audit log.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, SecondsFormat, Utc};
use rampart_core::AuditEntry;
use rampart_proto::api::AuditRecord;
use rampart_store::AuditFilter;
use serde::Deserialize;

use super::{ApiError, AppState, AuthUser};

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// RFC 3339 time; only records at or after it.
    since: Option<String>,
    user: Option<String>,
    result: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(gw): State<AppState>,
    _user: AuthUser,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let since = q
        .since
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| ApiError::bad_request("InvalidTime", format!("since '{s}': {e}")))
        })
        .transpose()?;
    let filter =
        AuditFilter { since, user: q.user, result: q.result, limit: q.limit.map(|l| l.min(100_000)) };
    let entries = gw.store.list_audit(&filter).await?;
    Ok(Json(entries.iter().map(to_api).collect()))
}

fn to_api(e: &AuditEntry) -> AuditRecord {
    AuditRecord {
        id: e.id.unwrap_or_default(),
        time: e.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        event: e.event.as_str().into(),
        user: e.user.clone(),
        client_address: e.client_address.clone(),
        bastion_id: e.bastion_id.clone(),
        target_ip: e.target_ip.clone(),
        target_port: e.target_port,
        tunnel_id: e.tunnel_id.clone(),
        connection_id: e.connection_id.clone(),
        result: e.result.as_str().into(),
        reason_code: e.reason_code.clone(),
        reason: e.reason.clone(),
        bytes_to_target: e.bytes_to_target,
        bytes_from_target: e.bytes_from_target,
        duration_ms: e.duration_ms,
    }
}
