//! Registered machines (Rampart does not create VMs; it is told where they are) and their
//! network interfaces. Connecting by resource ID resolves machine → network interface →
//! private IP.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::resource_id::ResourceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsType {
    Linux,
    Windows,
}

impl OsType {
    pub fn as_str(self) -> &'static str {
        match self {
            OsType::Linux => "Linux",
            OsType::Windows => "Windows",
        }
    }
}

impl fmt::Display for OsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OsType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linux" => Ok(OsType::Linux),
            "windows" => Ok(OsType::Windows),
            other => Err(format!("unknown OS type '{other}': expected linux or windows")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: ResourceId,
    pub private_ip: IpAddr,
    /// The machine it belongs to.
    pub attached_to: Option<ResourceId>,
}

/// A virtual machine or a scale-set instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub id: ResourceId,
    pub os_type: OsType,
    /// Its primary network interface.
    pub nic: NetworkInterface,
    pub port_ssh: u16,
    pub port_rdp: u16,
}

impl Machine {
    /// The port a protocol uses on this machine when none is given.
    pub fn default_port(&self) -> u16 {
        match self.os_type {
            OsType::Linux => self.port_ssh,
            OsType::Windows => self.port_rdp,
        }
    }
}
