//! The conformance check of editing the inventory in place.

use std::sync::Arc;

use rampart_core::{Machine, NetworkInterface, OsType, ResourceId};
use rampart_store::StoreError;
use rampart_store::prelude::*;

use super::{Checked, fail};

/// A machine changed in place is read back changed at once (cached reads included), keeps
/// its names, and an unregistered one cannot be changed.
pub async fn a_machine_is_changed_in_place(store: Arc<dyn Store>) -> Checked {
    store.create_subscription("s", "s").await?;
    let id = ResourceId::vm("s", "g", "web");
    let machine = Machine {
        id: id.clone(),
        os_type: OsType::Linux,
        nic: NetworkInterface {
            id: ResourceId::nic("s", "g", "web-nic"),
            private_ip: "10.0.0.4".parse().map_err(|_| fail("ip"))?,
            attached_to: Some(id.clone()),
        },
        port_ssh: 22,
        port_rdp: 3389,
    };
    store.register_machines(std::slice::from_ref(&machine)).await?;
    ensure!(store.machine(&id).await?.is_some_and(|m| m.port_ssh == 22), "registered, and read (cached)");
    let mut changed = machine.clone();
    changed.os_type = OsType::Windows;
    changed.port_ssh = 2222;
    changed.port_rdp = 3390;
    changed.nic.private_ip = "10.0.0.5".parse().map_err(|_| fail("ip"))?;
    store.update_machine(&changed).await?;
    let read = store.machine(&id).await?.ok_or_else(|| fail("still registered"))?;
    ensure!(read == changed, "every change is read back at once: {read:?}");
    let nic = store.network_interface(&changed.nic.id).await?.ok_or_else(|| fail("its interface"))?;
    ensure!(nic.private_ip == changed.nic.private_ip, "the interface has the new address: {nic:?}");
    let other = Machine { id: ResourceId::vm("s", "g", "nope"), ..changed };
    ensure!(
        matches!(store.update_machine(&other).await, Err(StoreError::NotFound(_))),
        "an unregistered machine is not found"
    );
    Ok(())
}
