//! Rampart's inventory in Azure Resource Manager's shapes, for az: tenants, subscriptions,
//! bastion hosts (show, list, update, delete), virtual machines and network interfaces. Any
//! api-version is accepted; paths match without regard to case, as ARM's do. The roles and
//! audit are the API's own (the same helpers); errors are ARM's `{"error": {"code",
//! "message"}}`, which az prints.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rampart_core::Bastion;
use rampart_proto::api::{self, BastionChange};
use serde_json::{Value, json};

use crate::api::bastions::{self, bastion_id, resolve_subscription};
use crate::api::caller::Caller;
use crate::api::{ApiError, AppState, AuthUser};
use crate::federation::GatewayOrigin;
use crate::server::Gateway;

/// Where Rampart's resources say they are.
const LOCATION: &str = "rampart";

/// `GET /tenants`: the gateway's one directory.
pub async fn tenants(
    State(gw): State<AppState>,
    user: Result<AuthUser, ApiError>,
) -> Result<Json<Value>, ApiError> {
    user?;
    let tenant = crate::api::principals::tenant(&gw).await?;
    Ok(Json(json!({"value": [{
        "id": format!("/tenants/{tenant}"),
        "tenantId": tenant,
        "tenantCategory": "Home",
        "displayName": "Rampart",
        "defaultDomain": "rampart.local",
        "domains": [],
    }]})))
}

/// `GET /subscriptions`: those in which the caller holds a role assignment.
pub async fn subscriptions(State(gw): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let tenant = crate::api::principals::tenant(&gw).await?;
    let value: Vec<Value> = gw
        .store
        .list_subscriptions()
        .await?
        .iter()
        .filter(|s| holds_role_in(&caller, &s.id))
        .map(|s| subscription_json(s, &tenant))
        .collect();
    Ok(Json(json!({ "value": value })))
}

fn holds_role_in(caller: &Caller, subscription: &str) -> bool {
    caller.assignments.iter().any(|a| a.scope.subscription().eq_ignore_ascii_case(subscription))
}

fn subscription_json(s: &rampart_store::Subscription, tenant: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{}", s.id),
        "subscriptionId": s.id,
        "tenantId": tenant,
        "displayName": s.name,
        "state": "Enabled",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionPolicies": {"spendingLimit": "Off"},
    })
}

/// What a path under `/subscriptions/` names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resource<'a> {
    Subscription,
    /// A collection of a resource type, in the subscription or one resource group.
    List {
        kind: Kind,
        group: Option<&'a str>,
    },
    One {
        kind: Kind,
        group: &'a str,
        name: &'a str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bastion,
    VirtualMachine,
    NetworkInterface,
}

/// Splits `SUB/…` into the subscription and the resource, case-insensitively.
pub(crate) fn parse(rest: &str) -> Option<(&str, Resource<'_>)> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (sub, tail) = segments.split_first()?;
    let is = |s: &str, want: &str| s.eq_ignore_ascii_case(want);
    let kind = |namespace: &str, kind: &str| match () {
        _ if is(namespace, "Microsoft.Network") && is(kind, "bastionHosts") => Some(Kind::Bastion),
        _ if is(namespace, "Microsoft.Compute") && is(kind, "virtualMachines") => Some(Kind::VirtualMachine),
        _ if is(namespace, "Microsoft.Network") && is(kind, "networkInterfaces") => {
            Some(Kind::NetworkInterface)
        }
        _ => None,
    };
    let resource = match tail {
        [] => Resource::Subscription,
        [p, ns, k] if is(p, "providers") => Resource::List { kind: kind(ns, k)?, group: None },
        [rg, g, p, ns, k] if is(rg, "resourceGroups") && is(p, "providers") => {
            Resource::List { kind: kind(ns, k)?, group: Some(g) }
        }
        [rg, g, p, ns, k, name] if is(rg, "resourceGroups") && is(p, "providers") => {
            Resource::One { kind: kind(ns, k)?, group: g, name }
        }
        _ => return None,
    };
    Some((sub, resource))
}

