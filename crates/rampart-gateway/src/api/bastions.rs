//! Subscriptions and bastion resources: create, show, list, update, delete.

use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use ipnet::IpNet;
use rampart_core::resource_id::validate_name;
use rampart_core::{AuditEvent, Bastion, BastionSettings, ResourceId, Scope, SecretUrl, Tier};
use rampart_proto::api::{self, BastionChange};
use rampart_store::Subscription;

use super::caller::Caller;
use super::{ApiError, AppState, JsonBody};
use crate::server::Gateway;

pub(crate) const READ: &str = "Microsoft.Network/bastionHosts/read";
pub(crate) const WRITE: &str = "Microsoft.Network/bastionHosts/write";
const DELETE: &str = "Microsoft.Network/bastionHosts/delete";

/// Subscriptions in which the caller holds any role assignment.
pub async fn list_subscriptions(
    State(gw): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<api::Subscription>>, ApiError> {
    let subs = gw.store.list_subscriptions().await?;
    Ok(Json(
        subs.into_iter()
            .filter(|s| caller.assignments.iter().any(|a| a.scope.subscription().eq_ignore_ascii_case(&s.id)))
            .map(|s| api::Subscription { id: s.id, name: s.name, state: "Enabled".into() })
            .collect(),
    ))
}

/// Finds a subscription by ID or by name (both case-insensitive).
pub(crate) async fn resolve_subscription(gw: &Gateway, id_or_name: &str) -> Result<Subscription, ApiError> {
    gw.store
        .list_subscriptions()
        .await?
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(id_or_name) || s.name.eq_ignore_ascii_case(id_or_name))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("subscription '{id_or_name}' was not found; `rampart account list` shows yours"),
            )
        })
}

/// Lists only the bastions the caller may read.
fn visible(caller: &Caller, list: Vec<Bastion>) -> Json<Vec<api::Bastion>> {
    Json(list.iter().filter(|b| caller.may(READ, &Scope::Resource(b.id.clone()))).map(to_api).collect())
}

pub async fn list_in_subscription(
    State(gw): State<AppState>,
    caller: Caller,
    Path(subscription): Path<String>,
) -> Result<Json<Vec<api::Bastion>>, ApiError> {
    let sub = resolve_subscription(&gw, &subscription).await?;
    Ok(visible(&caller, gw.store.list_bastions(&sub.id, None).await?))
}

pub async fn list_in_group(
    State(gw): State<AppState>,
    caller: Caller,
    Path((subscription, group)): Path<(String, String)>,
) -> Result<Json<Vec<api::Bastion>>, ApiError> {
    let sub = resolve_subscription(&gw, &subscription).await?;
    Ok(visible(&caller, gw.store.list_bastions(&sub.id, Some(&group)).await?))
}

pub(crate) async fn bastion_id(
    gw: &Gateway,
    sub: &str,
    group: &str,
    name: &str,
) -> Result<ResourceId, ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    for n in [group, name] {
        validate_name(n).map_err(|e| ApiError::bad_request("InvalidName", e.to_string()))?;
    }
    Ok(ResourceId::bastion(&sub.id, group, name))
}

pub(crate) fn not_found(id: &ResourceId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "BastionNotFound",
        format!("bastion '{}' was not found in resource group '{}'", id.name, id.resource_group),
    )
}

