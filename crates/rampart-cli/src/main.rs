//! `rampart`: the gateway (`rampart serve`) and its command-line client in one binary.
//! This file only parses, dispatches and maps errors to exit codes; each command lives in
//! `commands/`.

mod cli;
mod commands;
mod output;
mod profile;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The gateway serves many users on every core. Client commands, the tunnel included, run
    // on one thread: no cross-thread wake-ups per relayed message, which measured cheaper
    // (BENCHMARKS.md).
    let mut builder = match cli.command {
        cli::Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
