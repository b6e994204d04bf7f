//! The grammar of reaching a machine: `ssh` (and `ssh config`, `ssh-proxy`, `ssh-ca`), `rdp`,
//! `tunnel` and `extension`, with az's flags.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::ResourceRef;

/// The target of an ssh, rdp or proxy command.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Private IP address of the target.
    #[arg(long)]
    pub target_ip_address: Option<String>,
    /// Resource ID of the target VM or scale-set instance.
    #[arg(long)]
    pub target_resource_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthType {
    #[value(name = "ssh-key")]
    SshKey,
    #[value(name = "password")]
    Password,
    /// Identity sign-in: a short-lived certificate from the gateway's SSH CA.
    #[value(name = "AAD", alias = "aad", alias = "identity")]
    Aad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostKeyChecking {
    Yes,
    AcceptNew,
    Ask,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    #[command(flatten)]
    pub bastion: ResourceRef,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Port on the target [default: the VM's registered SSH port, else 22].
    #[arg(long)]
    pub resource_port: Option<u16>,
    /// How to authenticate to the target.
    #[arg(long, value_enum, ignore_case = true, default_value = "ssh-key")]
    pub auth_type: AuthType,
    /// The user's name.
    #[arg(long)]
    pub username: Option<String>,
    /// Private key file (with --auth-type ssh-key).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Host keys are pinned per target in Rampart's known_hosts [default: ask on a terminal,
    /// yes otherwise].
    #[arg(long, value_enum)]
    pub strict_host_key_checking: Option<HostKeyChecking>,
    /// Arguments after `--` go to ssh.
    #[arg(last = true)]
    pub ssh_args: Vec<String>,
}

/// `rampart ssh config`: write ssh_config Host entries for the machines you can reach, so
/// plain `ssh NAME`, scp, sftp, rsync and VS Code Remote-SSH go through the bastion.
#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// The ssh_config file to update (its Rampart block is replaced, the rest kept).
    #[arg(long)]
    pub file: PathBuf,
    /// Only machines in this resource group.
    #[arg(long, short = 'g')]
    pub resource_group: Option<String>,
    /// The bastion to go through [default: the only one you can see].
    #[arg(long)]
    pub bastion_name: Option<String>,
    /// The bastion's resource group.
    #[arg(long)]
    pub bastion_resource_group: Option<String>,
    /// `User` for the entries.
    #[arg(long)]
    pub username: Option<String>,
    /// Subscription name or ID [default: the current one].
    #[arg(long)]
    pub subscription: Option<String>,
}

#[derive(Debug, Args)]
pub struct SshProxyArgs {
    #[command(flatten)]
    pub bastion: ResourceRef,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The target's port.
    #[arg(long, default_value_t = 22)]
    pub resource_port: u16,
}

#[derive(Debug, Subcommand)]
pub enum SshCaCommand {
    /// Print the CA's public key (for a VM's TrustedUserCAKeys).
    Show,
}

#[derive(Debug, Args)]
pub struct RdpArgs {
    #[command(flatten)]
    pub bastion: ResourceRef,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Port on the target [default: the VM's registered RDP port, else 3389].
    #[arg(long)]
    pub resource_port: Option<u16>,
    /// Open the client's settings before connecting (mstsc /edit).
    #[arg(long)]
    pub configure: bool,
    /// Only write an .rdp file that connects through the tunnel, and keep the tunnel open.
    #[arg(long)]
    pub rdp_file: Option<PathBuf>,
    /// Only write an .rdp file that connects through the gateway's RD Gateway endpoint with
    /// a short-lived token (no tunnel, no CLI needed to open it), and exit.
    #[arg(long, conflicts_with = "rdp_file")]
    pub output_rdp_file: Option<PathBuf>,
    /// The user's name.
    #[arg(long)]
    pub username: Option<String>,
    /// Accepted for compatibility; the RDP server does its own sign-in.
    #[arg(long, value_enum, ignore_case = true)]
    pub auth_type: Option<AuthType>,
    /// Accepted for compatibility: Rampart always tunnels.
    #[arg(long)]
    pub disable_gateway: bool,
    /// Accepted for compatibility.
    #[arg(long)]
    pub enable_mfa: bool,
    /// Arguments after `--` go to the RDP client.
    #[arg(last = true)]
    pub client_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExtensionCommand {
    /// Accepted for az's scripts: the extension is built in.
    Add {
        /// The resource's name.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Accepted for az's scripts: the extension is built in.
    Update {
        /// The resource's name.
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct TunnelArgs {
    #[command(flatten)]
    pub bastion: ResourceRef,
    /// Private IP address of the target.
    #[arg(long, conflicts_with = "target_resource_id", required_unless_present = "target_resource_id")]
    pub target_ip_address: Option<String>,
    /// Resource ID of the target VM or scale-set instance.
    #[arg(long)]
    pub target_resource_id: Option<String>,
    /// Port on the target.
    #[arg(long)]
    pub resource_port: u16,
    /// Local port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long)]
    pub port: u16,
    /// Close the tunnel after this many seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Seconds between keep-alive pings; a gateway silent for three is taken for dead.
    #[arg(long, env = "RAMPART_KEEPALIVE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive: u64,
}
