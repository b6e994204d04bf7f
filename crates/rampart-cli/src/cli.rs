//! Command-line grammar. Flags follow `az network bastion …` and `az account …`, so the
//! reference documents' commands run after replacing `az` with `rampart`.
//!
//! The top level, serving, sign-in, account, audit and nodes are here; each command group has
//! a file of its own: `access` (identities and roles), `bastion` (`network bastion …`),
//! `connect` (ssh, rdp, tunnel), `inventory` (vm, vmss, nic).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod access;
mod bastion;
mod connect;
mod inventory;
pub use access::*;
pub use bastion::*;
pub use connect::*;
pub use inventory::*;

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
    /// Print the commands that point the real Azure CLI (`az`) at this gateway.
    AzSetup(AzSetupArgs),
}

#[derive(Debug, Args)]
pub struct AzSetupArgs {
    /// Point az's own `AzureCloud` at the gateway instead of registering a cloud named
    /// `Rampart`: `az network bastion ssh --auth-type AAD` needs it (az's ssh extension knows
    /// only Azure's clouds).
    #[arg(long)]
    pub azure_cloud: bool,
    /// Where to write the gateway's self-signed certificate for az to trust [default:
    /// az-gateway.pem in rampart's configuration directory].
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
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
    /// Get the certificate from an ACME CA (Let's Encrypt by default) for this DNS name,
    /// proven by TLS-ALPN-01 on the listening port, renewed when a third of it is left.
    #[arg(long, env = "RAMPART_ACME_DOMAIN", conflicts_with = "tls_cert")]
    pub acme_domain: Option<String>,
    /// Contact address given to the ACME CA (expiry notices).
    #[arg(long, env = "RAMPART_ACME_EMAIL", requires = "acme_domain")]
    pub acme_email: Option<String>,
    /// The ACME directory URL [default: Let's Encrypt's production directory].
    #[arg(long, env = "RAMPART_ACME_DIRECTORY", requires = "acme_domain")]
    pub acme_directory: Option<String>,
    /// PEM file of the CA that signs the ACME directory's HTTPS certificate (a private or test CA).
    #[arg(long, env = "RAMPART_ACME_CA_FILE", requires = "acme_domain")]
    pub acme_ca_file: Option<PathBuf>,
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
