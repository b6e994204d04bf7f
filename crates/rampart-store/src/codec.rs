//! How domain values are kept in columns, the same for every backend: JSON lists and
//! conditions, machine keys, addresses.

use ipnet::IpNet;
use rampart_core::rbac::Condition;
use rampart_core::{ResourceId, ResourceKind};

use crate::{StoreError, StoreResult};

pub(crate) fn json_list(items: impl IntoIterator<Item = String>) -> String {
    serde_json::Value::from(items.into_iter().collect::<Vec<_>>()).to_string()
}

pub(crate) fn parse_json_list(text: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn condition_json(c: &Condition) -> String {
    serde_json::json!({
        "networks": c.networks.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "ports": c.ports,
    })
    .to_string()
}

pub(crate) fn condition_from_json(text: &str) -> StoreResult<Condition> {
    let corrupt = |e: String| StoreError::Corrupt(format!("role assignment condition: {e}"));
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let networks = v["networks"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|n| n.as_str()).map(|n| n.parse::<IpNet>()).collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?
        .unwrap_or_default();
    let ports = v["ports"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_u64()).filter_map(|p| u16::try_from(p).ok()).collect())
        .unwrap_or_default();
    Ok(Condition { networks, ports })
}

/// A machine's ID from its row: a VM when `scale_set` is empty, else a scale-set instance.
pub(crate) fn machine_id(sub: &str, rg: &str, scale_set: &str, name: &str) -> ResourceId {
    if scale_set.is_empty() {
        ResourceId::vm(sub, rg, name)
    } else {
        ResourceId::scale_set_instance(sub, rg, scale_set, name)
    }
}

/// (scale set, name) of a VM or scale-set instance ID.
pub(crate) fn machine_key(id: &ResourceId) -> StoreResult<(String, String)> {
    match (id.kind(), &id.child) {
        (ResourceKind::VirtualMachine, _) => Ok((String::new(), id.name.clone())),
        (ResourceKind::ScaleSetInstance, Some((_, instance))) => Ok((id.name.clone(), instance.clone())),
        _ => Err(StoreError::NotFound(format!("machine {id}"))),
    }
}

pub(crate) fn parse_ip(text: &str) -> StoreResult<std::net::IpAddr> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("private IP '{text}'")))
}
