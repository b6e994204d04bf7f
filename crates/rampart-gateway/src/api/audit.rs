//! Reading the audit log.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use rampart_core::{AuditEntry, AuditEvent, verify_chains};
use rampart_proto::api::{AuditChain, AuditRecord, AuditVerification};
use rampart_store::AuditFilter;
use serde::Deserialize;

use super::caller::Caller;
use super::{ApiError, AppState};

#[derive(Debug, Deserialize, Default, Clone)]
pub struct AuditQuery {
    /// RFC 3339 time; only records at or after it.
    pub since: Option<String>,
    pub user: Option<String>,
    pub result: Option<String>,
    /// A target IP address or resource ID.
    pub target: Option<String>,
    pub limit: Option<u32>,
}

/// Reading the audit log needs this action on some subscription (Reader has it).
const AUDIT_READ: &str = "Microsoft.Insights/logs/read";

pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    Ok(Json(records(&gw, &caller, q).await?))
}

/// The records `q` selects, newest first, for a caller who may read the log (the API's list,
/// the portal's page and its exports).
pub(crate) async fn records(
    gw: &AppState,
    caller: &Caller,
    q: AuditQuery,
) -> Result<Vec<AuditRecord>, ApiError> {
    caller.require_anywhere(gw, AuditEvent::Read, AUDIT_READ).await?;
    // Empty filters (a form's blank fields) select everything.
    let some = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let q = AuditQuery {
        since: some(q.since),
        user: some(q.user),
        result: some(q.result),
        target: some(q.target),
        ..q
    };
    let since = q
        .since
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| ApiError::bad_request("InvalidTime", format!("since '{s}': {e}")))
        })
        .transpose()?;
    let filter = AuditFilter {
        since,
        user: q.user,
        result: q.result,
        target: q.target,
        limit: q.limit.map(|l| l.min(100_000)),
    };
    let entries = gw.store.list_audit(&filter).await?;
    Ok(entries.iter().map(to_api).collect())
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
        user_agent: e.user_agent.clone(),
        protocol: e.protocol.clone(),
        target_resource_id: e.target_resource_id.clone(),
        hash: e.hash.clone(),
    }
}

/// `GET /api/audit/verify`: recomputes every hash chain (one per node on a shared store);
/// names the first bad record of a broken one.
pub async fn verify(State(gw): State<AppState>, caller: Caller) -> Result<Json<AuditVerification>, ApiError> {
    Ok(Json(verification(&gw, &caller).await?))
}

/// Whether every hash chain verifies: the answer, or `AuditChainBroken` naming the first bad
/// record.
pub(crate) async fn verification(gw: &AppState, caller: &Caller) -> Result<AuditVerification, ApiError> {
    caller.require_anywhere(gw, AuditEvent::Read, AUDIT_READ).await?;
    let records = gw.store.audit_chain().await?;
    match verify_chains(&records) {
        Ok(heads) => Ok(AuditVerification {
            verified_records: records.len() as u64,
            last_hash: records.iter().max_by_key(|e| e.id).and_then(|e| e.hash.clone()),
            chains: heads
                .into_iter()
                .map(|h| AuditChain { node: h.chain, records: h.records as u64, last_hash: h.last_hash })
                .collect(),
        }),
        Err(broken) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "AuditChainBroken",
            format!("the audit log was tampered with: {broken}"),
        )),
    }
}
