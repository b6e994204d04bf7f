//! The real Azure CLI's tunnel beside Rampart's own, through one gateway in one run:
//! `az network bastion tunnel` (az 2.91, its `bastion` extension: a token request and a
//! WebSocket per connection, relayed by Python threads) and `rampart network bastion tunnel`
//! (protocol v3), to the same target by resource ID. New-connection latency (connect to the
//! first echoed byte) and throughput up and down, as ratios.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use rampart_e2e::az::Az;
use rampart_e2e::{Gateway, Process, wait_for_port};
use tokio::net::TcpListener;

use crate::stats::Summary;
use crate::target;

struct Measured {
    name: &'static str,
    connect: Summary,
    up: Vec<f64>,
    down: Vec<f64>,
}

pub async fn run(smoke: bool) -> Result<()> {
    let (connections, size, repeat) = if smoke { (5, 4u64 << 20, 1) } else { (100, 256u64 << 20, 3) };
    let pattern = target::pattern();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(target::serve(listener, pattern.clone()));

    let gw = tokio::task::block_in_place(|| Gateway::start(&[("RAMPART_LOG", "error")]))?;
    gw.allow_loopback()?;
    let port_text = port.to_string();
    let register = ["vm", "register", "-n", "bench", "-g", "apps", "--os-type", "linux"];
    gw.ok(&[&register[..], &["--private-ip-address", "127.0.0.1", "--port-ssh", &port_text]].concat())?;
    let shown: serde_json::Value =
        serde_json::from_str(&gw.ok(&["vm", "show", "-n", "bench", "-g", "apps"])?)?;
    let vm = shown["id"].as_str().context("vm id")?.to_string();
    let scope = gw.subscription_scope()?;
    let sp =
        gw.ok(&["ad", "sp", "create-for-rbac", "--name", "bench", "--role", "Reader", "--scope", &scope])?;
    let az = match Az::new(&gw)? {
        Ok(az) => az,
        Err(why) => {
            println!("az tunnel row skipped: the Azure CLI is not installed here ({why})");
            return Ok(());
        }
    };
    az.login_service_principal(&serde_json::from_str(&sp)?)?;

    let on = ["-n", "default", "-g", "default", "--target-resource-id", &vm, "--resource-port", &port_text];
    let rampart = tokio::task::block_in_place(|| gw.tunnel_with(&on))?;
    let az_port = rampart_e2e::free_port();
    let mut command = az.command();
    command.args(["network", "bastion", "tunnel"]).args(on).args(["--port", &az_port.to_string()]);
    let _az_tunnel = Process::spawn(command, "az network bastion tunnel")?;
    let az_addr = SocketAddr::from(([127, 0, 0, 1], az_port));
    tokio::task::block_in_place(|| wait_for_port(az_addr, Duration::from_secs(60)))?;
    // az makes its first token request as the port's probe arrives: let that settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let paths = [
        ("rampart network bastion tunnel", SocketAddr::from(([127, 0, 0, 1], rampart.port))),
        ("az network bastion tunnel", az_addr),
    ];
    let mut results = Vec::new();
    for (name, addr) in paths {
        let mut samples = Vec::with_capacity(connections);
        for _ in 0..connections {
            samples.push(target::first_byte(addr).await.with_context(|| format!("{name}: new connection"))?);
        }
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let t = target::upload_stated(addr, &pattern, size)
                .await
                .with_context(|| format!("{name}: upload"))?;
            up.push(size as f64 / t.as_secs_f64() / 1e6);
            let t = target::download(addr, size).await.with_context(|| format!("{name}: download"))?;
            down.push(size as f64 / t.as_secs_f64() / 1e6);
        }
        results.push(Measured { name, connect: Summary::of(&samples), up, down });
    }

    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "| path ({connections} new connections, {} MiB × {repeat} each way) | new connection p50 | p99 | upload | download |",
        size >> 20
    );
    println!("|---|---|---|---|---|");
    for m in &results {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.0} MB/s | {:.0} MB/s |",
            m.name,
            m.connect.p50.as_secs_f64() * 1e3,
            m.connect.p99.as_secs_f64() * 1e3,
            median(&m.up),
            median(&m.down)
        );
    }
    if let [r, a] = &results[..] {
        println!(
            "az / rampart: new connection p50 {:.1}×, upload {:.2}×, download {:.2}×",
            a.connect.p50.as_secs_f64() / r.connect.p50.as_secs_f64().max(1e-9),
            median(&a.up) / median(&r.up).max(1e-9),
            median(&a.down) / median(&r.down).max(1e-9)
        );
    }
    Ok(())
}
