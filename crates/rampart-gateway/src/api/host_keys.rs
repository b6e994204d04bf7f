//! `network bastion host-key list|forget`: the SSH host keys and RDP certificates the gateway
//! pinned on first use for browser sessions. When a target's key really changed (a rebuilt
//! machine), an operator forgets the old one and the next session pins the new one.
//!
//! Pins are the gateway's, not a bastion's: a bastion's operators (bastion write, as for its
//! settings) see and forget the pins of targets that bastion reaches (its reachable networks),
//! so one bastion's operators cannot reset trust in machines only another bastion reaches.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use rampart_core::{AuditEvent, BastionSettings, Protocol, ResourceId, Scope};
use rampart_proto::api;
use serde::Deserialize;

use super::bastions::{WRITE, resolve_subscription};
use super::caller::Caller;
use super::{ApiError, AppState};
use crate::server::Gateway;

/// RDP pins are stored under this prefix, beside SSH's.
const RDP_PREFIX: &str = "rdp:";

async fn bastion_settings(
    gw: &Gateway,
    caller: &Caller,
    event: AuditEvent,
    (sub, group, name): (&str, &str, &str),
) -> Result<BastionSettings, ApiError> {
    let id = ResourceId::bastion(&resolve_subscription(gw, sub).await?.id, group, name);
    caller.require(gw, event, WRITE, &Scope::Resource(id.clone())).await?;
    let bastion = gw.store.bastion(&id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFound", format!("bastion '{name}' not found"))
    })?;
    Ok(bastion.settings)
}

/// The address a pinned target stands for: `ip:port` as written, or the registered VM's.
async fn target_ip(gw: &Gateway, target: &str) -> Option<IpAddr> {
    let named = target.strip_prefix(RDP_PREFIX).unwrap_or(target);
    if let Ok(addr) = SocketAddr::from_str(named) {
        return Some(addr.ip());
    }
    let id = ResourceId::from_str(named).ok()?;
    gw.store.machine(&id).await.ok().flatten().map(|m| m.nic.private_ip)
}

async fn reachable(gw: &Gateway, settings: &BastionSettings, target: &str) -> bool {
    match target_ip(gw, target).await {
        Some(ip) => settings.reachable_networks.iter().any(|n| n.contains(&ip)),
        None => false,
    }
}

pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<Json<Vec<api::PinnedHostKey>>, ApiError> {
    let settings = bastion_settings(&gw, &caller, AuditEvent::Read, (&sub, &group, &name)).await?;
    let mut out = Vec::new();
    for (target, key, pinned_at) in gw.store.pinned_host_keys().await? {
        if !reachable(&gw, &settings, &target).await {
            continue;
        }
        let (kind, named) = match target.strip_prefix(RDP_PREFIX) {
            Some(named) => (Protocol::Rdp, named.to_string()),
            None => (Protocol::Ssh, target.clone()),
        };
        out.push(api::PinnedHostKey {
            target: named,
            kind: kind.to_string(),
            key,
            pinned_at: pinned_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct ForgetQuery {
    target: String,
    /// `ssh` or `rdp`; both when absent.
    kind: Option<String>,
}

pub async fn forget(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    Query(q): Query<ForgetQuery>,
) -> Result<StatusCode, ApiError> {
    let settings = bastion_settings(&gw, &caller, AuditEvent::BastionChange, (&sub, &group, &name)).await?;
    let kinds: &[Protocol] = match q.kind.as_deref().map(str::parse::<Protocol>) {
        None => &[Protocol::Ssh, Protocol::Rdp],
        Some(Ok(Protocol::Ssh)) => &[Protocol::Ssh],
        Some(Ok(Protocol::Rdp)) => &[Protocol::Rdp],
        Some(_) => {
            let other = q.kind.as_deref().unwrap_or_default();
            return Err(ApiError::bad_request("InvalidKind", format!("unknown kind '{other}' (ssh or rdp)")));
        }
    };
    let target = q.target.trim();
    let mut forgotten = Vec::new();
    for kind in kinds {
        let stored =
            if *kind == Protocol::Rdp { format!("{RDP_PREFIX}{target}") } else { target.to_string() };
        if !reachable(&gw, &settings, &stored).await {
            continue;
        }
        if let Some(key) = gw.store.pinned_host_key(&stored).await?
            && gw.store.forget_host_key(&stored).await?
        {
            forgotten.push(format!("{kind} key {key}"));
        }
    }
    if forgotten.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "HostKeyNotFound",
            format!("no key is pinned for '{target}' among the targets bastion '{name}' reaches"),
        ));
    }
    let what = format!("forgot the pinned {} of {target}", forgotten.join(" and the "));
    caller.record(&gw, AuditEvent::BastionChange, target, what).await?;
    Ok(StatusCode::NO_CONTENT)
}
