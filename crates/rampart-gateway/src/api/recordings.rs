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
    /// Recordings started since this time (RFC 3339) or within this long (ISO 8601: `P7D`, `PT4H`).
    since: Option<String>,
}

/// `--since`: a time, or how long ago.
fn since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let secs = rampart_core::activation::parse_duration(text).map_err(|_| {
        ApiError::bad_request(
            "InvalidSince",
            format!("'{text}' is neither a time (2026-12-01T00:00:00Z) nor a duration (P7D, PT4H)"),
        )
    })?;
    let ago = chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
    Ok(chrono::Utc::now().checked_sub_signed(ago).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let id = bastion(&gw, &caller, &sub, &group, &name).await?;
    let from = q.since.as_deref().filter(|s| !s.is_empty()).map(since).transpose()?;
    let found = matching(&gw, &id, q.user.as_deref(), q.target.as_deref(), q.search.as_deref()).await?;
    Ok(Json(found.iter().filter(|r| from.is_none_or(|t| r.started_at >= t)).map(view).collect()))
}

/// One recording's details.
pub async fn show(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name, rec)): Path<(String, String, String, String)>,
) -> Result<Json<RecordingView>, ApiError> {
    let id = bastion(&gw, &caller, &sub, &group, &name).await?;
    Ok(Json(view(&find(&gw, &id, &rec).await?)))
}

/// A bastion's recordings by the filters given (empty ones match all): a user (any case), part
/// of the target, text the session printed.
pub(crate) async fn matching(
    gw: &AppState,
    bastion: &ResourceId,
    user: Option<&str>,
    target: Option<&str>,
    search: Option<&str>,
) -> Result<Vec<RecordingRecord>, ApiError> {
    let (user, target, search) =
        (user.filter(|u| !u.is_empty()), target.filter(|t| !t.is_empty()), search.filter(|s| !s.is_empty()));
    let mut out = Vec::new();
    for r in gw.store.recordings(&bastion.to_string()).await? {
        if user.is_some_and(|u| !r.username.eq_ignore_ascii_case(u))
            || target.is_some_and(|t| !r.target.contains(t))
        {
            continue;
        }
        if let Some(text) = search {
            // Only terminals' recordings hold text to search.
            if !crate::recording::is_terminal(&r.format) {
                continue;
            }
            let cast = gw.recorder.read(&r).await.unwrap_or_default();
            if !crate::recording::asciicast::output_text(&String::from_utf8_lossy(&cast)).contains(text) {
                continue;
            }
        }
        out.push(r);
    }
    Ok(out)
}

pub(crate) async fn find(gw: &AppState, bastion: &ResourceId, id: &str) -> Result<RecordingRecord, ApiError> {
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
    let response = content(&gw, &r).await?;
    caller
        .record(&gw, AuditEvent::Read, &format!("recordings/{rec}"), format!("exported recording {rec}"))
        .await?;
    Ok(response)
}

/// A recording's bytes as an answer, typed by its format (the API's export and the portal's
/// player read the same way).
pub(crate) async fn content(gw: &AppState, r: &RecordingRecord) -> Result<Response, ApiError> {
    let bytes = gw.recorder.read(r).await.map_err(|e| {
        ApiError::new(
            StatusCode::GONE,
            "RecordingMissing",
            format!("the recording's bytes cannot be had: {e}"),
        )
    })?;
    let mut response = bytes.into_response();
    let kind = crate::recording::content_type(&r.format);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
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
        (Some(size), Some(sha)) => match gw.recorder.digest(&r).await {
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
