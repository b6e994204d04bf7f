//! `rampart rdp` against a real RDP server (freerdp-shadow-cli under Xvfb) with a real client
//! (xfreerdp, authentication only, so no window is needed beyond a virtual display).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, ensure};
use rampart_e2e::{Gateway, Process, shadow_server, xvfb};

const VM: &str =
    "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/win1";

fn installed() -> bool {
    ["/usr/bin/xfreerdp", "/usr/bin/freerdp-shadow-cli", "/usr/bin/Xvfb"]
        .iter()
        .all(|p| Path::new(p).exists())
}

#[test]
fn rdp_through_the_bastion_with_xfreerdp_and_an_rdp_file() -> Result<()> {
    if !installed() {
        println!(
            "SKIPPED: xfreerdp, freerdp-shadow-cli or Xvfb is missing (the README's test command installs them)"
        );
        return Ok(());
    }
    // Distinct displays per run, so parallel test binaries do not collide.
    let base = 40 + (std::process::id() % 200) * 2;
    let _server_display = xvfb(base)?;
    let _client_display = xvfb(base + 1)?;
    let (_shadow, port) = shadow_server(base, false)?;

    let gw = Gateway::start(&[])?;
    gw.update_bastion("default", &["--reachable-networks", "127.0.0.0/8"])?;
    gw.ok(&[
        "vm",
        "register",
        "-n",
        "win1",
        "-g",
        "apps",
        "--os-type",
        "windows",
        "--private-ip-address",
        "127.0.0.1",
        "--port-rdp",
        &port.to_string(),
    ])?;
    let client_display = format!(":{}", base + 1);

    // `rampart rdp` runs xfreerdp on the tunnel and returns its exit code.
    let out = gw
        .cli()
        .env("DISPLAY", &client_display)
        .args([
            "rdp",
            "-n",
            "default",
            "-g",
            "default",
            "--target-resource-id",
            VM,
            "--resource-port",
            &port.to_string(),
        ])
        .args(["--", "/cert:ignore", "/sec:tls", "/u:x", "/p:y", "+auth-only"])
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "xfreerdp through rampart rdp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `--rdp-file` writes a file that xfreerdp opens, through the tunnel it keeps open.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("win1.rdp");
    let mut cmd = gw.cli();
    cmd.args(["rdp", "-n", "default", "-g", "default", "--target-resource-id", VM, "--rdp-file"])
        .arg(&file)
        .args(["--resource-port", &port.to_string()]);
    let mut holder = Process::spawn(cmd, "rampart rdp --rdp-file")?;
    holder.wait_for_line("Tunnel is open", Duration::from_secs(30))?;
    let status = Command::new("xfreerdp")
        .env("DISPLAY", &client_display)
        .arg(&file)
        .args(["/cert:ignore", "/sec:tls", "/u:x", "/p:y", "+auth-only"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "xfreerdp could not use the written .rdp file: {status}");
    Ok(())
}
