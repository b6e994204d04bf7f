//! `rampart vm …`, `rampart vmss …`, `rampart network nic …`.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use rampart_client::ApiClient;
use rampart_client::api::{Method, urlencode};
use rampart_proto::api::{
    ImportResult, NetworkInterface, ScaleSetRegistration, VirtualMachine, VmRegistration,
};

use crate::cli::{GroupArgs, NicCommand, VmCommand, VmssCommand};
use crate::output::print;
use crate::profile::Profile;

const VM_COLUMNS: &[(&str, &str)] = &[
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("ScaleSet", "scaleSet"),
    ("OsType", "osType"),
    ("PrivateIp", "privateIpAddress"),
    ("PortSsh", "portSsh"),
    ("PortRdp", "portRdp"),
];
const NIC_COLUMNS: &[(&str, &str)] = &[
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("PrivateIp", "privateIpAddress"),
    ("VirtualMachine", "virtualMachine"),
];

/// Machines per import request.
const IMPORT_BATCH: usize = 5_000;

async fn call<T: serde::de::DeserializeOwned>(
    client: &ApiClient,
    method: Method,
    path: &str,
    body: Option<&impl serde::Serialize>,
) -> Result<Option<T>> {
    Ok(client.request(method, path, body).await?)
}

fn group_query(g: &GroupArgs) -> String {
    g.resource_group.as_ref().map(|rg| format!("?resourceGroup={}", urlencode(rg))).unwrap_or_default()
}

