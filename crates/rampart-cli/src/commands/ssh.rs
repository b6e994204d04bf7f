//! `rampart ssh` (= `network bastion ssh`), `rampart ssh-proxy`, `rampart ssh config` and
//! `rampart ssh-ca show`. The system's OpenSSH does the SSH; Rampart carries the bytes and,
//! unlike Azure's client, keeps host-key checking on: keys are pinned per target in
//! Rampart's own known_hosts, under an alias naming the target rather than the local port.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use rampart_client::TunnelClient;
use rampart_client::api::Method;
use rampart_client::tunnel::Stdio;
use rampart_proto::api::{Bastion, SshCertificate, SshCertificateRequest, VirtualMachine};
use rampart_proto::tunnel::TunnelRequest;

use super::tunnel::{bastion_id, open_local, registered_port};
use crate::cli::{AuthType, HostKeyChecking, SshArgs, SshConfigArgs, SshProxyArgs, TargetArgs};
use crate::profile::{Profile, config_dir};

/// Rampart's own known_hosts file.
pub fn known_hosts() -> Result<PathBuf> {
    Ok(config_dir()?.join("known_hosts"))
}

/// The name a target's host key is pinned under: its resource ID, or its address and port.
pub fn host_key_alias(target: &TargetArgs, port: u16) -> String {
    match (&target.target_resource_id, &target.target_ip_address) {
        (Some(id), _) => format!("rampart:{}", id.to_ascii_lowercase()),
        (None, Some(ip)) => format!("rampart:{ip}:{port}"),
        (None, None) => "rampart:unknown".to_string(),
    }
}

fn request(profile: &Profile, args: &SshArgs, port: u16) -> Result<TunnelRequest> {
    Ok(TunnelRequest {
        bastion_id: bastion_id(profile, &args.bastion, args.target.target_resource_id.as_deref())?,
        target_ip_address: args.target.target_ip_address.clone(),
        target_resource_id: args.target.target_resource_id.clone(),
        resource_port: port,
    })
}

/// Makes a key pair with ssh-keygen (the private key stays on this machine) and has the
/// gateway's CA sign a certificate for it. Returns the key path and the login name.
async fn identity_certificate(
    client: &rampart_client::ApiClient,
    bastion_id: String,
    args: &SshArgs,
    dir: &Path,
) -> Result<(PathBuf, String)> {
    let key = dir.join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "rampart-identity", "-f"])
        .arg(&key)
        .status()
        .context("cannot run ssh-keygen (OpenSSH's client tools are needed)")?;
    if !status.success() {
        bail!("ssh-keygen failed to make a key pair");
    }
    let public_key = std::fs::read_to_string(key.with_extension("pub"))?;
    let body = SshCertificateRequest {
        bastion_id,
        target_resource_id: args.target.target_resource_id.clone(),
        target_ip_address: args.target.target_ip_address.clone(),
        username: args.username.clone(),
        public_key,
    };
    let cert: SshCertificate = client
        .request(Method::POST, "/api/ssh/certificates", Some(&body))
        .await?
        .ok_or_else(|| anyhow!("the gateway sent no certificate"))?;
    std::fs::write(dir.join("id_ed25519-cert.pub"), format!("{}\n", cert.certificate))?;
    Ok((key, cert.principal))
}

