//! az-grade output (issue 26, part 2): `--query` (JMESPath) on every printed result, `-o
//! tsv|jsonc|table|yaml|none`, shell completions that load in bash, and man pages that `man`
//! renders.

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
    let yaml = gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default", "-o", "yaml"])?;
    ensure!(
        yaml.lines().any(|l| l == "name: default") && yaml.contains("sku:\n  name: Standard"),
        "YAML, as az prints it: {yaml}"
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

#[test]
fn man_pages_are_written_for_every_command_and_render() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(rampart_bin()).args(["man", "--output-dir"]).arg(dir.path()).output()?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let join = dir.path().join("rampart-network-bastion-session-join.1");
    ensure!(
        dir.path().join("rampart.1").exists() && join.exists(),
        "a page for rampart and for each command"
    );
    let pages = std::fs::read_dir(dir.path())?.count();
    ensure!(pages > 50, "{pages} pages");
    // groff renders what man would show.
    let rendered =
        Command::new("groff").args(["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"]).arg(&join).output()?;
    // Without bold and underline, as plain text.
    let text: String = String::from_utf8_lossy(&rendered.stdout).replace('\u{8}', "");
    ensure!(
        rendered.status.success() && text.contains("--mode") && text.contains("Watch a running"),
        "{text}"
    );
    Ok(())
}