/// Every method on `/subscriptions/{*rest}`.
pub async fn dispatch(
    State(gw): State<AppState>,
    GatewayOrigin(origin): GatewayOrigin,
    method: Method,
    Path(rest): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Response {
    let Some((sub, resource)) = parse(&rest) else {
        let path: String = rest.chars().take(300).collect();
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "'/subscriptions/{path}' is not served by Rampart (it answers bastionHosts, virtualMachines and networkInterfaces)"
            ),
        )
        .into_response();
    };
    let dns_name = origin.trim_start_matches("https://").to_string();
    let answer = match (&method, resource) {
        (&Method::GET, Resource::Subscription) => subscription(&gw, &caller, sub).await,
        (&Method::GET, Resource::List { kind, group }) => {
            list(&gw, &caller, sub, kind, group, &dns_name).await
        }
        (&Method::GET, Resource::One { kind, group, name }) => {
            one(&gw, &caller, sub, kind, group, name, &dns_name).await
        }
        (&Method::PUT, Resource::One { kind: Kind::Bastion, group, name }) => {
            put_bastion(&gw, &caller, sub, group, name, &body, &dns_name).await
        }
        (&Method::DELETE, Resource::One { kind: Kind::Bastion, group, name }) => {
            let id = bastion_id(&gw, sub, group, name).await;
            match id {
                Ok(id) => bastions::delete_bastion(&gw, &caller, &id).await.map(|()| Value::Null),
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not offered here; Rampart's resources are changed with `rampart`"),
        )),
    };
    match answer {
        Ok(Value::Null) => StatusCode::OK.into_response(),
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn subscription(gw: &Gateway, caller: &Caller, sub: &str) -> Result<Value, ApiError> {
    let s = resolve_subscription(gw, sub).await?;
    if !holds_role_in(caller, &s.id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!("'{}' holds no role in subscription '{}'", caller.name(), s.id),
        ));
    }
    Ok(subscription_json(&s, &crate::api::principals::tenant(gw).await?))
}

async fn list(
    gw: &Gateway,
    caller: &Caller,
    sub: &str,
    kind: Kind,
    group: Option<&str>,
    dns_name: &str,
) -> Result<Value, ApiError> {
    let value: Vec<Value> = match kind {
        Kind::Bastion => {
            let s = resolve_subscription(gw, sub).await?;
            gw.store
                .list_bastions(&s.id, group)
                .await?
                .iter()
                .filter(|b| caller.may(bastions::READ, &rampart_core::Scope::Resource(b.id.clone())))
                .map(|b| bastion_json(b, dns_name))
                .collect()
        }
        Kind::VirtualMachine => machines(gw, caller, sub, group).await?.iter().map(vm_json).collect(),
        Kind::NetworkInterface => machines(gw, caller, sub, group).await?.iter().map(nic_json).collect(),
    };
    Ok(json!({ "value": value }))
}

async fn one(
    gw: &Gateway,
    caller: &Caller,
    sub: &str,
    kind: Kind,
    group: &str,
    name: &str,
    dns_name: &str,
) -> Result<Value, ApiError> {
    if kind == Kind::Bastion {
        let id = bastion_id(gw, sub, group, name).await?;
        return Ok(bastion_json(&bastions::read_bastion(gw, caller, &id).await?, dns_name));
    }
    let found = machines(gw, caller, sub, Some(group)).await?.into_iter().find(|m| match kind {
        Kind::VirtualMachine => m.name.eq_ignore_ascii_case(name),
        _ => m.network_interface_id.rsplit('/').next().is_some_and(|n| n.eq_ignore_ascii_case(name)),
    });
    match (found, kind) {
        (Some(m), Kind::VirtualMachine) => Ok(vm_json(&m)),
        (Some(m), _) => Ok(nic_json(&m)),
        (None, _) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("'{name}' was not found in resource group '{group}' (or you may not read it)"),
        )),
    }
}

/// The machines the caller may read; scale-set instances are not virtual machines to az.
async fn machines(
    gw: &Gateway,
    caller: &Caller,
    sub: &str,
    group: Option<&str>,
) -> Result<Vec<api::VirtualMachine>, ApiError> {
    let all = crate::api::inventory::machines(gw, caller, sub, group).await?;
    Ok(all.into_iter().filter(|m| m.scale_set.is_none()).collect())
}