pub async fn ssh(args: SshArgs) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let port = match args.resource_port {
        Some(p) => p,
        None => {
            registered_port(&client, args.target.target_resource_id.as_deref(), false).await.unwrap_or(22)
        }
    };
    if args.auth_type == AuthType::Aad
        && let Some(path) = recorded_shell(&profile, &client, &args, port).await?
    {
        return super::join::run(
            &client,
            &path,
            true,
            "this bastion records sessions: the gateway opens the shell",
        )
        .await;
    }
    // Private (0700) and removed on return: it holds the identity key pair.
    let temp = tempfile::Builder::new().prefix("rampart-ssh-").tempdir()?;
    // Identity sign-in is checked (and a refusal shown) before any tunnel opens.
    let (identity, login) = match args.auth_type {
        AuthType::Aad => {
            let (key, login) = identity_certificate(
                &client,
                bastion_id(&profile, &args.bastion, args.target.target_resource_id.as_deref())?,
                &args,
                temp.path(),
            )
            .await?;
            (Some(key), Some(login))
        }
        AuthType::SshKey => (args.ssh_key.clone(), args.username.clone()),
        AuthType::Password => (None, args.username.clone()),
    };
    if args.auth_type == AuthType::SshKey && args.ssh_key.as_deref().is_some_and(|k| !k.exists()) {
        bail!("--ssh-key {} does not exist", args.ssh_key.as_deref().unwrap_or(Path::new("")).display());
    }
    let (_tunnel, local_port) = open_local(client, request(&profile, &args, port)?).await?;

    let checking = args.strict_host_key_checking.unwrap_or(if std::io::stdin().is_terminal() {
        HostKeyChecking::Ask
    } else {
        HostKeyChecking::Yes
    });
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-p").arg(local_port.to_string());
    cmd.arg("-o").arg(format!("HostKeyAlias={}", host_key_alias(&args.target, port)));
    cmd.arg("-o").arg(format!("UserKnownHostsFile={}", known_hosts()?.display()));
    // Rampart's own file stays readable: a pin names the target it belongs to.
    cmd.args(["-o", "HashKnownHosts=no"]);
    cmd.arg("-o").arg(format!(
        "StrictHostKeyChecking={}",
        match checking {
            HostKeyChecking::Yes => "yes",
            HostKeyChecking::AcceptNew => "accept-new",
            HostKeyChecking::Ask => "ask",
        }
    ));
    match args.auth_type {
        AuthType::SshKey | AuthType::Aad => {
            if let Some(key) = &identity {
                cmd.arg("-i").arg(key).args(["-o", "IdentitiesOnly=yes"]);
            }
            if args.auth_type == AuthType::Aad {
                cmd.arg("-o")
                    .arg(format!("CertificateFile={}", temp.path().join("id_ed25519-cert.pub").display()));
            }
        }
        AuthType::Password => {
            cmd.args([
                "-o",
                "PreferredAuthentications=keyboard-interactive,password",
                "-o",
                "PubkeyAuthentication=no",
            ]);
        }
    }
    if let Some(user) = &login {
        cmd.arg("-l").arg(user);
    }
    cmd.arg("127.0.0.1");
    cmd.args(&args.ssh_args);
    let status = cmd.status().await.context("cannot run ssh (install OpenSSH's client)")?;
    drop(temp);
    Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(255)))
}

/// On a bastion that records sessions (and refuses raw tunnels), identity sign-in is done by
/// the gateway, which records the shell: the API path of that shell, or `None` elsewhere.
async fn recorded_shell(
    profile: &Profile,
    client: &rampart_client::ApiClient,
    args: &SshArgs,
    port: u16,
) -> Result<Option<String>> {
    let id: rampart_core::ResourceId =
        bastion_id(profile, &args.bastion, args.target.target_resource_id.as_deref())?.parse()?;
    let bastion = client.bastion(&id.subscription, &id.resource_group, &id.name).await?;
    if !bastion.enable_session_recording || bastion.allow_unrecorded_tunnels {
        return Ok(None);
    }
    if !args.ssh_args.is_empty() {
        bail!(
            "bastion '{}' records sessions: rampart ssh opens an interactive shell there, recorded by the gateway, \
             so a remote command or ssh options after -- cannot be passed",
            id.name
        );
    }
    use rampart_client::api::urlencode;
    let mut query = vec![format!("resourcePort={port}")];
    if let Some(vm) = &args.target.target_resource_id {
        query.push(format!("targetResourceId={}", urlencode(vm)));
    }
    if let Some(ip) = &args.target.target_ip_address {
        query.push(format!("targetIpAddress={}", urlencode(ip)));
    }
    if let Some(user) = &args.username {
        query.push(format!("username={}", urlencode(user)));
    }
    if let Some((cols, rows)) = super::join::terminal_size() {
        query.push(format!("cols={cols}&rows={rows}"));
    }
    Ok(Some(format!(
        "/api/subscriptions/{}/resourceGroups/{}/bastionHosts/{}/shell?{}",
        urlencode(&id.subscription),
        urlencode(&id.resource_group),
        urlencode(&id.name),
        query.join("&")
    )))
}

