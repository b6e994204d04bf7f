//! The portal's pages, one module each: sign-in, home (bastions and the machines the user
//! may reach), the Connect page, and a bastion's configuration and live sessions for its
//! operators. What several pages show of a machine is here.

mod access;
mod audit;
mod authorize;
mod bastion;
mod connect;
mod device;
mod home;
mod inventory;
mod mfa;
mod recordings;
mod roles;
mod sign_in;
mod users;

pub use access::{access_page, change_access};
pub use audit::{audit_export, audit_page};
pub use authorize::{approve_authorize, authorize_page};
pub use bastion::{bastion_page, change_bastion, disconnect};
pub use connect::connect_page;
pub use device::{approve_device, device_page};
pub use home::home;
pub use inventory::{change_inventory, inventory_page};
pub use mfa::{change_mfa, mfa_page};
pub use recordings::{cast, player_page, recordings_page};
pub use roles::{change_roles, roles_page};
pub use sign_in::{safe_next, sign_in, sign_in_page, sign_out};
pub use users::{change_users, users_page};

use rampart_core::{Bastion, ConnectTarget, Machine, OsType, Scope, authorize_connect};

use super::PortalUser;
use crate::api::ApiError;
use crate::api::bastions::READ;
use crate::server::Gateway;

pub(crate) struct MachineRow {
    pub id: String,
    pub name: String,
    pub os: &'static str,
    pub ip: String,
    pub port_ssh: u16,
    pub port_rdp: u16,
    pub selected: bool,
}

fn os_name(os: OsType) -> &'static str {
    match os {
        OsType::Linux => "Linux",
        OsType::Windows => "Windows",
    }
}

fn machine_row(m: &Machine, selected: bool) -> MachineRow {
    MachineRow {
        id: m.id.to_string(),
        name: m
            .id
            .child
            .as_ref()
            .map(|c| format!("{}/{}", m.id.name, c.1))
            .unwrap_or_else(|| m.id.name.clone()),
        os: os_name(m.os_type),
        ip: m.nic.private_ip.to_string(),
        port_ssh: m.port_ssh,
        port_rdp: m.port_rdp,
        selected,
    }
}

/// Machines behind `bastion` (in its reachable networks) that the user may connect to:
/// Reader on the VM, its NIC and the bastion, as Azure asks.
async fn reachable_machines(
    gw: &Gateway,
    user: &PortalUser,
    bastion: &Bastion,
) -> Result<Vec<Machine>, ApiError> {
    let machines = gw.store.list_machines(&bastion.id.subscription, None).await?;
    let principal = user.caller.principal();
    Ok(machines
        .into_iter()
        .filter(|m| bastion.settings.reachable_networks.iter().any(|n| n.contains(&m.nic.private_ip)))
        .filter(|m| {
            authorize_connect(
                &principal,
                &bastion.id,
                ConnectTarget::Resource { machine: &m.id, nic: &m.nic.id },
            )
            .is_ok()
        })
        .collect())
}

/// The bastion a portal page is about, if the user may read it (else the refusal, audited).
async fn readable_bastion(gw: &Gateway, user: &PortalUser, raw: Option<&str>) -> Result<Bastion, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_request("InvalidResourceId", "no bastion was named"))?;
    let id = gw.admission.resolve_bastion(raw).await?;
    user.caller.require(gw, rampart_core::AuditEvent::Read, READ, &Scope::Resource(id.clone())).await?;
    gw.store.bastion(&id).await?.ok_or_else(|| {
        ApiError::refused(&rampart_core::Refusal::new(rampart_core::RefusalReason::BastionNotFound {
            bastion: id.to_string(),
        }))
    })
}