pub async fn show(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<Json<api::Bastion>, ApiError> {
    let id = bastion_id(&gw, &sub, &group, &name).await?;
    Ok(Json(to_api(&read_bastion(&gw, &caller, &id).await?)))
}

/// A bastion the caller may read (the API's GET and az's ARM GET).
pub(crate) async fn read_bastion(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
) -> Result<Bastion, ApiError> {
    caller.require(gw, AuditEvent::Read, READ, &Scope::Resource(id.clone())).await?;
    gw.store.bastion(id).await?.ok_or_else(|| not_found(id))
}

pub async fn create(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    JsonBody(change): JsonBody<BastionChange>,
) -> Result<(StatusCode, Json<api::Bastion>), ApiError> {
    let id = bastion_id(&gw, &sub, &group, &name).await?;
    caller.require(&gw, AuditEvent::BastionChange, WRITE, &Scope::Resource(id.clone())).await?;
    let settings = apply_change(BastionSettings::new_default(), &change)?;
    check_storage(&gw, &settings, &change).await?;
    let b = gw.store.create_bastion(&id, &settings).await?;
    audit_change(&gw, &caller, &id, "created", &settings).await?;
    Ok((StatusCode::CREATED, Json(to_api(&b))))
}

pub async fn update(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    JsonBody(change): JsonBody<BastionChange>,
) -> Result<Json<api::Bastion>, ApiError> {
    let id = bastion_id(&gw, &sub, &group, &name).await?;
    Ok(Json(to_api(&change_bastion(&gw, &caller, &id, &change).await?)))
}

/// Applies a change to a bastion's tier or settings (the API's PATCH and the portal's form).
pub(crate) async fn change_bastion(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
    change: &BastionChange,
) -> Result<Bastion, ApiError> {
    caller.require(gw, AuditEvent::BastionChange, WRITE, &Scope::Resource(id.clone())).await?;
    let current = gw.store.bastion(id).await?.ok_or_else(|| not_found(id))?;
    let settings = apply_change(current.settings, change)?;
    check_storage(gw, &settings, change).await?;
    let b = gw.store.update_bastion(id, &settings).await?;
    // Live browser desktops follow the copy-and-paste setting at once.
    for session in gw.sessions.on_bastion(&id.to_string()) {
        session.copy_paste.send_replace(!settings.disable_copy_paste);
    }
    audit_change(gw, caller, id, "updated", &settings).await?;
    Ok(b)
}

pub async fn delete(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = bastion_id(&gw, &sub, &group, &name).await?;
    delete_bastion(&gw, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a bastion the caller may delete, audited (the API's DELETE and az's).
pub(crate) async fn delete_bastion(gw: &Gateway, caller: &Caller, id: &ResourceId) -> Result<(), ApiError> {
    caller.require(gw, AuditEvent::BastionChange, DELETE, &Scope::Resource(id.clone())).await?;
    let current = gw.store.bastion(id).await?.ok_or_else(|| not_found(id))?;
    gw.store.delete_bastion(id).await?;
    audit_change(gw, caller, id, "deleted", &current.settings).await
}

/// Applies a change to settings and checks the tier rules.
fn apply_change(mut s: BastionSettings, change: &BastionChange) -> Result<BastionSettings, ApiError> {
    if let Some(sku) = &change.sku {
        s.tier = Tier::from_str(sku).map_err(|e| ApiError::bad_request("InvalidSku", e.to_string()))?;
    }
    if let Some(v) = change.enable_tunneling {
        s.enable_tunneling = v;
    }
    if let Some(v) = change.enable_ip_connect {
        s.enable_ip_connect = v;
    }
    if let Some(secs) = change.idle_timeout_seconds {
        s.idle_timeout_secs = (secs > 0).then_some(secs);
    }
    if let Some(secs) = change.max_session_duration_seconds {
        s.max_session_secs = (secs > 0).then_some(secs);
    }
    if let Some(v) = change.disable_copy_paste {
        s.disable_copy_paste = v;
    }
    if let Some(v) = change.enable_shareable_link {
        s.enable_shareable_link = v;
    }
    if let Some(v) = &change.file_transfer {
        s.file_transfer = v.parse().map_err(|e: rampart_core::files::BadFileTransfer| {
            ApiError::bad_request("InvalidFileTransfer", e.to_string())
        })?;
    }
    if let Some(mb) = change.file_transfer_max_mb {
        s.file_transfer_max_bytes = (mb > 0).then(|| mb.saturating_mul(1 << 20));
    }
    if let Some(v) = change.enable_session_recording {
        s.session_recording = v;
    }
    if let Some(v) = change.allow_unrecorded_tunnels {
        s.allow_unrecorded_tunnels = v;
    }
    if let Some(url) = &change.session_recording_storage_url {
        s.recording_storage_url = (!url.trim().is_empty()).then(|| SecretUrl::new(url.trim()));
    }
    if let Some(days) = change.recording_retention_days {
        s.recording_retention_days = (days > 0).then_some(days);
    }
    if let Some(nets) = &change.reachable_networks {
        s.reachable_networks = nets
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                IpNet::from_str(n.trim()).map(|n| n.trunc()).map_err(|_| {
                    ApiError::bad_request(
                        "InvalidReachableNetwork",
                        format!("'{n}' is not a network in CIDR form (e.g. 10.0.0.0/16 or fd00::/64)"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    s.validate().map_err(|e| ApiError::bad_request("TierLacksFeature", e.to_string()))?;
    Ok(s)
}

/// A new recording storage URL is tried (a blob written, listed, read and deleted) before it
/// is kept: a wrong or read-only SAS token is refused now, not found out mid-session.
async fn check_storage(gw: &Gateway, s: &BastionSettings, change: &BastionChange) -> Result<(), ApiError> {
    let (Some(_), Some(url)) = (&change.session_recording_storage_url, &s.recording_storage_url) else {
        return Ok(());
    };
    let invalid =
        |e: crate::recording::BlobError| ApiError::bad_request("InvalidRecordingStorage", e.to_string());
    let container = gw.recorder.container(url).map_err(invalid)?;
    container.check().await.map_err(invalid)
}

async fn audit_change(
    gw: &Gateway,
    caller: &Caller,
    id: &ResourceId,
    what: &str,
    s: &BastionSettings,
) -> Result<(), ApiError> {
    let nets: Vec<String> = s.reachable_networks.iter().map(|n| n.to_string()).collect();
    let summary = format!(
        "{what}: tier {}, native client {}, IP-based connection {}, copy and paste {}, shareable links {}, file transfer {}{}, session recording {}{}{}{}, reachable networks [{}]",
        s.tier,
        s.enable_tunneling,
        s.enable_ip_connect,
        !s.disable_copy_paste,
        s.enable_shareable_link,
        s.file_transfer,
        s.file_transfer_max_bytes.map(|b| format!(" up to {} MiB", b >> 20)).unwrap_or_default(),
        s.session_recording,
        if s.session_recording && s.allow_unrecorded_tunnels { " (raw tunnels unrecorded)" } else { "" },
        s.recording_storage_url.as_ref().map(|u| format!(" to {}", u.redacted())).unwrap_or_default(),
        s.recording_retention_days.map(|d| format!(" kept {d} days")).unwrap_or_default(),
        nets.join(", ")
    );
    caller.record(gw, AuditEvent::BastionChange, &id.to_string(), summary).await
}

pub fn to_api(b: &Bastion) -> api::Bastion {
    api::Bastion {
        id: b.id.to_string(),
        name: b.id.name.clone(),
        resource_group: b.id.resource_group.clone(),
        subscription_id: b.id.subscription.clone(),
        sku: api::Sku { name: b.settings.tier.to_string() },
        enable_tunneling: b.settings.enable_tunneling,
        enable_ip_connect: b.settings.enable_ip_connect,
        reachable_networks: b.settings.reachable_networks.iter().map(|n| n.to_string()).collect(),
        idle_timeout_seconds: b.settings.idle_timeout_secs,
        max_session_duration_seconds: b.settings.max_session_secs,
        disable_copy_paste: b.settings.disable_copy_paste,
        enable_shareable_link: b.settings.enable_shareable_link,
        file_transfer: b.settings.file_transfer.to_string(),
        enable_file_copy: b.settings.file_transfer.any(),
        file_transfer_max_mb: b.settings.file_transfer_max_bytes.map(|b| b >> 20),
        enable_session_recording: b.settings.session_recording,
        allow_unrecorded_tunnels: b.settings.allow_unrecorded_tunnels,
        session_recording_storage_url: b.settings.recording_storage_url.as_ref().map(|u| u.redacted()),
        recording_retention_days: b.settings.recording_retention_days,
        created_at: b.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        updated_at: b.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}