/// `rampart ssh-proxy`: one connection over standard input and output.
pub async fn proxy(args: SshProxyArgs) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let request = TunnelRequest {
        bastion_id: bastion_id(&profile, &args.bastion, args.target.target_resource_id.as_deref())?,
        target_ip_address: args.target.target_ip_address.clone(),
        target_resource_id: args.target.target_resource_id.clone(),
        resource_port: args.resource_port,
    };
    let tunnel = TunnelClient::open(client, request).await?;
    let report = tunnel.relay(Stdio).await?;
    if report.end.is_clean() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("rampart ssh-proxy: the connection ended: {:?}", report.end);
        Ok(ExitCode::FAILURE)
    }
}

pub async fn ca_show() -> Result<ExitCode> {
    let profile = Profile::require()?;
    let client = profile.client()?;
    let key = client.request_text("/api/ssh/ca").await?;
    print!("{key}");
    Ok(ExitCode::SUCCESS)
}

const BLOCK_START: &str = "# BEGIN rampart (written by `rampart ssh config`; edits inside are replaced)";
const BLOCK_END: &str = "# END rampart";

/// `rampart ssh config`: Host entries that reach each visible machine through the bastion.
pub async fn config(args: SshConfigArgs) -> Result<ExitCode> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    let sub = profile.subscription(args.subscription.as_deref())?;
    let bastion = match (&args.bastion_name, &args.bastion_resource_group) {
        (Some(n), Some(g)) => (n.clone(), g.clone()),
        _ => {
            let visible: Vec<Bastion> = client.bastions(&sub, None).await?;
            match visible.as_slice() {
                [only] => (only.name.clone(), only.resource_group.clone()),
                [] => bail!("you can see no bastion: ask for Reader on one"),
                _ => bail!(
                    "several bastions are visible: pick one with --bastion-name and --bastion-resource-group"
                ),
            }
        }
    };
    let query = args.resource_group.as_ref().map(|g| format!("?resourceGroup={g}")).unwrap_or_default();
    let machines: Vec<VirtualMachine> = client
        .request::<(), _>(Method::GET, &format!("/api/subscriptions/{sub}/virtualMachines{query}"), None)
        .await?
        .unwrap_or_default();
    let exe = std::env::current_exe().context("cannot find the rampart executable")?;
    let env_prefix = std::env::var("RAMPART_CONFIG_DIR")
        .map(|d| format!("env RAMPART_CONFIG_DIR='{d}' "))
        .unwrap_or_default();
    let mut block = vec![BLOCK_START.to_string()];
    for m in &machines {
        let alias = match &m.scale_set {
            Some(ss) => format!("{ss}-{}", m.name),
            None => m.name.clone(),
        };
        let target = TargetArgs { target_ip_address: None, target_resource_id: Some(m.id.clone()) };
        block.push(format!("Host {alias}"));
        block.push(format!("  HostKeyAlias {}", host_key_alias(&target, m.port_ssh)));
        block.push(format!("  UserKnownHostsFile {}", known_hosts()?.display()));
        block.push("  HashKnownHosts no".to_string());
        if let Some(user) = &args.username {
            block.push(format!("  User {user}"));
        }
        block.push(format!(
            "  ProxyCommand {env_prefix}{} ssh-proxy --name {} --resource-group {} --subscription {sub} --target-resource-id {} --resource-port {}",
            exe.display(),
            bastion.0,
            bastion.1,
            m.id,
            m.port_ssh
        ));
    }
    block.push(BLOCK_END.to_string());
    let old = std::fs::read_to_string(&args.file).unwrap_or_default();
    let new = match (old.find(BLOCK_START), old.find(BLOCK_END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{}{}", &old[..a], block.join("\n"), &old[b + BLOCK_END.len()..])
        }
        _ if old.is_empty() => format!("{}\n", block.join("\n")),
        _ => format!("{}\n{}\n", old.trim_end(), block.join("\n")),
    };
    if let Some(dir) = args.file.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&args.file, new).with_context(|| format!("cannot write {}", args.file.display()))?;
    eprintln!(
        "wrote {} host entries to {} (through bastion {})",
        machines.len(),
        args.file.display(),
        bastion.0
    );
    Ok(ExitCode::SUCCESS)
}
