//! What a session asks for: who, through which bastion, to which target and port, over what,
//! from where. The admission service decides on it when the session starts, and decides again
//! on the same request while the session runs (a removed role assignment or a changed bastion
//! setting ends the sessions it no longer allows).

use std::net::{IpAddr, SocketAddr};

use crate::audit::AuditEntry;
use crate::inventory::Machine;
use crate::policy::ClientKind;
use crate::resource_id::ResourceId;
use crate::session::{Identity, Protocol};

/// What a session asks for.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub identity: Identity,
    pub bastion: ResourceId,
    pub target: RequestedTarget,
    pub port: u16,
    pub protocol: Protocol,
    /// Native client or browser: the bastion's settings treat them differently.
    pub client_kind: ClientKind,
    pub client: SocketAddr,
}

/// The target as the user named it.
#[derive(Debug, Clone)]
pub enum RequestedTarget {
    /// By IP address (the bastion's IP-based connection setting applies).
    Ip(IpAddr),
    /// A registered machine, by resource ID.
    Machine(Box<Machine>),
}

impl RequestedTarget {
    pub fn ip(&self) -> IpAddr {
        match self {
            RequestedTarget::Ip(ip) => *ip,
            RequestedTarget::Machine(m) => m.nic.private_ip,
        }
    }
}

impl SessionRequest {
    /// Fills an audit entry's who/what/where from this request.
    pub fn describe(&self, entry: &mut AuditEntry) {
        entry.user = Some(self.identity.name.clone());
        entry.client_address.get_or_insert_with(|| self.client.to_string());
        entry.bastion_id = Some(self.bastion.to_string());
        entry.target_ip = Some(self.target.ip().to_string());
        entry.target_port = Some(self.port);
        entry.protocol = Some(self.protocol.as_str().to_string());
        if let RequestedTarget::Machine(m) = &self.target {
            entry.target_resource_id = Some(m.id.to_string());
        }
    }
}
