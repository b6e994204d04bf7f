//! The grammar of `network bastion …`: the bastion's settings, its live sessions (and joining
//! them), its recordings and pinned host keys.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{NicCommand, OutputFormat, RdpArgs, SshArgs, TunnelArgs};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Bastion resources.
    #[command(subcommand)]
    Bastion(BastionCommand),
    /// Network interfaces of registered machines.
    #[command(subcommand)]
    Nic(NicCommand),
}

#[derive(Debug, Args)]
pub struct ResourceRef {
    /// The resource's name.
    #[arg(long, short = 'n')]
    pub name: String,
    /// The resource group's name.
    #[arg(long, short = 'g')]
    pub resource_group: String,
    /// Subscription name or ID [default: the current one].
    #[arg(long)]
    pub subscription: Option<String>,
}

#[derive(Debug, Args)]
pub struct BastionSettingsArgs {
    /// Tier: Developer, Basic, Standard or Premium.
    #[arg(long)]
    pub sku: Option<String>,
    /// Native client support.
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub enable_tunneling: Option<bool>,
    /// IP-based connection.
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub enable_ip_connect: Option<bool>,
    /// Networks the bastion can reach, comma-separated CIDRs ("" for none).
    #[arg(long, value_name = "CIDR[,CIDR…]")]
    pub reachable_networks: Option<String>,
    /// End sessions idle for this many seconds (0: never).
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// End sessions this many seconds after they start (0: never).
    #[arg(long, value_name = "SECONDS")]
    pub max_session_duration: Option<u64>,
    /// Turn copy and paste off for browser sessions (Standard and Premium).
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub disable_copy_paste: Option<bool>,
    /// Allow shareable links: links to one VM for people without an account (Standard and
    /// Premium).
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub enable_shareable_link: Option<bool>,
    /// File transfer in browser terminals, by direction (Standard and Premium).
    #[arg(long, value_name = "upload,download|upload|download|none")]
    pub file_transfer: Option<String>,
    /// The largest file one transfer may move, in MiB (0: no limit).
    #[arg(long, value_name = "MIB")]
    pub file_transfer_max_mb: Option<u64>,
    /// Record the browser sessions (Premium); raw tunnels are then refused unless
    /// --allow-unrecorded-tunnels true.
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub enable_session_recording: Option<bool>,
    /// With recording on, let raw tunnels through unrecorded (the audit says so).
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub allow_unrecorded_tunnels: Option<bool>,
    /// Send recordings to this Azure Blob container (its SAS URL, with read, add, create,
    /// write, list and delete permissions); "" keeps them in the gateway's data directory.
    #[arg(long, value_name = "CONTAINER_SAS_URL", allow_hyphen_values = true)]
    pub session_recording_storage_url: Option<String>,
    /// Delete recordings this many days after they end; 0 keeps them.
    #[arg(long, value_name = "DAYS")]
    pub recording_retention_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum BastionCommand {
    /// Create a bastion in a resource group.
    Create {
        #[command(flatten)]
        bastion: ResourceRef,
        #[command(flatten)]
        settings: BastionSettingsArgs,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a bastion and its settings.
    Show {
        #[command(flatten)]
        bastion: ResourceRef,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List the bastions you may read.
    List {
        /// The resource group's name.
        #[arg(long, short = 'g')]
        resource_group: Option<String>,
        /// Subscription name or ID [default: the current one].
        #[arg(long)]
        subscription: Option<String>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Change a bastion's tier or settings.
    Update {
        #[command(flatten)]
        bastion: ResourceRef,
        #[command(flatten)]
        settings: BastionSettingsArgs,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a bastion.
    Delete {
        #[command(flatten)]
        bastion: ResourceRef,
    },
    /// Open a tunnel to a target.
    Tunnel(TunnelArgs),
    /// SSH to a target through the bastion.
    Ssh(SshArgs),
    /// RDP to a target through the bastion.
    Rdp(RdpArgs),
    /// Live sessions on the bastion.
    #[command(subcommand)]
    Session(SessionCommand),
    /// SSH host keys and RDP certificates pinned for browser sessions to targets it reaches.
    #[command(subcommand)]
    HostKey(HostKeyCommand),
    /// Recorded sessions (Premium, with --enable-session-recording true).
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Links to one VM for people without an account (Standard and Premium, with
    /// --enable-shareable-link true).
    #[command(subcommand)]
    ShareableLink(ShareableLinkCommand),
}

#[derive(Debug, Subcommand)]
pub enum ShareableLinkCommand {
    /// Make a link per VM; each link is shown once, here (the gateway keeps only its hash).
    Create {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The VMs' resource IDs.
        #[arg(long, num_args = 1.., required = true)]
        vms: Vec<String>,
        /// How long the links work (ISO 8601: PT4H, P7D) [default: P1D; at most P365D].
        #[arg(long)]
        expires_in: Option<String>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// The bastion's links (only these VMs' with --vms).
    List {
        #[command(flatten)]
        bastion: ResourceRef,
        /// Only the links of these VMs.
        #[arg(long, num_args = 1..)]
        vms: Vec<String>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete links: by id, by VM, or by the link (or its token) as handed out. Sessions
    /// opened through them end.
    Delete {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The links' ids.
        #[arg(long, num_args = 1.., required_unless_present_any = ["vms", "tokens"])]
        ids: Vec<String>,
        /// Every link of these VMs.
        #[arg(long, num_args = 1..)]
        vms: Vec<String>,
        /// The links (or their tokens) as they were handed out.
        #[arg(long, num_args = 1..)]
        tokens: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// The bastion's recordings, newest first.
    List {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The user's name.
        #[arg(long)]
        user: Option<String>,
        /// The target machine.
        #[arg(long)]
        target: Option<String>,
        /// Only recordings whose output contains this text.
        #[arg(long)]
        search: Option<String>,
        /// Only recordings started since this time (2026-12-01T00:00:00Z) or within this long
        /// (P7D, PT4H).
        #[arg(long)]
        since: Option<String>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// One recording's details: user, target, start, end, size, SHA-256, whether complete.
    Show {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The recording's ID (its session's).
        #[arg(long)]
        ids: String,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Write a recording to a file (SSH: an asciicast v2 `.cast` that asciinema plays).
    Export {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The IDs to act on.
        #[arg(long)]
        ids: String,
        /// The file to write.
        #[arg(long)]
        output_file: PathBuf,
    },
    /// Check recordings' size and SHA-256 against those recorded when they ended.
    Verify {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The IDs to act on.
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostKeyCommand {
    /// The pinned keys of targets the bastion reaches.
    List {
        #[command(flatten)]
        bastion: ResourceRef,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Forget a target's pinned key (its key really changed); the next session pins the new one.
    Forget {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The target as it was connected to: a VM's resource ID, or IP:PORT.
        #[arg(long)]
        target: String,
        /// Only this kind of key: ssh or rdp (default: both).
        #[arg(long, value_name = "ssh|rdp")]
        kind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Who is connected to what, right now.
    List {
        #[command(flatten)]
        bastion: ResourceRef,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Disconnect sessions (within a second; audited with who did it).
    Delete {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The IDs to act on.
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
    },
    /// Watch a running browser terminal, or type into it (the user is told; audited).
    /// Ctrl-] leaves.
    Join {
        #[command(flatten)]
        bastion: ResourceRef,
        /// The session's ID (`session list`).
        #[arg(long)]
        ids: String,
        /// How to do it.
        #[arg(long, value_enum, default_value_t = JoinMode::View)]
        mode: JoinMode,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JoinMode {
    /// See what the user sees; typing is not sent.
    View,
    /// See and type, as the user does.
    Interact,
}
