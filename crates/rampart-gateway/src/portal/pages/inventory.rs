//! The inventory in the portal: the virtual machines and network interfaces of the user's
//! subscriptions that they may read, a form that registers a VM with its network interface
//! (where the user may write VMs), Edit on each VM the user may write (its OS, address and
//! ports, in place), and Unregister on each VM the user may delete. Changes go
//! through the API's own functions, which check the permission again.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use rampart_core::{ResourceId, Scope};
use rampart_proto::api::{NetworkInterface, ScaleSetRegistration, VirtualMachine, VmChange, VmRegistration};
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::inventory::{
    machines, may_register, may_unregister, may_unregister_set, nics, register_one, register_set,
    unregister_one, unregister_set, update_one,
};
use crate::api::{ApiError, AppState};

const INVENTORY: &str = "/portal/inventory";

struct VmRow {
    vm: VirtualMachine,
    subscription: String,
    removable: bool,
    /// The user may change it in place.
    editable: bool,
}

/// A scale set, gathered from its instances.
struct SetRow {
    subscription: String,
    group: String,
    name: String,
    instances: usize,
    removable: bool,
}

struct Subscription {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "inventory.html")]
struct InventoryPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    /// Subscriptions where the user may register VMs (the form's choices).
    writable: Vec<Subscription>,
    vms: Vec<VmRow>,
    sets: Vec<SetRow>,
    nics: Vec<NetworkInterface>,
}

async fn page(gw: &AppState, user: &PortalUser, error: Option<String>) -> Result<Response, ApiError> {
    let caller = &user.caller;
    let mine: Vec<_> = gw
        .store
        .list_subscriptions()
        .await?
        .into_iter()
        .filter(|s| caller.assignments.iter().any(|a| a.scope.subscription().eq_ignore_ascii_case(&s.id)))
        .collect();
    let (mut vms, mut all_nics, mut writable) = (Vec::new(), Vec::new(), Vec::new());
    let mut sets: Vec<SetRow> = Vec::new();
    for s in &mine {
        if may_register(caller, &Scope::Subscription(s.id.clone()))
            || caller
                .assignments
                .iter()
                .any(|a| a.scope.subscription() == s.id && may_register(caller, &a.scope))
        {
            writable.push(Subscription { id: s.id.clone(), name: s.name.clone() });
        }
        let listed = machines(gw, caller, &s.id, None).await?;
        for vm in &listed {
            let Some(set) = &vm.scale_set else { continue };
            match sets.iter_mut().find(|r: &&mut SetRow| {
                r.subscription == s.id && r.group == vm.resource_group && &r.name == set
            }) {
                Some(row) => row.instances += 1,
                None => sets.push(SetRow {
                    subscription: s.id.clone(),
                    group: vm.resource_group.clone(),
                    name: set.clone(),
                    instances: 1,
                    removable: may_unregister_set(caller, &s.id, &vm.resource_group, set),
                }),
            }
        }
        for vm in listed {
            let scope =
                vm.id.parse::<ResourceId>().ok().filter(|_| vm.scale_set.is_none()).map(Scope::Resource);
            let removable = scope.as_ref().is_some_and(|s| may_unregister(caller, s));
            let editable = scope.as_ref().is_some_and(|s| may_register(caller, s));
            vms.push(VmRow { vm, subscription: s.id.clone(), removable, editable });
        }
        all_nics.extend(nics(gw, caller, &s.id, None).await?);
    }
    Ok(render(&InventoryPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        error,
        writable,
        vms,
        sets,
        nics: all_nics,
    }))
}

pub async fn inventory_page(State(gw): State<AppState>, user: PortalUser) -> Response {
    match page(&gw, &user, None).await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

#[derive(Deserialize)]
pub struct InventoryForm {
    csrf: String,
    action: String,
    subscription: Option<String>,
    resource_group: Option<String>,
    name: Option<String>,
    os_type: Option<String>,
    private_ip_address: Option<String>,
    nic_name: Option<String>,
    port_ssh: Option<String>,
    port_rdp: Option<String>,
    /// A scale set's instances: private IP addresses, separated by commas or spaces.
    instances: Option<String>,
}

/// A port field: empty for the default, else 1-65535.
fn port(text: Option<&str>, what: &str) -> Result<Option<u16>, ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t.parse::<u16>().ok().filter(|p| *p > 0).map(Some).ok_or_else(|| {
            ApiError::bad_request("InvalidPort", format!("{what} '{t}': a port from 1 to 65535"))
        }),
    }
}

pub async fn change_inventory(
    State(gw): State<AppState>,
    user: PortalUser,
    Form(form): Form<InventoryForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_string();
    let (sub, group, name) = (text(&form.subscription), text(&form.resource_group), text(&form.name));
    let done = match form.action.as_str() {
        "register" => {
            async {
                let body = VmRegistration {
                    resource_group: None,
                    name: None,
                    os_type: text(&form.os_type),
                    private_ip_address: text(&form.private_ip_address),
                    nic_name: Some(text(&form.nic_name)).filter(|n| !n.is_empty()),
                    port_ssh: port(form.port_ssh.as_deref(), "SSH port")?,
                    port_rdp: port(form.port_rdp.as_deref(), "RDP port")?,
                };
                register_one(&gw, &user.caller, &sub, &group, &name, &body).await.map(|_| ())
            }
            .await
        }
        "update" => {
            async {
                let given = |v: &Option<String>| Some(text(v)).filter(|t| !t.is_empty());
                let change = VmChange {
                    os_type: given(&form.os_type),
                    private_ip_address: given(&form.private_ip_address),
                    port_ssh: port(form.port_ssh.as_deref(), "SSH port")?,
                    port_rdp: port(form.port_rdp.as_deref(), "RDP port")?,
                };
                update_one(&gw, &user.caller, &sub, &group, &name, &change).await.map(|_| ())
            }
            .await
        }
        "unregister" => unregister_one(&gw, &user.caller, &sub, &group, &name).await,
        "register_set" => {
            async {
                let body = ScaleSetRegistration {
                    os_type: text(&form.os_type),
                    instances: text(&form.instances)
                        .split([',', ' ', '\n'])
                        .map(str::trim)
                        .filter(|i| !i.is_empty())
                        .map(str::to_string)
                        .collect(),
                    port_ssh: port(form.port_ssh.as_deref(), "SSH port")?,
                    port_rdp: port(form.port_rdp.as_deref(), "RDP port")?,
                };
                register_set(&gw, &user.caller, &sub, &group, &name, &body).await.map(|_| ())
            }
            .await
        }
        "unregister_set" => unregister_set(&gw, &user.caller, &sub, &group, &name).await,
        _ => Err(ApiError::bad_request(
            "InvalidAction",
            "register, update, unregister, register_set or unregister_set",
        )),
    };
    match done {
        Ok(()) => Redirect::to(INVENTORY).into_response(),
        Err(e) if e.status.is_client_error() => match page(&gw, &user, Some(e.message)).await {
            Ok(r) => (e.status, r).into_response(),
            Err(e) => error_page(&e, INVENTORY),
        },
        Err(e) => error_page(&e, INVENTORY),
    }
}
