//! The inventory: virtual machines, scale sets and their instances, network interfaces.
//! Registering needs write on the machine's scope; lists show only what the caller may read.

use std::net::IpAddr;
use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rampart_core::resource_id::{VMSS_TYPE, validate_name};
use rampart_core::{AuditEvent, Machine, NetworkInterface, OsType, ResourceId, Scope, parse_target_ip};
use rampart_proto::api::{self, ImportResult, ScaleSetRegistration, VmChange, VmRegistration};
use serde::Deserialize;

use super::bastions::resolve_subscription;
use super::caller::Caller;
use super::{ApiError, AppState, JsonBody};

const VM_WRITE: &str = "Microsoft.Compute/virtualMachines/write";
const VM_DELETE: &str = "Microsoft.Compute/virtualMachines/delete";
const VMSS_WRITE: &str = "Microsoft.Compute/virtualMachineScaleSets/write";
const VMSS_DELETE: &str = "Microsoft.Compute/virtualMachineScaleSets/delete";
/// Largest import in one request (the CLI sends bigger files in batches).
const MAX_IMPORT: usize = 50_000;

#[derive(Debug, Deserialize)]
pub struct GroupQuery {
    #[serde(rename = "resourceGroup")]
    resource_group: Option<String>,
}

fn bad(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn parse_ip(text: &str) -> Result<IpAddr, ApiError> {
    parse_target_ip(text).map_err(|r| bad("InvalidPrivateIpAddress", r.to_string()))
}

/// Builds a machine from a registration, checking every field.
fn machine_from(sub: &str, group: &str, name: &str, r: &VmRegistration) -> Result<Machine, ApiError> {
    for n in [group, name] {
        validate_name(n).map_err(|e| bad("InvalidName", e.to_string()))?;
    }
    let nic_name = r.nic_name.clone().unwrap_or_else(|| format!("{name}-nic"));
    validate_name(&nic_name).map_err(|e| bad("InvalidName", e.to_string()))?;
    let id = ResourceId::vm(sub, group, name);
    Ok(Machine {
        os_type: OsType::from_str(&r.os_type).map_err(|e| bad("InvalidOsType", e))?,
        nic: NetworkInterface {
            id: ResourceId::nic(sub, group, &nic_name),
            private_ip: parse_ip(&r.private_ip_address)?,
            attached_to: Some(id.clone()),
        },
        id,
        port_ssh: r.port_ssh.unwrap_or(22),
        port_rdp: r.port_rdp.unwrap_or(3389),
    })
}

pub fn machine_view(m: &Machine) -> api::VirtualMachine {
    let (name, scale_set) = match &m.id.child {
        Some((_, instance)) => (instance.clone(), Some(m.id.name.clone())),
        None => (m.id.name.clone(), None),
    };
    api::VirtualMachine {
        id: m.id.to_string(),
        name,
        resource_group: m.id.resource_group.clone(),
        scale_set,
        os_type: m.os_type.to_string(),
        private_ip_address: m.nic.private_ip.to_string(),
        network_interface_id: m.nic.id.to_string(),
        port_ssh: m.port_ssh,
        port_rdp: m.port_rdp,
    }
}

fn nic_view(n: &NetworkInterface) -> api::NetworkInterface {
    api::NetworkInterface {
        id: n.id.to_string(),
        name: n.id.name.clone(),
        resource_group: n.id.resource_group.clone(),
        private_ip_address: n.private_ip.to_string(),
        virtual_machine: n.attached_to.as_ref().map(|a| a.to_string()),
    }
}

async fn register(
    gw: &AppState,
    caller: &Caller,
    machines: Vec<Machine>,
    action: &str,
) -> Result<usize, ApiError> {
    for m in &machines {
        let scope = Scope::Resource(m.id.parent().unwrap_or_else(|| m.id.clone()));
        caller.require(gw, AuditEvent::InventoryChange, action, &scope).await?;
    }
    let n = gw.store.register_machines(&machines).await?;
    let what = match machines.as_slice() {
        [one] => format!("registered {} at {}", one.id, one.nic.private_ip),
        many => format!("registered {} machines", many.len()),
    };
    let target = machines.first().map(|m| m.id.to_string()).unwrap_or_default();
    caller.record(gw, AuditEvent::InventoryChange, &target, what).await?;
    Ok(n)
}

pub async fn register_vm(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<VmRegistration>,
) -> Result<(StatusCode, Json<api::VirtualMachine>), ApiError> {
    Ok((StatusCode::CREATED, Json(register_one(&gw, &caller, &sub, &group, &name, &body).await?)))
}

/// Registers one VM with its network interface (the API and the portal).
pub(crate) async fn register_one(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
    body: &VmRegistration,
) -> Result<api::VirtualMachine, ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    let machine = machine_from(&sub.id, group, name, body)?;
    register(gw, caller, vec![machine.clone()], VM_WRITE).await?;
    Ok(machine_view(&machine))
}

