//! az-grade output (issue 26, part 2): `--query` (JMESPath) on every printed result, `-o
//! tsv|jsonc|table|none`, and shell completions that load in bash.

use std::process::Command;

use anyhow::{Result, ensure};
use rampart_e2e::{Gateway, rampart_bin};

#[test]
fn query_and_output_formats_work_as_in_az() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.ok(&[
        "network",
        "bastion",
        "create",
        "-n",
        "second",
        "-g",
        "default",
        "--sku",
        "Basic",
        "--enable-tunneling",
        "false",
    ])?;
    let names = gw.ok(&["network", "bastion", "list", "-o", "tsv", "--query", "[].name"])?;
    let lines: Vec<&str> = names.lines().collect();
    ensure!(
        lines.len() == 2 && lines.contains(&"default") && lines.contains(&"second"),
        "one name per line: {names:?}"
    );
    let picked = gw.ok(&["network", "bastion", "list", "--query", "[?name=='second'].sku.name | [0]"])?;
    ensure!(picked.trim() == "\"Basic\"", "a JMESPath filter and projection: {picked}");
    let table =
        gw.ok(&["network", "bastion", "list", "-o", "table", "--query", "[].{Name: name, Tier: sku.name}"])?;
    ensure!(table.lines().next().is_some_and(|h| h.contains("Name") && h.contains("Tier")), "{table}");
    ensure!(gw.ok(&["network", "bastion", "list", "-o", "none"])?.is_empty(), "-o none prints nothing");
    ensure!(
        gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default", "-o", "jsonc"])?
            .contains("\"name\""),
        "jsonc"
    );
    let bad = gw.refused(&["network", "bastion", "list", "--query", "[?"])?;
    ensure!(bad.contains("JMESPath"), "a bad query says so: {bad}");
    Ok(())
}

#[test]
fn completions_load_in_bash() -> Result<()> {
    let script = format!("source <('{}' completion bash) && complete -p rampart", rampart_bin().display());
    let out = Command::new("bash").args(["-c", &script]).output()?;
    ensure!(out.status.success(), "bash could not load them: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("rampart"),
        "a completion for rampart is registered"
    );
    Ok(())
}
