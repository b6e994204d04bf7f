//! `network bastion shareable-link create|list|delete`: Azure's `createShareableLinks`,
//! `getShareableLinks`, `deleteShareableLinks` and `deleteShareableLinksByToken`, each an
//! action of its own (Reader has none). A link is shown whole only in the answer that made it;
//! the store keeps its token's hash. Deleting a link ends the sessions it opened, on every node.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use chrono::{SecondsFormat, Utc};
use rampart_core::shareable::{self, MAX_LINKS_PER_BASTION, MAX_VMS_PER_REQUEST};
use rampart_core::{AuditEvent, AuditResult, Machine, Refusal, RefusalReason, ResourceId, Scope};
use rampart_proto::shareable::{
    LinkedVm, ShareableLink, ShareableLinkDelete, ShareableLinkList, ShareableLinkRequest,
    ShareableLinkTokens, VmRef,
};
use rampart_store::ShareableLinkRecord;

use super::caller::Caller;
use super::{ApiError, AppState, JsonBody};
use crate::server::Gateway;

pub(crate) const CREATE: &str = "Microsoft.Network/bastionHosts/createShareableLinks/action";
pub(crate) const GET: &str = "Microsoft.Network/bastionHosts/getShareableLinks/action";
pub(crate) const DELETE: &str = "Microsoft.Network/bastionHosts/deleteShareableLinks/action";
pub(crate) const DELETE_BY_TOKEN: &str = "Microsoft.Network/bastionHosts/deleteShareableLinksByToken/action";
/// Linking a VM needs seeing it.
const VM_READ: &str = "Microsoft.Compute/virtualMachines/read";

/// The bastion, once the caller may do `action` on it.
async fn bastion(
    gw: &Gateway,
    caller: &Caller,
    (sub, group, name): &(String, String, String),
    action: &str,
) -> Result<rampart_core::Bastion, ApiError> {
    let id = super::bastions::bastion_id(gw, sub, group, name).await?;
    caller.require(gw, AuditEvent::ShareableLink, action, &Scope::Resource(id.clone())).await?;
    gw.store.bastion(&id).await?.ok_or_else(|| super::bastions::not_found(&id))
}

pub(crate) fn view(r: &ShareableLinkRecord, bsl: Option<String>) -> ShareableLink {
    ShareableLink {
        id: r.id.clone(),
        vm: VmRef { id: r.target_id.clone() },
        bsl,
        created_at: r.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        expires_at: r.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        created_by: r.created_by.clone(),
    }
}

/// The host the request was sent to (a link is handed out on it).
fn host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost")
        .to_string()
}

/// The machines named, each registered and readable by the caller; 1 to 50 of them.
async fn machines(gw: &Gateway, caller: &Caller, vms: &[LinkedVm]) -> Result<Vec<Machine>, ApiError> {
    if vms.is_empty() || vms.len() > MAX_VMS_PER_REQUEST {
        return Err(ApiError::bad_request(
            "InvalidVms",
            format!("name from 1 to {MAX_VMS_PER_REQUEST} VMs (vms: [{{\"vm\": {{\"id\": …}}}}])"),
        ));
    }
    let mut found = Vec::new();
    for v in vms {
        let m = gw.admission.resolve_machine(&v.vm.id).await?;
        caller.require(gw, AuditEvent::ShareableLink, VM_READ, &Scope::Resource(m.id.clone())).await?;
        found.push(m);
    }
    Ok(found)
}

/// Records a made or deleted link.
async fn record(
    gw: &Gateway,
    caller: &Caller,
    bastion: &ResourceId,
    link: &ShareableLinkRecord,
    what: String,
) -> Result<(), ApiError> {
    let mut e = caller.entry(AuditEvent::ShareableLink, AuditResult::Allowed);
    e.bastion_id = Some(bastion.to_string());
    e.target_resource_id = Some(link.target_id.clone());
    e.connection_id = Some(link.id.clone());
    e.reason = Some(what);
    gw.store.append_audit(&e).await?;
    Ok(())
}

/// `POST …/bastionHosts/{name}/createShareableLinks`: a link per VM.
pub async fn create(
    State(gw): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    JsonBody(req): JsonBody<ShareableLinkRequest>,
) -> Result<Json<ShareableLinkList>, ApiError> {
    let b = bastion(&gw, &caller, &path, CREATE).await?;
    let key = b.id.to_string();
    let lifetime = shareable::lifetime_secs(req.expires_in.as_deref())
        .map_err(|e| ApiError::bad_request("InvalidExpiresIn", e))?;
    let now = Utc::now();
    let live = gw.store.shareable_links(&key).await?.iter().filter(|l| l.expires_at > now).count();
    let refuse = |refusal: Refusal| caller.refuse(&gw, AuditEvent::ShareableLink, &key, refusal);
    if let Err(refusal) = shareable::check_create(&b.settings, live, req.vms.len().max(1)) {
        return Err(refuse(refusal).await);
    }
    let machines = machines(&gw, &caller, &req.vms).await?;
    let expires_at = now + chrono::Duration::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX / 1000));
    let mut made = Vec::new();
    for m in &machines {
        let token = crate::shareable::new_token();
        let record = ShareableLinkRecord {
            id: uuid::Uuid::new_v4().to_string(),
            token_hash: crate::shareable::token_hash(&token),
            bastion_id: key.clone(),
            target_id: m.id.to_string(),
            created_by: caller.name().to_string(),
            created_at: now,
            expires_at,
        };
        made.push((record, token));
    }
    let records: Vec<ShareableLinkRecord> = made.iter().map(|(r, _)| r.clone()).collect();
    if !gw.store.create_shareable_links(&key, &records, MAX_LINKS_PER_BASTION, now).await? {
        // Another request made links in the meantime.
        let live = gw.store.shareable_links(&key).await?.len();
        let reason = RefusalReason::ShareableLinkLimit { limit: MAX_LINKS_PER_BASTION, existing: live };
        return Err(refuse(Refusal::new(reason)).await);
    }
    let host = host(&headers, &uri);
    let mut value = Vec::new();
    for (r, token) in made {
        let expires = r.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        record(
            &gw,
            &caller,
            &b.id,
            &r,
            format!("made shareable link {} to {}, expires {expires}", r.id, r.target_id),
        )
        .await?;
        value.push(view(&r, Some(crate::shareable::url(&host, &token))));
    }
    Ok(Json(ShareableLinkList { value }))
}

