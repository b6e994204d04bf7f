//! Stock RDP clients through Rampart's RD Gateway endpoint (MS-TSGU over HTTPS, WebSocket
//! and legacy HTTP transports): real xfreerdp with FreeRDP's own gateway options and with an .rdp file from
//! `--output-rdp-file`, to a real RDP server (FreeRDP's shadow server) behind the gateway.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{Gateway, Session, shadow_server, xvfb};

const VM: &str =
    "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/win1";

fn installed() -> bool {
    ["/usr/bin/xfreerdp", "/usr/bin/freerdp-shadow-cli", "/usr/bin/Xvfb"]
        .iter()
        .all(|p| Path::new(p).exists())
}

/// `rampart rdp … --output-rdp-file` as `who`; returns the file's text.
fn rdp_file(who: &Session, dir: &Path, name: &str, port: u16) -> Result<(std::path::PathBuf, String)> {
    let file = dir.join(name);
    let out = who.ok(&[
        "network",
        "bastion",
        "rdp",
        "-n",
        "default",
        "-g",
        "default",
        "--target-resource-id",
        VM,
        "--resource-port",
        &port.to_string(),
        "--output-rdp-file",
        file.to_str().context("path")?,
    ])?;
    ensure!(out.contains("RD Gateway"), "{out}");
    Ok((file.clone(), std::fs::read_to_string(&file)?))
}

fn line<'a>(text: &'a str, key: &str) -> Result<&'a str> {
    text.lines()
        .find_map(|l| l.trim_end().strip_prefix(key))
        .with_context(|| format!("no {key} in the .rdp file:\n{text}"))
}

/// xfreerdp, authentication only (connects, signs in, disconnects), on `display`.
fn xfreerdp(display: &str, args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new("xfreerdp")
        .env("DISPLAY", display)
        .args(args)
        .args(["/cert:ignore", "/sec:tls", "/u:x", "/p:y", "+auth-only", "/log-level:INFO"])
        .stdin(Stdio::null())
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), said))
}

fn exited_within(child: &mut Child, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    bail!("xfreerdp was still running {limit:?} after its session was deleted")
}

