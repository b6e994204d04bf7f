//! The inventory against real OpenSSH: connecting by `--target-resource-id` to a VM and to a
//! scale-set instance, a 10,000-machine import, and the tamper-evident audit log.

use std::time::Instant;

use anyhow::{Result, ensure};
use rampart_client::{ApiClient, Trust};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, Sshd, audit_has};
use rampart_proto::tunnel::TunnelRequest;

fn vm_id(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/default/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

#[test]
fn connect_by_resource_id_to_a_vm_and_a_scale_set_instance() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;
    let port = sshd.port.to_string();
    // IP-based connection stays off: connecting by resource ID does not need it.
    gw.update_bastion("default", &["--reachable-networks", "127.0.0.0/8"])?;
    gw.ok(&[
        "vm",
        "register",
        "--name",
        "web1",
        "--resource-group",
        "apps",
        "--os-type",
        "linux",
        "--private-ip-address",
        "127.0.0.1",
        "--port-ssh",
        &port,
    ])?;
    gw.ok(&[
        "vmss",
        "register",
        "--name",
        "pool",
        "--resource-group",
        "apps",
        "--os-type",
        "linux",
        "--instance",
        "127.0.0.2",
        "--instance",
        "127.0.0.1",
        "--port-ssh",
        &port,
    ])?;
    let nics: serde_json::Value = serde_json::from_str(&gw.ok(&["network", "nic", "list", "-g", "apps"])?)?;
    ensure!(nics.as_array().map(Vec::len) == Some(3), "expected 3 NICs: {nics}");

    let tunnel = gw.tunnel_with(&[
        "-n",
        "default",
        "-g",
        "default",
        "--target-resource-id",
        &vm_id("apps", "web1"),
        "--resource-port",
        &port,
    ])?;
    ensure!(sshd.ssh(tunnel.port, "echo via-vm")?.trim() == "via-vm");

    let instance = "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/1";
    let tunnel = gw.tunnel_with(&[
        "-n",
        "default",
        "-g",
        "default",
        "--target-resource-id",
        instance,
        "--resource-port",
        &port,
    ])?;
    ensure!(sshd.ssh(tunnel.port, "echo via-instance")?.trim() == "via-instance");

    // The audit log names the target by its resource ID.
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["event"] == "connection-open"
            && r["result"] == "allowed"
            && r["targetResourceId"]
                .as_str()
                .is_some_and(|t| t.ends_with("virtualMachineScaleSets/pool/virtualMachines/1"))),
        "no audit record names the scale-set instance"
    );

    // Changed in place (`vm update`), the VM is reached at its new address: nothing listens
    // there, so the connection fails; moved back, it works again.
    let web_args = [
        "-n",
        "default",
        "-g",
        "default",
        "--target-resource-id",
        &vm_id("apps", "web1"),
        "--resource-port",
        &port,
    ];
    let update = ["vm", "update", "--name", "web1", "--resource-group", "apps", "--private-ip-address"];
    let moved = gw.ok(&[&update[..], &["127.0.0.3", "-o", "json"]].concat())?;
    ensure!(moved.contains("\"privateIpAddress\": \"127.0.0.3\""), "{moved}");
    let away = gw.tunnel_with(&web_args)?;
    ensure!(sshd.ssh(away.port, "echo away").is_err(), "the VM's old address was used after the change");
    gw.ok(&[&update[..], &["127.0.0.1"]].concat())?;
    let back = gw.tunnel_with(&web_args)?;
    ensure!(sshd.ssh(back.port, "echo back")?.trim() == "back");

    // Unregistering the VM refuses the next connection of a tunnel already open to it.
    let web = gw.tunnel_with(&[
        "-n",
        "default",
        "-g",
        "default",
        "--target-resource-id",
        &vm_id("apps", "web1"),
        "--resource-port",
        &port,
    ])?;
    gw.ok(&["vm", "unregister", "--name", "web1", "--resource-group", "apps"])?;
    ensure!(sshd.ssh(web.port, "echo gone").is_err(), "a connection went to an unregistered VM");
    web.said("not registered")?;
    Ok(())
}