/// `PATCH …/virtualMachines/{name}`: changes a registered VM in place.
pub async fn update_vm(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<VmChange>,
) -> Result<Json<api::VirtualMachine>, ApiError> {
    Ok(Json(update_one(&gw, &caller, &sub, &group, &name, &body).await?))
}

/// Changes one VM's OS, ports or address (the API and the portal). Sessions admitted to its
/// old address end: the live connection goes where it was admitted to.
pub(crate) async fn update_one(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
    change: &VmChange,
) -> Result<api::VirtualMachine, ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    for n in [group, name] {
        validate_name(n).map_err(|e| bad("InvalidName", e.to_string()))?;
    }
    let id = ResourceId::vm(&sub.id, group, name);
    caller.require(gw, AuditEvent::InventoryChange, VM_WRITE, &Scope::Resource(id.clone())).await?;
    let before = gw.store.machine(&id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "VmNotFound",
            format!("virtual machine '{id}' is not registered"),
        )
    })?;
    let mut m = before.clone();
    if let Some(os) = &change.os_type {
        m.os_type = OsType::from_str(os).map_err(|e| bad("InvalidOsType", e))?;
    }
    if let Some(ip) = &change.private_ip_address {
        m.nic.private_ip = parse_ip(ip)?;
    }
    for (port, what) in [(change.port_ssh, "SSH"), (change.port_rdp, "RDP")] {
        if port == Some(0) {
            return Err(bad("InvalidPort", format!("the {what} port is from 1 to 65535")));
        }
    }
    m.port_ssh = change.port_ssh.unwrap_or(m.port_ssh);
    m.port_rdp = change.port_rdp.unwrap_or(m.port_rdp);
    gw.store.update_machine(&m).await?;
    let what = format!(
        "updated {id}: {} at {}, ports {}/{} (was {} at {}, ports {}/{})",
        m.os_type,
        m.nic.private_ip,
        m.port_ssh,
        m.port_rdp,
        before.os_type,
        before.nic.private_ip,
        before.port_ssh,
        before.port_rdp
    );
    caller.record(gw, AuditEvent::InventoryChange, &id.to_string(), what).await?;
    Ok(machine_view(&m))
}

/// Whether the caller may register VMs at `scope`, or unregister the VM `scope` names.
pub(crate) fn may_register(caller: &Caller, scope: &Scope) -> bool {
    caller.may(VM_WRITE, scope)
}

pub(crate) fn may_unregister(caller: &Caller, scope: &Scope) -> bool {
    caller.may(VM_DELETE, scope)
}