#[test]
fn stock_freerdp_connects_through_the_rd_gateway_with_a_token() -> Result<()> {
    if !installed() {
        println!(
            "SKIPPED: xfreerdp, freerdp-shadow-cli or Xvfb is missing (the README's test command installs them)"
        );
        return Ok(());
    }
    let base = 1000 + (std::process::id() % 100) * 2;
    let _server_display = xvfb(base)?;
    let _client_display = xvfb(base + 1)?;
    let display = format!(":{}", base + 1);
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
    let dir = tempfile::tempdir()?;
    let gateway = gw.url().trim_start_matches("https://").to_string();

    // 1. The .rdp file names the gateway and a token, and xfreerdp connects with it alone.
    let (file, text) = rdp_file(&gw, dir.path(), "win1.rdp", port)?;
    ensure!(line(&text, "gatewayhostname:s:")? == gateway, "{text}");
    ensure!(line(&text, "full address:s:")? == format!("127.0.0.1:{port}"), "{text}");
    let token = line(&text, "gatewayaccesstoken:s:")?.to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "the .rdp file holds a token but is mode {mode:o}");
    }
    let (ok, said) = xfreerdp(&display, &[file.to_str().context("path")?])?;
    ensure!(ok, "xfreerdp with the .rdp file failed:\n{said}");

    // 2. FreeRDP's own gateway options with the same token (HTTP transport).
    let (ok, said) = xfreerdp(
        &display,
        &[&format!("/g:{gateway}"), "/gt:http", &format!("/gat:{token}"), &format!("/v:127.0.0.1:{port}")],
    )?;
    ensure!(ok, "xfreerdp /g: /gat: failed:\n{said}");
    // The legacy carrier (two long requests, RDG_OUT_DATA and RDG_IN_DATA), as older clients use.
    let (ok, said) = xfreerdp(
        &display,
        &[
            &format!("/g:{gateway}"),
            "/gt:http,no-websockets",
            &format!("/gat:{token}"),
            &format!("/v:127.0.0.1:{port}"),
        ],
    )?;
    ensure!(ok, "xfreerdp over RDG_OUT_DATA/RDG_IN_DATA failed:\n{said}");
    let audit = gw.audit()?;
    let opened = audit
        .iter()
        .filter(|r| {
            r["event"] == "connection-open"
                && r["result"] == "allowed"
                && r["protocol"] == "rdp"
                && r["user"] == "admin"
        })
        .count();
    ensure!(opened >= 3, "three RD Gateway sessions should be audited as opened: {opened}");

    // 3. A token is for its target only: the same token asking for another computer is
    //    refused at the channel request, and the refusal audited.
    let (ok, said) = xfreerdp(
        &display,
        &[&format!("/g:{gateway}"), &format!("/gat:{token}"), &format!("/v:127.0.0.2:{port}")],
    )?;
    ensure!(!ok, "a token for 127.0.0.1 reached 127.0.0.2:\n{said}");
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["result"] == "refused" && r["reasonCode"] == "TokenForOtherTarget"),
        "the refusal is not audited"
    );
    // A forged token is refused at the tunnel request.
    let (ok, _) =
        xfreerdp(&display, &[&format!("/g:{gateway}"), "/gat:not-a-token", &format!("/v:127.0.0.1:{port}")])?;
    ensure!(!ok, "a forged token was taken");
    ensure!(
        gw.audit()?.iter().any(|r| r["result"] == "refused"
            && r["reasonCode"] == "Unauthenticated"
            && r["userAgent"].as_str().is_some_and(|a| a.contains("RDGateway"))),
        "the forged token's refusal is not audited"
    );

    // 4. A user whose role is taken away after getting the file is refused at the resource
    //    authorization step (the channel request), by the admission service, and audited.
    let bob = gw.reader("rdg-bob")?;
    let (bob_file, _) = rdp_file(&bob, dir.path(), "bob.rdp", port)?;
    let scope = gw.subscription_scope()?;
    gw.ok(&["role", "assignment", "delete", "--assignee", "rdg-bob", "--role", "Reader", "--scope", &scope])?;
    let (ok, said) = xfreerdp(&display, &[bob_file.to_str().context("path")?])?;
    ensure!(!ok, "bob reached the target without his role:\n{said}");
    let refusal = gw
        .audit()?
        .into_iter()
        .find(|r| r["user"] == "rdg-bob" && r["event"] == "connection-open" && r["result"] == "refused")
        .context("bob's refusal is not in the audit log")?;
    ensure!(refusal["protocol"] == "rdp", "{refusal}");

    // 5. A live RD Gateway session is listed, and deleting it ends the client's connection.
    let mut client = Command::new("xfreerdp")
        .env("DISPLAY", &display)
        .arg(&file)
        .args(["/cert:ignore", "/sec:tls", "/u:x", "/p:y"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let live = rampart_e2e::wait_until(Duration::from_secs(30), || {
        Ok(gw
            .sessions()?
            .into_iter()
            .find(|s| s["protocol"] == "rdp" && s["bytesFromTarget"].as_u64().unwrap_or(0) > 0))
    });
    let live = match live {
        Ok(l) => l,
        Err(e) => {
            let _ = client.kill();
            return Err(e);
        }
    };
    ensure!(live["userName"] == "admin" && live["targetPort"] == port, "{live}");
    let id = live["sessionId"].as_str().context("session id")?.to_string();
    gw.ok(&["network", "bastion", "session", "delete", "-n", "default", "-g", "default", "--ids", &id])?;
    exited_within(&mut client, Duration::from_secs(10))?;
    ensure!(gw.sessions()?.iter().all(|s| s["sessionId"] != id.as_str()), "the session is still listed");
    ensure!(
        gw.audit()?.iter().any(|r| r["event"] == "connection-close"
            && r["reason"].as_str().is_some_and(|x| x.contains("disconnected by admin"))),
        "the close record does not say who ended it"
    );
    Ok(())
}
