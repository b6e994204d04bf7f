//! Command-line grammar. Flags follow `az network bastion …` and `az account …`, so the
//! reference documents' commands run after replacing `az` with `rampart`.
//!
//! Longer than 600 lines because the grammar is kept together as `az --help` shows it; the
//! identities-and-access commands are in `cli/access.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod access;
pub use access::*;

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Rampart: a self-hosted bastion gateway to private machines",
    // Like az (argparse), accept unambiguous prefixes of long flags (the reference documents
    // spell one `--target-ip-addres`).
    infer_long_args = true
)]
pub struct Cli {
    /// A JMESPath query applied to the output, as az's (`--query "[].name"`).
    #[arg(long, global = true, value_name = "JMESPATH")]
    pub query: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(Box<ServeArgs>),
    /// Sign in to a gateway.
    Login(LoginArgs),
    /// Print a shell completion script: `source <(rampart completion bash)`.
    Completion {
        /// The shell to write completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for rampart and each of its commands into a directory.
    Man {
        /// Where the pages go (`rampart.1`, `rampart-network-bastion-list.1`, …).
        #[arg(long, default_value = ".")]
        output_dir: std::path::PathBuf,
    },
    /// Sign out: revoke the refresh token and forget the session.
    Logout,
    /// Subscriptions of the signed-in user.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Network resources (`rampart network bastion …`).
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Open a tunnel to a target (same as `rampart network bastion tunnel`).
    Tunnel(TunnelArgs),
    /// SSH to a target through the bastion (same as `rampart network bastion ssh`);
    /// `rampart ssh config` writes ssh_config entries.
    Ssh(SshArgs),
    /// `rampart ssh config` (the words `ssh config` are routed here before parsing).
    #[command(name = "ssh-config", hide = true)]
    SshConfig(SshConfigArgs),
    /// Relay standard input and output to a target, for ssh's ProxyCommand.
    SshProxy(SshProxyArgs),
    /// The gateway's SSH certificate authority.
    #[command(subcommand)]
    SshCa(SshCaCommand),
    /// RDP to a target through the bastion (same as `rampart network bastion rdp`).
    Rdp(RdpArgs),
    /// Compatibility with `az extension add|update`: Rampart has the commands built in.
    #[command(subcommand)]
    Extension(ExtensionCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The gateway nodes that share this gateway's store.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Registered virtual machines (Rampart does not create them; it is told where they are).
    #[command(subcommand)]
    Vm(VmCommand),
    /// Registered scale sets and their instances.
    #[command(subcommand)]
    Vmss(VmssCommand),
    /// Users (`rampart ad user …`).
    #[command(subcommand)]
    Ad(AdCommand),
    /// OpenID Connect identity providers for single sign-on.
    #[command(subcommand)]
    IdentityProvider(IdentityProviderCommand),
    /// Role definitions and role assignments.
    #[command(subcommand)]
    Role(RoleCommand),
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The resource group's name.
    #[arg(long, short = 'g')]
    pub resource_group: Option<String>,
    /// Subscription name or ID [default: the current one].
    #[arg(long)]
    pub subscription: Option<String>,
    /// Output format (as az's `--output`).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Register a machine by its private IP address.
    Register {
        #[command(flatten)]
        vm: ResourceRef,
        /// The machine's operating system.
        #[arg(long, value_name = "linux|windows")]
        os_type: String,
        /// The machine's private IP address.
        #[arg(long)]
        private_ip_address: String,
        /// Name of its network interface [default: NAME-nic].
        #[arg(long)]
        nic_name: Option<String>,
        /// The machine's SSH port.
        #[arg(long, default_value_t = 22)]
        port_ssh: u16,
        /// The machine's RDP port.
        #[arg(long, default_value_t = 3389)]
        port_rdp: u16,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List registered VMs you may read.
    List {
        #[command(flatten)]
        group: GroupArgs,
    },
    /// Show a registered VM.
    Show {
        #[command(flatten)]
        vm: ResourceRef,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Unregister a VM (and its network interface).
    Unregister {
        #[command(flatten)]
        vm: ResourceRef,
    },
    /// Register many machines from a JSON array or a CSV file with the header
    /// name,resourceGroup,osType,privateIpAddress[,nicName,portSsh,portRdp].
    Import {
        /// The JSON or CSV file.
        file: std::path::PathBuf,
        /// Subscription name or ID [default: the current one].
        #[arg(long)]
        subscription: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VmssCommand {
    /// Register a scale set; each --instance is one instance's private IP (numbered from 0).
    Register {
        #[command(flatten)]
        vmss: ResourceRef,
        /// The machine's operating system.
        #[arg(long, value_name = "linux|windows")]
        os_type: String,
        /// An instance's private IP (repeat the flag for each, in instance order).
        #[arg(long = "instance", required = true, value_name = "IP")]
        instances: Vec<String>,
        /// The machine's SSH port.
        #[arg(long)]
        port_ssh: Option<u16>,
        /// The machine's RDP port.
        #[arg(long)]
        port_rdp: Option<u16>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a scale set's instances.
    Show {
        #[command(flatten)]
        vmss: ResourceRef,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Unregister a scale set and all its instances.
    Delete {
        #[command(flatten)]
        vmss: ResourceRef,
    },
}

#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// List registered network interfaces.
    List {
        #[command(flatten)]
        group: GroupArgs,
    },
    /// Show a network interface.
    Show {
        #[command(flatten)]
        nic: ResourceRef,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTPS listen address [default: 0.0.0.0:8443].
    #[arg(long, env = "RAMPART_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the store, TLS certificate and keys [default: ./rampart-data].
    #[arg(long, env = "RAMPART_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store: `sqlite` (a file in the data directory) or a PostgreSQL URL,
    /// postgres://USER[:PASSWORD]@HOST:PORT/DB, shared by several gateways [default: sqlite].
    #[arg(long, env = "RAMPART_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// This gateway's name among the nodes that share its store [default: the host name].
    #[arg(long, env = "RAMPART_NODE_NAME")]
    pub node_name: Option<String>,
    /// Which local accounts must sign in with a second factor: off, all, or
    /// roles:NAME[,NAME…] (the holders of these roles) [default: off].
    #[arg(long, env = "RAMPART_REQUIRE_MFA")]
    pub require_mfa: Option<String>,
    /// TOML file with any of these settings (flags and RAMPART_* variables win).
    #[arg(long, env = "RAMPART_CONFIG")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain (with --tls-key) instead of the generated self-signed one.
    #[arg(long, env = "RAMPART_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "RAMPART_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Password of the bootstrap `admin` on first start (generated and printed when unset).
    #[arg(long, env = "RAMPART_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Lifetime of access tokens, seconds [default: 900].
    #[arg(long, env = "RAMPART_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<u64>,
    /// Lifetime of refresh tokens, seconds [default: 2592000].
    #[arg(long, env = "RAMPART_REFRESH_TOKEN_TTL")]
    pub refresh_token_ttl: Option<u64>,
    /// How long a tunnel grant opens new connections, seconds [default: 600].
    #[arg(long, env = "RAMPART_TUNNEL_TOKEN_TTL")]
    pub tunnel_token_ttl: Option<u64>,
    /// Failed sign-ins allowed per user name and client address in the window [default: 5].
    #[arg(long, env = "RAMPART_LOGIN_MAX_FAILURES")]
    pub login_max_failures: Option<u32>,
    /// Sign-in failure window, seconds [default: 300].
    #[arg(long, env = "RAMPART_LOGIN_WINDOW")]
    pub login_window: Option<u64>,
    /// Timeout of the gateway's connection to a target, seconds [default: 10].
    #[arg(long, env = "RAMPART_TARGET_CONNECT_TIMEOUT")]
    pub target_connect_timeout: Option<u64>,
    /// Interval of keep-alive pings on tunnel connections, seconds [default: 30].
    #[arg(long, env = "RAMPART_KEEPALIVE")]
    pub keepalive: Option<u64>,
    /// Lifetime of SSH certificates for identity sign-in, seconds [default: 300].
    #[arg(long, env = "RAMPART_SSH_CERTIFICATE_TTL")]
    pub ssh_certificate_ttl: Option<u64>,
    /// On SIGTERM, seconds live sessions may go on before they are ended [default: 30].
    #[arg(long, env = "RAMPART_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<u64>,
    /// Where /metrics is served: `https` (the gateway's port), `off`, or ADDR:PORT of a
    /// plain-HTTP listener of its own [default: https].
    #[arg(long, env = "RAMPART_METRICS")]
    pub metrics: Option<String>,
    /// Take the PROXY protocol (v1 or v2) from the balancers in --trusted-proxies, so the
    /// audit keeps each user's own address; a header from anyone else is refused.
    #[arg(long, env = "RAMPART_PROXY_PROTOCOL", num_args = 0..=1, default_missing_value = "true")]
    pub proxy_protocol: Option<bool>,
    /// The balancers whose PROXY headers are believed: comma-separated addresses or networks.
    #[arg(long, env = "RAMPART_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Log format on stderr: `text` or `json` [default: text].
    #[arg(long, env = "RAMPART_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `debug` or `rampart_gateway=debug,info` [default: info].
    #[arg(long, env = "RAMPART_LOG")]
    pub log: Option<String>,
    /// Print the settings in effect (flags > RAMPART_* > file > defaults) as a configuration
    /// file, secrets left out, and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The gateway, e.g. https://bastion.example.com or https://127.0.0.1:8443.
    #[arg(long, env = "RAMPART_SERVER")]
    pub server: Option<String>,
    /// The user name, or a service principal's application ID.
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// The password or a service principal's secret (prefer --password-stdin: a command
    /// line is visible to other users of the machine). It may begin with '-'.
    #[arg(long, short = 'p', conflicts_with = "password_stdin", allow_hyphen_values = true)]
    pub password: Option<String>,
    /// Read the password from standard input (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
    /// Sign in as a service principal (-u APPID, -p SECRET or --password-stdin, --tenant).
    #[arg(long, requires = "tenant")]
    pub service_principal: bool,
    /// The tenant a service principal was created in (printed by `ad sp create-for-rbac`).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Sign in with this identity provider (`rampart identity-provider list`): opens the
    /// system browser, or prints a device code with --use-device-code.
    #[arg(long, conflicts_with_all = ["username", "password", "password_stdin", "service_principal"])]
    pub identity_provider: Option<String>,
    /// Sign in with a code entered in a browser anywhere (no browser needed here).
    #[arg(long, requires = "identity_provider")]
    pub use_device_code: bool,
    /// The code from your authenticator app (or a recovery code), when your account has
    /// multi-factor authentication; asked for at a terminal otherwise.
    #[arg(long)]
    pub mfa_code: Option<String>,
    /// Trust the gateway's certificate by this SHA-256 fingerprint (printed by `rampart serve`).
    #[arg(long, conflicts_with = "ca_file")]
    pub fingerprint: Option<String>,
    /// Trust certificates issued by the CAs in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// az's output formats.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Indented JSON (the default).
    #[default]
    Json,
    /// JSON, as az's colored form (printed the same here).
    Jsonc,
    /// Columns for people.
    Table,
    /// Tab-separated values, a line per item: for scripts (`--query` picks the fields).
    Tsv,
    /// YAML.
    Yaml,
    /// Nothing (the exit status says how it went).
    None,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List the subscriptions you can use.
    List {
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show the current subscription.
    Show {
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Make a subscription the current one.
    Set {
        /// Name or ID.
        #[arg(long, short = 's')]
        subscription: String,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit records, newest first.
    List {
        /// Only records at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// The user's name.
        #[arg(long)]
        user: Option<String>,
        /// allowed, refused, failed or closed.
        #[arg(long)]
        result: Option<String>,
        /// A target IP address or resource ID.
        #[arg(long)]
        target: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Check the audit log's hash chain; names the first record that was altered.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every node: address, state (active, draining, stopped, lost), last heartbeat, sessions.
    List {
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Drain a node: it refuses new work, reports not ready to balancers, and stops once its
    /// last session ends (or at its drain deadline).
    Drain {
        /// The node's name (`rampart node list`).
        name: String,
    },
}
