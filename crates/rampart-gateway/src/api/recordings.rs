//! `network bastion recording list|export|verify`: finding, fetching and checking recordings.
//! Seeing recordings is an action of its own, which Reader does not have.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use rampart_core::{AuditEvent, ResourceId, Scope};
use rampart_proto::recording::{RecordingVerification, RecordingView};
use rampart_store::RecordingRecord;
use serde::Deserialize;

use super::bastions::resolve_subscription;
use super::caller::Caller;
use super::{ApiError, AppState};

/// Seeing, fetching and verifying a bastion's recordings.
pub(crate) const RECORDINGS: &str = "Microsoft.Network/bastionHosts/sessionRecordings/action";

async fn bastion(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
) -> Result<ResourceId, ApiError> {
    let id = ResourceId::bastion(&resolve_subscription(gw, sub).await?.id, group, name);
    caller.require(gw, AuditEvent::Read, RECORDINGS, &Scope::Resource(id.clone())).await?;
    Ok(id)
}

pub(crate) fn view(r: &RecordingRecord) -> RecordingView {
    RecordingView {
        id: r.id.clone(),
        session_id: r.id.clone(),
        user: r.username.clone(),
        target: r.target.clone(),
        protocol: r.protocol.clone(),
        format: r.format.clone(),
        start: r.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        end: r.ended_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        size_bytes: r.size_bytes,
        sha256: r.sha256.clone(),
        complete: r.ended_at.is_some() && r.sha256.is_some(),
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    user: Option<String>,
    target: Option<String>,
    /// Text the session printed.
    search: Option<String>,
}

/// The text a recording's output events carry, joined (for `--search`).
pub(crate) fn output_text(cast: &str) -> String {
    cast.lines()
        .skip(1)
        .filter_map(|line| serde_json::from_str::<(f64, String, String)>(line).ok())
        .filter(|(_, kind, _)| kind == "o")
        .map(|(_, _, text)| text)
        .collect()
}

pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let id = bastion(&gw, &caller, &sub, &group, &name).await?;
    let mut out = Vec::new();
    for r in gw.store.recordings(&id.to_string()).await? {
        if q.user.as_ref().is_some_and(|u| !r.username.eq_ignore_ascii_case(u)) {
            continue;
        }
        if q.target.as_ref().is_some_and(|t| !r.target.contains(t.as_str())) {
            continue;
        }
        if let Some(text) = q.search.as_ref().filter(|t| !t.is_empty()) {
            let cast = tokio::fs::read_to_string(&r.location).await.unwrap_or_default();
            if !output_text(&cast).contains(text.as_str()) {
                continue;
            }
        }
        out.push(view(&r));
    }
    Ok(Json(out))
}

async fn find(gw: &AppState, bastion: &ResourceId, id: &str) -> Result<RecordingRecord, ApiError> {
    gw.store
        .recording(id)
        .await?
        .filter(|r| r.bastion_id.eq_ignore_ascii_case(&bastion.to_string()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "RecordingNotFound",
                format!("no recording '{id}' on this bastion"),
            )
        })
}

/// The recording's bytes (asciicast v2 for SSH: `asciinema play` plays it).
pub async fn export(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name, rec)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let id = bastion(&gw, &caller, &sub, &group, &name).await?;
    let r = find(&gw, &id, &rec).await?;
    let bytes = tokio::fs::read(&r.location).await.map_err(|e| {
        ApiError::new(
            StatusCode::GONE,
            "RecordingMissing",
            format!("the recording's bytes cannot be read: {e}"),
        )
    })?;
    caller
        .record(&gw, AuditEvent::Read, &format!("recordings/{rec}"), format!("exported recording {rec}"))
        .await?;
    let mut response = bytes.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-asciicast"));
    Ok(response)
}

/// Recomputes the size and SHA-256 and compares them with what was recorded at the end.
pub async fn verify(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name, rec)): Path<(String, String, String, String)>,
) -> Result<Json<RecordingVerification>, ApiError> {
    let id = bastion(&gw, &caller, &sub, &group, &name).await?;
    let r = find(&gw, &id, &rec).await?;
    let (valid, detail) = match (r.size_bytes, &r.sha256) {
        (Some(size), Some(sha)) => match crate::recording::digest_of(std::path::Path::new(&r.location)).await
        {
            Ok((now_size, now_sha)) if now_size == size && &now_sha == sha => {
                (true, format!("{size} bytes, sha256 {sha}: as recorded"))
            }
            Ok((now_size, now_sha)) => (
                false,
                format!(
                    "modified: recorded {size} bytes with sha256 {sha}, now {now_size} bytes with sha256 {now_sha}"
                ),
            ),
            Err(e) => (false, format!("its bytes cannot be read: {e}")),
        },
        _ => (
            false,
            "incomplete: the session did not end while the gateway ran, so no digest was recorded".into(),
        ),
    };
    Ok(Json(RecordingVerification { id: rec, valid, detail }))
}