pub async fn vm(cmd: VmCommand) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let none: Option<&()> = None;
    match cmd {
        VmCommand::Register { vm, os_type, private_ip_address, nic_name, port_ssh, port_rdp, output } => {
            let sub = profile.subscription(vm.subscription.as_deref())?;
            let body = VmRegistration {
                resource_group: None,
                name: None,
                os_type,
                private_ip_address,
                nic_name,
                port_ssh: Some(port_ssh),
                port_rdp: Some(port_rdp),
            };
            let path = format!(
                "/api/subscriptions/{sub}/resourceGroups/{}/virtualMachines/{}",
                vm.resource_group, vm.name
            );
            let created: Option<VirtualMachine> = call(&client, Method::PUT, &path, Some(&body)).await?;
            print(&created, output, VM_COLUMNS)?;
        }
        VmCommand::List { group } => {
            let sub = profile.subscription(group.subscription.as_deref())?;
            let path = format!("/api/subscriptions/{sub}/virtualMachines{}", group_query(&group));
            let list: Option<Vec<VirtualMachine>> = call(&client, Method::GET, &path, none).await?;
            print(&list.unwrap_or_default(), group.output, VM_COLUMNS)?;
        }
        VmCommand::Update { vm, os_type, private_ip_address, port_ssh, port_rdp, output } => {
            let sub = profile.subscription(vm.subscription.as_deref())?;
            let body = rampart_proto::api::VmChange { os_type, private_ip_address, port_ssh, port_rdp };
            if body == rampart_proto::api::VmChange::default() {
                anyhow::bail!(
                    "nothing to update: give --os-type, --private-ip-address, --port-ssh or --port-rdp"
                );
            }
            let path = format!(
                "/api/subscriptions/{sub}/resourceGroups/{}/virtualMachines/{}",
                vm.resource_group, vm.name
            );
            let updated: Option<VirtualMachine> = call(&client, Method::PATCH, &path, Some(&body)).await?;
            print(&updated, output, VM_COLUMNS)?;
        }
        VmCommand::Show { vm, output } => {
            let sub = profile.subscription(vm.subscription.as_deref())?;
            let path = format!(
                "/api/subscriptions/{sub}/resourceGroups/{}/virtualMachines/{}",
                vm.resource_group, vm.name
            );
            let shown: Option<VirtualMachine> = call(&client, Method::GET, &path, none).await?;
            print(&shown, output, VM_COLUMNS)?;
        }
        VmCommand::Unregister { vm } => {
            let sub = profile.subscription(vm.subscription.as_deref())?;
            let path = format!(
                "/api/subscriptions/{sub}/resourceGroups/{}/virtualMachines/{}",
                vm.resource_group, vm.name
            );
            call::<serde_json::Value>(&client, Method::DELETE, &path, none).await?;
            eprintln!("unregistered VM '{}' in resource group '{}'", vm.name, vm.resource_group);
        }
        VmCommand::Import { file, subscription } => {
            let sub = profile.subscription(subscription.as_deref())?;
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let machines = parse_import(&text)
                .with_context(|| format!("{} is not a valid import file", file.display()))?;
            let path = format!("/api/subscriptions/{sub}/virtualMachines/import");
            let mut total = 0;
            for batch in machines.chunks(IMPORT_BATCH) {
                let done: Option<ImportResult> = call(&client, Method::POST, &path, Some(&batch.to_vec()))
                    .await
                    .with_context(|| format!("after {total} machines were registered"))?;
                total += done.map(|d| d.registered).unwrap_or(0);
            }
            eprintln!("registered {total} machines");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON array of registrations, or CSV with a header row naming the columns.
fn parse_import(text: &str) -> Result<Vec<VmRegistration>> {
    if text.trim_start().starts_with('[') {
        return Ok(serde_json::from_str(text)?);
    }
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| anyhow!("the file is empty"))?;
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    let col = |name: &str| columns.iter().position(|c| c == &name.to_ascii_lowercase());
    let required = ["name", "resourceGroup", "osType", "privateIpAddress"];
    for r in required {
        if col(r).is_none() {
            bail!("the CSV header lacks the column '{r}' (needed: {})", required.join(","));
        }
    }
    lines
        .map(|(n, line)| {
            if line.contains('"') {
                bail!("line {}: quoted CSV fields are not supported", n + 1);
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |name: &str| {
                col(name).and_then(|i| fields.get(i)).filter(|v| !v.is_empty()).map(|v| v.to_string())
            };
            let port = |name: &str| -> Result<Option<u16>> {
                get(name)
                    .map(|p| p.parse().with_context(|| format!("line {}: {name} '{p}'", n + 1)))
                    .transpose()
            };
            Ok(VmRegistration {
                name: get("name"),
                resource_group: get("resourceGroup"),
                os_type: get("osType").unwrap_or_default(),
                private_ip_address: get("privateIpAddress").unwrap_or_default(),
                nic_name: get("nicName"),
                port_ssh: port("portSsh")?,
                port_rdp: port("portRdp")?,
            })
        })
        .collect()
}

pub async fn vmss(cmd: VmssCommand) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let none: Option<&()> = None;
    let path = |r: &crate::cli::ResourceRef| -> Result<String> {
        let sub = profile.subscription(r.subscription.as_deref())?;
        Ok(format!(
            "/api/subscriptions/{sub}/resourceGroups/{}/virtualMachineScaleSets/{}",
            r.resource_group, r.name
        ))
    };
    match cmd {
        VmssCommand::Register { vmss, os_type, instances, port_ssh, port_rdp, output } => {
            let body = ScaleSetRegistration { os_type, instances, port_ssh, port_rdp };
            let created: Option<Vec<VirtualMachine>> =
                call(&client, Method::PUT, &path(&vmss)?, Some(&body)).await?;
            print(&created.unwrap_or_default(), output, VM_COLUMNS)?;
        }
        VmssCommand::Show { vmss, output } => {
            let shown: Option<Vec<VirtualMachine>> = call(&client, Method::GET, &path(&vmss)?, none).await?;
            print(&shown.unwrap_or_default(), output, VM_COLUMNS)?;
        }
        VmssCommand::Delete { vmss } => {
            call::<serde_json::Value>(&client, Method::DELETE, &path(&vmss)?, none).await?;
            eprintln!("unregistered scale set '{}' and its instances", vmss.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn nic(cmd: NicCommand) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let none: Option<&()> = None;
    match cmd {
        NicCommand::List { group } => {
            let sub = profile.subscription(group.subscription.as_deref())?;
            let path = format!("/api/subscriptions/{sub}/networkInterfaces{}", group_query(&group));
            let list: Option<Vec<NetworkInterface>> = call(&client, Method::GET, &path, none).await?;
            print(&list.unwrap_or_default(), group.output, NIC_COLUMNS)?;
        }
        NicCommand::Show { nic, output } => {
            let sub = profile.subscription(nic.subscription.as_deref())?;
            let path = format!(
                "/api/subscriptions/{sub}/resourceGroups/{}/networkInterfaces/{}",
                nic.resource_group, nic.name
            );
            let shown: Option<NetworkInterface> = call(&client, Method::GET, &path, none).await?;
            print(&shown, output, NIC_COLUMNS)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_import;

    #[test]
    fn csv_and_json_imports() {
        let csv = "name,resourceGroup,osType,privateIpAddress,portSsh\nvm1,rg,linux,10.0.0.4,2222\n\nvm2,rg,windows,10.0.0.5,\n";
        let list = parse_import(csv).expect("csv");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].port_ssh, Some(2222));
        assert_eq!(list[1].port_ssh, None);
        assert!(parse_import("name,osType\nx,linux").is_err());
        let json = r#"[{"name":"a","resourceGroup":"g","osType":"linux","privateIpAddress":"10.0.0.9"}]"#;
        assert_eq!(parse_import(json).expect("json").len(), 1);
    }
}