pub async fn import_vms(
    State(gw): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    JsonBody(body): JsonBody<Vec<VmRegistration>>,
) -> Result<Json<ImportResult>, ApiError> {
    if body.len() > MAX_IMPORT {
        return Err(bad("ImportTooLarge", format!("at most {MAX_IMPORT} machines per request")));
    }
    let sub = resolve_subscription(&gw, &sub).await?;
    let machines = body
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (Some(group), Some(name)) = (&r.resource_group, &r.name) else {
                return Err(bad(
                    "InvalidImport",
                    format!("entry {}: resourceGroup and name are required", i + 1),
                ));
            };
            machine_from(&sub.id, group, name, r)
                .map_err(|e| bad(&e.code, format!("entry {} ({name}): {}", i + 1, e.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = register(&gw, &caller, machines, VM_WRITE).await?;
    Ok(Json(ImportResult { registered: n as u64 }))
}

async fn machine_or_404(gw: &AppState, caller: &Caller, id: &ResourceId) -> Result<Machine, ApiError> {
    caller.require(gw, AuditEvent::Read, &id.read_action(), &Scope::Resource(id.clone())).await?;
    gw.store
        .machine(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{id} is not registered")))
}

pub async fn show_vm(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<Json<api::VirtualMachine>, ApiError> {
    let sub = resolve_subscription(&gw, &sub).await?;
    let m = machine_or_404(&gw, &caller, &ResourceId::vm(&sub.id, &group, &name)).await?;
    Ok(Json(machine_view(&m)))
}

pub async fn unregister_vm(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    unregister_one(&gw, &caller, &sub, &group, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unregister_one(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
) -> Result<(), ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    unregister(gw, caller, ResourceId::vm(&sub.id, group, name), VM_DELETE).await.map(|_| ())
}

pub async fn unregister_scale_set(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    unregister_set(&gw, &caller, &sub, &group, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unregister_set(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
) -> Result<(), ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    unregister(gw, caller, ResourceId::of_type(VMSS_TYPE, &sub.id, group, name), VMSS_DELETE)
        .await
        .map(|_| ())
}

/// Whether the caller may unregister the scale set `name` in `group` of `sub`.
pub(crate) fn may_unregister_set(caller: &Caller, sub: &str, group: &str, name: &str) -> bool {
    caller.may(VMSS_DELETE, &Scope::Resource(ResourceId::of_type(VMSS_TYPE, sub, group, name)))
}

async fn unregister(
    gw: &AppState,
    caller: &Caller,
    id: ResourceId,
    action: &str,
) -> Result<StatusCode, ApiError> {
    caller.require(gw, AuditEvent::InventoryChange, action, &Scope::Resource(id.clone())).await?;
    let n = gw.store.unregister_machine(&id).await?;
    caller
        .record(gw, AuditEvent::InventoryChange, &id.to_string(), format!("unregistered {n} machine(s)"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_vms(
    State(gw): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    Query(q): Query<GroupQuery>,
) -> Result<Json<Vec<api::VirtualMachine>>, ApiError> {
    Ok(Json(machines(&gw, &caller, &sub, q.resource_group.as_deref()).await?))
}

/// The machines of a subscription (or one of its groups) the caller may read.
pub(crate) async fn machines(
    gw: &crate::server::Gateway,
    caller: &Caller,
    sub: &str,
    group: Option<&str>,
) -> Result<Vec<api::VirtualMachine>, ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    let machines = gw.store.list_machines(&sub.id, group).await?;
    Ok(machines
        .iter()
        .filter(|m| caller.may(&m.id.read_action(), &Scope::Resource(m.id.clone())))
        .map(machine_view)
        .collect())
}

pub async fn register_scale_set(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<ScaleSetRegistration>,
) -> Result<(StatusCode, Json<Vec<api::VirtualMachine>>), ApiError> {
    Ok((StatusCode::CREATED, Json(register_set(&gw, &caller, &sub, &group, &name, &body).await?)))
}

/// Registers a scale set and its instances (the API and the portal).
pub(crate) async fn register_set(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: &str,
    name: &str,
    body: &ScaleSetRegistration,
) -> Result<Vec<api::VirtualMachine>, ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    for n in [group, name] {
        validate_name(n).map_err(|e| bad("InvalidName", e.to_string()))?;
    }
    if body.instances.is_empty() {
        return Err(bad("InvalidScaleSet", "a scale set needs at least one instance (--instance IP)"));
    }
    let os_type = OsType::from_str(&body.os_type).map_err(|e| bad("InvalidOsType", e))?;
    let machines = body
        .instances
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let id = ResourceId::scale_set_instance(&sub.id, group, name, &i.to_string());
            Ok(Machine {
                os_type,
                nic: NetworkInterface {
                    id: ResourceId::nic(&sub.id, group, &format!("{name}-nic-{i}")),
                    private_ip: parse_ip(ip)?,
                    attached_to: Some(id.clone()),
                },
                id,
                port_ssh: body.port_ssh.unwrap_or(22),
                port_rdp: body.port_rdp.unwrap_or(3389),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    register(gw, caller, machines.clone(), VMSS_WRITE).await?;
    Ok(machines.iter().map(machine_view).collect())
}

pub async fn show_scale_set(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<Json<Vec<api::VirtualMachine>>, ApiError> {
    let sub = resolve_subscription(&gw, &sub).await?;
    let id = ResourceId::of_type(VMSS_TYPE, &sub.id, &group, &name);
    caller.require(&gw, AuditEvent::Read, &id.read_action(), &Scope::Resource(id.clone())).await?;
    let instances: Vec<api::VirtualMachine> = gw
        .store
        .list_machines(&sub.id, Some(&group))
        .await?
        .iter()
        .filter(|m| m.id.parent().is_some_and(|p| p == id))
        .map(machine_view)
        .collect();
    if instances.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{id} is not registered")));
    }
    Ok(Json(instances))
}

pub async fn list_nics(
    State(gw): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    Query(q): Query<GroupQuery>,
) -> Result<Json<Vec<api::NetworkInterface>>, ApiError> {
    Ok(Json(nics(&gw, &caller, &sub, q.resource_group.as_deref()).await?))
}

/// The network interfaces of a subscription (or group) the caller may read.
pub(crate) async fn nics(
    gw: &AppState,
    caller: &Caller,
    sub: &str,
    group: Option<&str>,
) -> Result<Vec<api::NetworkInterface>, ApiError> {
    let sub = resolve_subscription(gw, sub).await?;
    let nics = gw.store.list_network_interfaces(&sub.id, group).await?;
    Ok(nics
        .iter()
        .filter(|n| caller.may(&n.id.read_action(), &Scope::Resource(n.id.clone())))
        .map(nic_view)
        .collect())
}

pub async fn show_nic(
    State(gw): State<AppState>,
    caller: Caller,
    Path((sub, group, name)): Path<(String, String, String)>,
) -> Result<Json<api::NetworkInterface>, ApiError> {
    let sub = resolve_subscription(&gw, &sub).await?;
    let id = ResourceId::nic(&sub.id, &group, &name);
    caller.require(&gw, AuditEvent::Read, &id.read_action(), &Scope::Resource(id.clone())).await?;
    let nic =
        gw.store.network_interface(&id).await?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{id} is not registered"))
        })?;
    Ok(Json(nic_view(&nic)))
}
