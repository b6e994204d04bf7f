//! `cargo xtask check-arch`: the invariants of ARCHITECTURE.md that a tool can check, read
//! from `cargo metadata` and the source tree. The README's test command runs it.

mod arch;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> Result<ExitCode> {
    match std::env::args().nth(1).as_deref() {
        Some("check-arch") => check_arch(),
        _ => {
            eprintln!("usage: cargo xtask check-arch");
            Ok(ExitCode::from(2))
        }
    }
}

/// The workspace's root: where this crate's parent is.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

fn metadata() -> Result<serde_json::Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")
}

fn check_arch() -> Result<ExitCode> {
    let metadata = metadata()?;
    let root = root();
    let mut violations = arch::check_dependencies(&metadata);
    violations.extend(arch::check_sources(&root)?);
    if violations.is_empty() {
        println!("architecture check: every crate's dependencies and every file's size keep the rules");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("architecture check failed (rules in ARCHITECTURE.md and xtask/src/arch.rs):");
    for v in &violations {
        eprintln!("  - {v}");
    }
    Ok(ExitCode::FAILURE)
}