/// `az network bastion update` sends back the whole resource it read, changed: the settings
/// Rampart knows are applied through the API's own update; creating one is `rampart`'s job.
async fn put_bastion(
    gw: &Gateway,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
    body: &[u8],
    dns_name: &str,
) -> Result<Value, ApiError> {
    let id = bastion_id(gw, sub, group, name).await?;
    let current = bastions::read_bastion(gw, caller, &id).await.map_err(|e| match e.code.as_str() {
        "BastionNotFound" => ApiError::new(
            StatusCode::BAD_REQUEST,
            "CreateNotSupported",
            format!(
                "bastion '{name}' does not exist, and az does not create them here: use `rampart network bastion create --name {name} --resource-group {group} …`"
            ),
        ),
        _ => e,
    })?;
    let resource: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("InvalidRequestContent", format!("the body is not a resource: {e}"))
    })?;
    let change = change_from(&resource, &current);
    let updated = bastions::change_bastion(gw, caller, &id, &change).await?;
    Ok(bastion_json(&updated, dns_name))
}

/// The settings a PUT body asks for, as a change to `current`.
fn change_from(resource: &Value, current: &Bastion) -> BastionChange {
    let props = &resource["properties"];
    let flag = |name: &str| props.get(name).and_then(Value::as_bool);
    let file_transfer = flag("enableFileCopy")
        .filter(|on| *on != current.settings.file_transfer.any())
        .map(|on| if on { "upload,download" } else { "none" }.to_string());
    BastionChange {
        sku: resource["sku"]["name"].as_str().map(str::to_string),
        enable_tunneling: flag("enableTunneling"),
        enable_ip_connect: flag("enableIpConnect"),
        disable_copy_paste: flag("disableCopyPaste"),
        enable_shareable_link: flag("enableShareableLink"),
        enable_session_recording: flag("enableSessionRecording"),
        file_transfer,
        ..BastionChange::default()
    }
}

fn bastion_json(b: &Bastion, dns_name: &str) -> Value {
    let s = &b.settings;
    json!({
        "id": b.id.to_string(),
        "name": b.id.name,
        "type": "Microsoft.Network/bastionHosts",
        "location": LOCATION,
        "sku": {"name": s.tier.to_string()},
        "tags": {},
        "properties": {
            "provisioningState": "Succeeded",
            "dnsName": dns_name,
            "scaleUnits": 2,
            "enableTunneling": s.enable_tunneling,
            "enableIpConnect": s.enable_ip_connect,
            "disableCopyPaste": s.disable_copy_paste,
            "enableShareableLink": s.enable_shareable_link,
            "enableFileCopy": s.file_transfer.any(),
            "enableSessionRecording": s.session_recording,
            "enableKerberos": false,
            "ipConfigurations": [],
        },
    })
}

fn vm_json(m: &api::VirtualMachine) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": LOCATION,
        "properties": {
            "provisioningState": "Succeeded",
            "storageProfile": {"osDisk": {"osType": m.os_type, "name": format!("{}-os", m.name)}},
            "osProfile": {"computerName": m.name},
            "networkProfile": {"networkInterfaces": [{"id": m.network_interface_id, "properties": {"primary": true}}]},
        },
    })
}

fn nic_json(m: &api::VirtualMachine) -> Value {
    let name = m.network_interface_id.rsplit('/').next().unwrap_or_default();
    json!({
        "id": m.network_interface_id,
        "name": name,
        "type": "Microsoft.Network/networkInterfaces",
        "location": LOCATION,
        "properties": {
            "provisioningState": "Succeeded",
            "primary": true,
            "virtualMachine": {"id": m.id},
            "ipConfigurations": [{
                "id": format!("{}/ipConfigurations/ipconfig1", m.network_interface_id),
                "name": "ipconfig1",
                "properties": {
                    "privateIPAddress": m.private_ip_address,
                    "privateIPAllocationMethod": "Static",
                    "primary": true,
                },
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_arm_reads_them() {
        assert_eq!(parse("s1"), Some(("s1", Resource::Subscription)));
        assert_eq!(
            parse("s1/providers/Microsoft.Network/bastionHosts"),
            Some(("s1", Resource::List { kind: Kind::Bastion, group: None }))
        );
        assert_eq!(
            parse("S1/resourcegroups/RG/providers/microsoft.network/BASTIONHOSTS/b1"),
            Some(("S1", Resource::One { kind: Kind::Bastion, group: "RG", name: "b1" }))
        );
        assert_eq!(
            parse("s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"),
            Some(("s1", Resource::List { kind: Kind::VirtualMachine, group: Some("rg") }))
        );
        assert_eq!(parse("s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts"), None);
        assert_eq!(parse("s1/resourceGroups/rg"), None);
        assert_eq!(parse(""), None);
    }
}