#[test]
fn audit_verify_names_an_edited_or_deleted_record() -> Result<()> {
    let mut gw = Gateway::start(&[])?;
    for i in 0..3 {
        gw.update_bastion("default", &["--reachable-networks", &format!("10.{i}.0.0/16")])?;
    }
    let out = gw.ok(&["audit", "verify"])?;
    ensure!(out.contains("audit log intact"), "{out}");

    // Edit one record directly in SQLite, with the gateway stopped.
    gw.process.terminate()?;
    let db = gw.data_dir.join("rampart.db");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let url = format!("sqlite://{}", db.display());
        let pool = sqlx::SqlitePool::connect(&url).await?;
        sqlx::query("UPDATE audit_records SET reason = 'nothing to see' WHERE id = 3").execute(&pool).await?;
        pool.close().await;
        anyhow::Ok(())
    })?;
    let (data_dir, config_dir) = (gw.data_dir.clone(), gw.config_dir.clone());
    let mut again = Gateway::start_in(&data_dir, &config_dir, &[])?;
    again.login()?;
    let err = again.refused(&["audit", "verify"])?;
    ensure!(err.contains("record 3") && err.contains("altered"), "{err}");

    // Deleting a record is found too, at the record after the gap.
    again.process.terminate()?;
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
        sqlx::query(
            "UPDATE audit_records SET reason = (SELECT reason FROM audit_records WHERE id = 3) WHERE id = 3",
        )
        .execute(&pool)
        .await?;
        sqlx::query("DELETE FROM audit_records WHERE id = 2").execute(&pool).await?;
        pool.close().await;
        anyhow::Ok(())
    })?;
    let third = Gateway::start_in(&data_dir, &config_dir, &[])?;
    third.login()?;
    let err = third.refused(&["audit", "verify"])?;
    ensure!(err.contains("record 3"), "{err}");
    drop(gw);
    drop(again);
    Ok(())
}

#[test]
fn import_ten_thousand_machines_then_connect_by_resource_id() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.update_bastion("default", &["--reachable-networks", "10.0.0.0/8"])?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("fleet.csv");
    let mut csv = String::from("name,resourceGroup,osType,privateIpAddress,portSsh\n");
    for i in 0..10_000u32 {
        let os = if i % 5 == 0 { "windows" } else { "linux" };
        csv.push_str(&format!(
            "vm{i:05},fleet{},{os},10.{}.{}.{},22\n",
            i % 20,
            1 + i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    std::fs::write(&file, csv)?;
    let started = Instant::now();
    gw.ok(&["vm", "import", file.to_str().unwrap_or_default()])?;
    let import = started.elapsed();
    let list: serde_json::Value = serde_json::from_str(&gw.ok(&["vm", "list", "-g", "fleet7"])?)?;
    ensure!(list.as_array().map(Vec::len) == Some(500), "fleet7 should hold 500 machines");

    // Grant latency by resource ID among 10,000 machines (the API call a connect makes).
    let runtime = tokio::runtime::Runtime::new()?;
    let latencies = runtime.block_on(async {
        let api = ApiClient::new(&gw.url(), Trust::Fingerprint(gw.fingerprint.clone()))?;
        api.login("admin", ADMIN_PASSWORD).await?;
        let sub = api.subscriptions().await?.remove(0).id;
        let mut out = vec![];
        for i in (0..10_000u32).step_by(500) {
            let request = TunnelRequest {
                bastion_id: format!(
                    "/subscriptions/{sub}/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default"
                ),
                target_ip_address: None,
                target_resource_id: Some(vm_id(&format!("fleet{}", i % 20), &format!("vm{i:05}"))),
                resource_port: 22,
            };
            let t = Instant::now();
            let grant = api.grant_tunnel(&request).await?;
            out.push(t.elapsed());
            ensure!(grant.target.starts_with("10."), "granted {}", grant.target);
        }
        anyhow::Ok(out)
    })?;
    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "import of 10,000 machines: {:.2} s; grant by resource ID among them: p50 {:.2} ms, max {:.2} ms ({} grants)",
        import.as_secs_f64(),
        sorted[sorted.len() / 2].as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3,
        sorted.len()
    );
    ensure!(audit_has(&gw.audit()?, "inventory-change", "allowed", None));
    Ok(())
}
