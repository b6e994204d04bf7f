//! `rampart`: the gateway (`rampart serve`) and its command-line client in one binary.
//! This file only parses, dispatches and maps errors to exit codes; each command lives in
//! `commands/`.

mod cli;
mod commands;
mod copy_tuning;
mod output;
mod profile;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: the data path frees and takes 256 KiB buffers at a
/// high rate, and glibc hands such memory back to the kernel and faults it in again (page
/// faults were a fifth of the tunnel client's CPU while downloading; BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    copy_tuning::tune();
    // `rampart ssh` takes az's flags and `rampart ssh config` is a command of its own; clap
    // cannot give one command both required flags and a subcommand, so route the two words.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "ssh") && argv.get(2).is_some_and(|a| a == "config") {
        argv.splice(1..3, [std::ffi::OsString::from("ssh-config")]);
    }
    let cli = cli::Cli::parse_from(argv);
    output::set_query(cli.query.clone());
    // A tunnel's thread spins briefly before it sleeps while answers come back quickly
    // (rampart_client::spin); that needs the one thread that owns the runtime's I/O.
    let tunnel = matches!(
        cli.command,
        cli::Command::Tunnel(_)
            | cli::Command::Network(cli::NetworkCommand::Bastion(cli::BastionCommand::Tunnel(_)))
    );
    let mut builder = if tunnel {
        rampart_client::spin::enable();
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.on_thread_park(rampart_client::spin::before_park)
            .on_thread_unpark(rampart_client::spin::after_unpark);
        b
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    };
    // A read of standard input still waiting (`session join`, a tunnel's `ssh-proxy`) must not
    // keep the process alive after its command is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// The error and its causes, skipping a cause whose text the message already shows (many
/// library errors repeat their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's `--help` says what it does (az's help does).
    #[test]
    fn every_subcommand_says_what_it_does() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&crate::cli::Cli::command(), "rampart", &mut missing);
        assert!(missing.is_empty(), "subcommands without a description: {missing:#?}");
    }

    #[test]
    fn every_flag_says_what_it_is() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_long().unwrap_or(arg.get_id().as_str())));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&crate::cli::Cli::command(), "rampart", &mut missing);
        assert!(missing.is_empty(), "{} flags without help: {missing:#?}", missing.len());
    }
}