/// `POST …/getShareableLinks`: the bastion's links (only these VMs' when some are named).
pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
    body: Option<Json<ShareableLinkRequest>>,
) -> Result<Json<ShareableLinkList>, ApiError> {
    let b = bastion(&gw, &caller, &path, GET).await?;
    let only = named_vms(&gw, &body.map(|Json(r)| r.vms).unwrap_or_default()).await?;
    let value = gw
        .store
        .shareable_links(&b.id.to_string())
        .await?
        .iter()
        .filter(|l| only.is_empty() || opens_one_of(l, &only))
        .map(|l| view(l, None))
        .collect();
    Ok(Json(ShareableLinkList { value }))
}

/// `POST …/deleteShareableLinks`: the links of the VMs named, and the links named by id.
pub async fn delete(
    State(gw): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
    JsonBody(req): JsonBody<ShareableLinkDelete>,
) -> Result<Json<ShareableLinkList>, ApiError> {
    let b = bastion(&gw, &caller, &path, DELETE).await?;
    let links = gw.store.shareable_links(&b.id.to_string()).await?;
    let missing: Vec<&String> = req.ids.iter().filter(|id| !links.iter().any(|l| &&l.id == id)).collect();
    if !missing.is_empty() {
        return Err(not_found(&format!("no shareable link of this bastion has the id {missing:?}")));
    }
    let vms = named_vms(&gw, &req.vms).await?;
    let chosen: Vec<_> =
        links.into_iter().filter(|l| req.ids.contains(&l.id) || opens_one_of(l, &vms)).collect();
    if chosen.is_empty() && !vms.is_empty() {
        return Err(not_found("no shareable link of this bastion opens the VMs named"));
    }
    remove(&gw, &caller, &b.id, chosen).await
}

/// The VMs named, their subscription resolved (it may be given by name); a VM no longer
/// registered is taken as written.
async fn named_vms(gw: &Gateway, vms: &[LinkedVm]) -> Result<Vec<ResourceId>, ApiError> {
    let mut named = Vec::new();
    for v in vms {
        let id = match gw.admission.resolve_machine(&v.vm.id).await {
            Ok(m) => m.id,
            Err(_) => v.vm.id.parse().map_err(|e: rampart_core::ResourceIdError| {
                ApiError::bad_request("InvalidResourceId", e.to_string())
            })?,
        };
        named.push(id);
    }
    Ok(named)
}

/// Whether the link opens one of `vms` (resource IDs compare without regard to case).
fn opens_one_of(link: &ShareableLinkRecord, vms: &[ResourceId]) -> bool {
    link.target_id.parse::<ResourceId>().is_ok_and(|t| vms.contains(&t))
}

/// `POST …/deleteShareableLinksByToken`: links as they were handed out (or their tokens).
pub async fn delete_by_token(
    State(gw): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String)>,
    JsonBody(req): JsonBody<ShareableLinkTokens>,
) -> Result<Json<ShareableLinkList>, ApiError> {
    let b = bastion(&gw, &caller, &path, DELETE_BY_TOKEN).await?;
    let mut chosen = Vec::new();
    for text in &req.tokens {
        let hash = crate::shareable::token_hash(crate::shareable::token_of(text));
        match gw.store.shareable_link_by_token(&hash).await? {
            Some(l) if l.bastion_id.eq_ignore_ascii_case(&b.id.to_string()) => chosen.push(l),
            _ => return Err(not_found("no shareable link of this bastion has that token")),
        }
    }
    remove(&gw, &caller, &b.id, chosen).await
}

fn not_found(message: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "ShareableLinkNotFound", message)
}

/// Deletes the links, records each, and ends their sessions on this node at once (other
/// nodes on the store's change notice).
async fn remove(
    gw: &Gateway,
    caller: &Caller,
    bastion: &ResourceId,
    links: Vec<ShareableLinkRecord>,
) -> Result<Json<ShareableLinkList>, ApiError> {
    let ids: BTreeSet<String> = links.iter().map(|l| l.id.clone()).collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let deleted = gw.store.delete_shareable_links(&bastion.to_string(), &ids).await?;
    let mut value = Vec::new();
    for l in links.iter().filter(|l| deleted.contains(&l.id)) {
        record(gw, caller, bastion, l, format!("deleted shareable link {} to {}", l.id, l.target_id)).await?;
        if !value.iter().any(|v: &ShareableLink| v.id == l.id) {
            value.push(view(l, None));
        }
    }
    gw.admission.note_change();
    gw.admission.reauthorize_live().await;
    Ok(Json(ShareableLinkList { value }))
}
