//! The grammar of the inventory: `vm`, `vmss` and `network nic`, as az spells them.

use clap::{Args, Subcommand};

use super::{OutputFormat, ResourceRef};

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
    /// Change a registered VM in place: its OS, address or ports.
    Update {
        #[command(flatten)]
        vm: ResourceRef,
        /// The machine's operating system.
        #[arg(long, value_name = "linux|windows")]
        os_type: Option<String>,
        /// The machine's private IP address (sessions to the old one end).
        #[arg(long)]
        private_ip_address: Option<String>,
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
