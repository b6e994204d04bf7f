//! `rampart rdp` (= `network bastion rdp`): a tunnel, then the platform's RDP client on it.
//! Unlike Azure's client this works on Linux (xfreerdp) and macOS too; `--rdp-file` writes a
//! file any client opens, and keeps the tunnel open for it; `--output-rdp-file` writes one
//! that goes through the gateway's RD Gateway endpoint instead, with no tunnel at all.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rampart_proto::tunnel::TunnelRequest;

use super::tunnel::{bastion_id, open_local, registered_port};
use crate::cli::RdpArgs;
use crate::profile::Profile;

/// An .rdp file that connects through the local end of the tunnel.
fn rdp_file_contents(port: u16, username: Option<&str>) -> String {
    let mut lines = vec![
        format!("full address:s:127.0.0.1:{port}"),
        format!("alternate full address:s:127.0.0.1:{port}"),
        "use multimon:i:0".to_string(),
        "prompt for credentials:i:1".to_string(),
    ];
    if let Some(user) = username {
        lines.push(format!("username:s:{user}"));
    }
    lines.join("\r\n") + "\r\n"
}

/// `host:port` of the gateway's address as the profile holds it (`https://host:port/`).
fn gateway_host(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// Writes a file only its owner can read: it holds a token.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The RDP client for this platform: `$RAMPART_RDP_CLIENT` (a program and its arguments;
/// the .rdp file goes first, as xfreerdp wants it), else xfreerdp, mstsc or `open`.
fn client_command(port: u16, file: &Path, args: &RdpArgs) -> tokio::process::Command {
    if let Ok(configured) = std::env::var("RAMPART_RDP_CLIENT") {
        let mut words = configured.split_whitespace();
        let mut cmd = tokio::process::Command::new(words.next().unwrap_or("xfreerdp"));
        cmd.arg(file).args(words);
        return cmd;
    }
    if cfg!(target_os = "windows") {
        let mut cmd = tokio::process::Command::new("mstsc");
        if args.configure {
            cmd.arg("/edit");
        }
        cmd.arg(file);
        cmd
    } else if cfg!(target_os = "macos") {
        let mut cmd = tokio::process::Command::new("open");
        cmd.arg("-W").arg(file);
        cmd
    } else {
        let mut cmd = tokio::process::Command::new("xfreerdp");
        cmd.arg(format!("/v:127.0.0.1:{port}"));
        if let Some(user) = &args.username {
            cmd.arg(format!("/u:{user}"));
        }
        cmd
    }
}

pub async fn run(args: RdpArgs) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let request = TunnelRequest {
        bastion_id: bastion_id(&profile, &args.bastion, args.target.target_resource_id.as_deref())?,
        target_ip_address: args.target.target_ip_address.clone(),
        target_resource_id: args.target.target_resource_id.clone(),
        resource_port: match args.resource_port {
            Some(p) => p,
            None => registered_port(&client, args.target.target_resource_id.as_deref(), true)
                .await
                .unwrap_or(3389),
        },
    };
    if let Some(path) = &args.output_rdp_file {
        let grant = client.grant_tunnel(&request).await?;
        let gateway = gateway_host(client.server());
        let contents = rampart_proto::rdp_file::through_gateway(
            &gateway,
            &grant.target,
            &grant.tunnel_token,
            args.username.as_deref(),
        );
        write_private(path, &contents)?;
        let minutes = (grant.expires_at - chrono::Utc::now().timestamp()).max(0) / 60;
        println!(
            "Wrote {} (it connects to {} through the RD Gateway at {gateway}; its token works for {minutes} minutes)",
            path.display(),
            grant.target
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (_tunnel, port) = open_local(client, request).await?;
    let contents = rdp_file_contents(port, args.username.as_deref());

    if let Some(path) = &args.rdp_file {
        std::fs::write(path, &contents).with_context(|| format!("cannot write {}", path.display()))?;
        println!("Wrote {} (it connects to 127.0.0.1:{port} through the tunnel)", path.display());
        println!("Tunnel is open; Ctrl + C to close");
        super::stop_signal().await;
        return Ok(ExitCode::SUCCESS);
    }

    let dir = tempfile::Builder::new().prefix("rampart-rdp-").tempdir()?;
    let file = dir.path().join("connection.rdp");
    std::fs::write(&file, &contents)?;
    let mut cmd = client_command(port, &file, &args);
    cmd.args(&args.client_args);
    let status = cmd.status().await.context(
        "cannot start the RDP client (install xfreerdp, or set RAMPART_RDP_CLIENT, or use --rdp-file)",
    )?;
    Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(255)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rdp_file_points_at_the_tunnel() {
        let text = super::rdp_file_contents(40123, Some("azureuser"));
        assert!(text.contains("full address:s:127.0.0.1:40123\r\n"));
        assert!(text.contains("username:s:azureuser"));
    }

    #[test]
    fn the_gateway_is_named_by_host_and_port() {
        assert_eq!(super::gateway_host("https://gw.example:8443/"), "gw.example:8443");
        assert_eq!(super::gateway_host("https://gw.example"), "gw.example");
    }
}
