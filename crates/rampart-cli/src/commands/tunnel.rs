//! `rampart tunnel` (= `rampart network bastion tunnel`): a local listener whose every
//! connection is relayed to the target through the gateway.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use std::sync::Arc;

use rampart_client::api::Method;
use rampart_client::{ApiClient, TunnelClient};
use rampart_proto::api::VirtualMachine;
use rampart_proto::tunnel::TunnelRequest;
use tokio::net::TcpListener;

use crate::cli::{ResourceRef, TunnelArgs};
use crate::profile::Profile;

/// The bastion's resource ID from `--name`, `--resource-group` and the subscription: the one
/// given, the current one, or (for a user with no role yet) the target's, when it is named by
/// resource ID, so the gateway can say which role is missing.
pub fn bastion_id(
    profile: &Profile,
    bastion: &ResourceRef,
    target_resource_id: Option<&str>,
) -> Result<String> {
    let from_target = target_resource_id
        .and_then(|id| id.parse::<rampart_core::ResourceId>().ok())
        .map(|id| id.subscription);
    let given =
        bastion.subscription.clone().or(if profile.subscription.is_none() { from_target } else { None });
    let sub = profile.subscription(given.as_deref())?;
    Ok(format!(
        "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.Network/bastionHosts/{}",
        bastion.resource_group, bastion.name
    ))
}

/// The port a registered machine uses for SSH or RDP, when the target is named by resource
/// ID and readable; `None` otherwise (the caller falls back to 22 or 3389).
pub async fn registered_port(client: &ApiClient, resource_id: Option<&str>, rdp: bool) -> Option<u16> {
    let id: rampart_core::ResourceId = resource_id?.parse().ok()?;
    let group = format!("/api/subscriptions/{}/resourceGroups/{}", id.subscription, id.resource_group);
    let machine: VirtualMachine = match id.kind() {
        rampart_core::ResourceKind::VirtualMachine => client
            .request::<(), VirtualMachine>(Method::GET, &format!("{group}/virtualMachines/{}", id.name), None)
            .await
            .ok()??,
        rampart_core::ResourceKind::ScaleSetInstance => {
            let instance = id.child.as_ref().map(|c| c.1.clone())?;
            let all: Vec<VirtualMachine> = client
                .request::<(), Vec<VirtualMachine>>(
                    Method::GET,
                    &format!("{group}/virtualMachineScaleSets/{}", id.name),
                    None,
                )
                .await
                .ok()??;
            all.into_iter().find(|m| m.name == instance)?
        }
        _ => return None,
    };
    Some(if rdp { machine.port_rdp } else { machine.port_ssh })
}

/// Opens a tunnel on an ephemeral loopback port, serving connections in the background.
/// A refusal is returned before anything listens.
pub async fn open_local(client: ApiClient, request: TunnelRequest) -> Result<(Arc<TunnelClient>, u16)> {
    let tunnel = TunnelClient::open(client, request).await?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(tunnel.clone().serve(listener, |e| eprintln!("connection through the tunnel failed: {e}")));
    Ok((tunnel, port))
}

pub async fn run(args: TunnelArgs) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let request = TunnelRequest {
        bastion_id: bastion_id(&profile, &args.bastion, args.target_resource_id.as_deref())?,
        target_ip_address: args.target_ip_address.clone(),
        target_resource_id: args.target_resource_id.clone(),
        resource_port: args.resource_port,
    };
    // Ask for the grant before listening: a refusal ends the command with its reason.
    let tunnel =
        TunnelClient::open_with_keepalive(client, request, std::time::Duration::from_secs(args.keepalive))
            .await?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let target = tunnel.grant().await.target;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Opening tunnel on port: {port}")?;
    writeln!(out, "Tunnel is ready, connect on port {port} (to {target})")?;
    match args.resource_port {
        22 => writeln!(out, "  e.g. ssh -p {port} USER@127.0.0.1")?,
        3389 => writeln!(out, "  e.g. xfreerdp /v:127.0.0.1:{port}")?,
        _ => {}
    }
    writeln!(out, "Ctrl + C to close")?;
    out.flush()?;
    drop(out);

    let serve = tunnel.serve(listener, |e| {
        eprintln!("connection through the tunnel failed: {e}");
    });
    let limit = async {
        match args.timeout {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = serve => r.context("the local listener failed")?,
        () = super::stop_signal() => eprintln!("closing the tunnel"),
        () = limit => eprintln!("closing the tunnel: --timeout reached"),
    }
    Ok(ExitCode::SUCCESS)
}
