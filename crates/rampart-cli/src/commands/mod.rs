//! One module per command group; [`run`] dispatches.

mod access;
mod account;
mod audit;
mod az_setup;
mod bastion;
mod directory;
mod inventory;
mod join;
mod node;
mod rdp;
mod serve;
mod ssh;
mod tunnel;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, NetworkCommand};

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut crate::cli::Cli::command(),
                "rampart",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { output_dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&output_dir)?;
            let mut command = crate::cli::Cli::command();
            command.build();
            let written = write_man_pages(&command, &output_dir)?;
            eprintln!("wrote {written} man pages in {}", output_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Login(args) => account::login(args).await,
        Command::Logout => account::logout().await,
        Command::Account(cmd) => account::run(cmd).await,
        Command::Network(NetworkCommand::Bastion(cmd)) => bastion::run(cmd).await,
        Command::Tunnel(args) => tunnel::run(args).await,
        Command::Ssh(args) => ssh::ssh(args).await,
        Command::SshConfig(args) => ssh::config(args).await,
        Command::SshProxy(args) => ssh::proxy(args).await,
        Command::SshCa(crate::cli::SshCaCommand::Show) => ssh::ca_show().await,
        Command::Rdp(args) => rdp::run(args).await,
        Command::Extension(
            crate::cli::ExtensionCommand::Add { name } | crate::cli::ExtensionCommand::Update { name },
        ) => {
            eprintln!("'{name}' is built into rampart: nothing to install");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Node(cmd) => node::run(cmd).await,
        Command::Network(NetworkCommand::Nic(cmd)) => inventory::nic(cmd).await,
        Command::Vm(cmd) => inventory::vm(cmd).await,
        Command::Vmss(cmd) => inventory::vmss(cmd).await,
        Command::Ad(cmd) => access::ad(cmd).await,
        Command::IdentityProvider(cmd) => directory::identity_provider(cmd).await,
        Command::Role(cmd) => access::role(cmd).await,
        Command::AzSetup(args) => az_setup::run(args).await,
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Writes a page for `command` and each of its subcommands, named as clap names them once
/// built (`rampart-network-bastion-list.1`); returns how many.
fn write_man_pages(command: &clap::Command, dir: &std::path::Path) -> Result<usize> {
    let name = command.get_display_name().unwrap_or_else(|| command.get_name());
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_man_pages(sub, dir)?;
    }
    Ok(written)
}
