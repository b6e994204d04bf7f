//! RDP in the browser, end to end: a live gateway, a real RDP server (freerdp-shadow-cli on an
//! Xvfb display), real Chromium driven by Playwright (`web/tests/browser-rdp.mjs`), which
//! paints the server's display and checks the canvas shows it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser};

/// Registers a machine at 127.0.0.1 whose RDP server listens on `port`; returns its resource ID.
fn register_rdp_machine(gw: &Gateway, name: &str, os: &str, port: u16) -> Result<String> {
    let port = port.to_string();
    let ip = "127.0.0.1";
    gw.ok(&[
        "vm",
        "register",
        "-n",
        name,
        "-g",
        "apps",
        "--os-type",
        os,
        "--private-ip-address",
        ip,
        "--port-rdp",
        &port,
    ])?;
    let shown: serde_json::Value = serde_json::from_str(&gw.ok(&["vm", "show", "-n", name, "-g", "apps"])?)?;
    Ok(shown["id"].as_str().context("vm id")?.to_string())
}

#[test]
fn rdp_in_the_browser() -> Result<()> {
    for needed in [
        "/usr/bin/xfreerdp",
        "/usr/bin/freerdp-shadow-cli",
        "/usr/bin/Xvfb",
        "/usr/bin/xsetroot",
        "/usr/bin/xterm",
        "/usr/bin/xdotool",
    ] {
        ensure!(Path::new(needed).exists(), "{needed} is missing: the README's test command installs it");
    }
    let n = 500 + std::process::id() % 200;
    let display = format!(":{n}");
    let _xvfb = rampart_e2e::xvfb(n)?;
    let (_shadow, port) = rampart_e2e::shadow_server(n, false)?;

    // A second server, on its own display, that checks passwords (PAM) for a throwaway local
    // user, when root.
    let local = LocalUser::create("rr")?;
    let auth_n = 700 + std::process::id() % 200;
    let auth_display = format!(":{auth_n}");
    let mut auth_port = 0;
    let mut _auth_processes = vec![];
    // And xrdp, whose desktop is a whole Xorg session of that user: a background colour and a
    // terminal that writes the line typed into it to a file.
    let mut xrdp = None;
    if let Some(user) = &local {
        _auth_processes.push(rampart_e2e::xvfb(auth_n)?);
        let (process, port) = rampart_e2e::shadow_server(auth_n, true)?;
        _auth_processes.push(process);
        auth_port = port;
        for needed in ["/usr/sbin/xrdp", "/usr/sbin/xrdp-sesman", "/usr/bin/xclip", "/usr/bin/xwd"] {
            ensure!(Path::new(needed).exists(), "{needed} is missing: the README's test command installs it");
        }
        let home = PathBuf::from(format!("/home/{}", user.name));
        let session = home.join(".xsession");
        std::fs::write(
            &session,
            "#!/bin/sh\nxsetroot -solid '#5a3d8c'\n\
             exec xterm -geometry 60x8+20+20 -e bash -c 'read -r line; printf \"%s\" \"$line\" > ~/typed.txt; exec sleep 600'\n",
        )?;
        let chown = Command::new("chown").arg("-R").arg(&user.name).arg(&home).status()?;
        ensure!(chown.success() && Command::new("chmod").arg("755").arg(&session).status()?.success());
        xrdp = Some(rampart_e2e::XrdpServer::start(&user.name, 300 + std::process::id() % 100)?);
    } else {
        println!("SKIPPED (part): the password-checking RDP servers need root for a local user");
    }

    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let vm_id = register_rdp_machine(&gw, "win1", "windows", port)?;

    // The xrdp machine registered too (a Linux VM reached over RDP).
    let xrdp_vm_id = match &xrdp {
        Some(x) => register_rdp_machine(&gw, "xrdp1", "linux", x.port)?,
        None => String::new(),
    };

    let out = rampart_e2e::repo_root().join("target/e2e-artifacts/browser-rdp");
    let _ = std::fs::remove_dir_all(&out);
    let script = rampart_e2e::spawn_browser_script(
        "browser-rdp.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("RDP_DISPLAY", display.clone()),
            ("RDP_PORT", port.to_string()),
            ("VM_ID", vm_id.clone()),
            ("AUTH_PORT", if local.is_some() { auth_port.to_string() } else { String::new() }),
            ("AUTH_DISPLAY", auth_display.clone()),
            ("AUTH_USER", local.as_ref().map(|u| u.name.clone()).unwrap_or_default()),
            ("AUTH_PASSWORD", local.as_ref().map(|u| u.password.clone()).unwrap_or_default()),
            ("XRDP_PORT", xrdp.as_ref().map(|x| x.port.to_string()).unwrap_or_default()),
            ("XRDP_DISPLAY", xrdp.as_ref().map(|x| x.display.clone()).unwrap_or_default()),
            ("XRDP_LOG_DIR", xrdp.as_ref().map(|x| x.log_dir().display().to_string()).unwrap_or_default()),
            ("XRDP_VM_ID", xrdp_vm_id),
        ],
    )?;
    let text = match rampart_e2e::finish_browser_script(script, Duration::from_secs(240)) {
        Ok(text) => text,
        Err(e) => match &xrdp {
            Some(x) => return Err(e.context(format!("xrdp's logs:\n{}", x.log()))),
            None => return Err(e),
        },
    };
    for step in [
        "by IP: the canvas shows the server's display",
        "a change on the server reaches the canvas",
        "a photo-like screen travels as JPEG",
        "closing the tab ends the session",
        "video: H.264 passed through, the canvas matches the server's screen",
        "by registered VM",
        "typing reaches the remote desktop",
        "a click lands where it was aimed",
        "the Connect page downloads an .rdp file for the VM",
    ] {
        ensure!(text.contains(&format!("ok - {step}")), "step '{step}' did not run:\n{text}");
    }
    for step in [
        "a wrong RDP password is refused",
        "the right RDP password shows the desktop",
        "xrdp: the canvas matches a screenshot of the server's display",
        "xrdp: typing reaches the terminal",
        "xrdp: text copied on the remote desktop reaches the browser",
        "xrdp: text from the browser is pasted on the remote desktop",
        "xrdp: with copy and paste turned off, no text crosses either way",
        "xrdp by registered VM: the canvas matches a screenshot",
        "xrdp: a new session with copy and paste off offers no clipboard",
    ] {
        if local.is_none() {
            break;
        }
        ensure!(text.contains(&format!("ok - {step}")), "step '{step}' did not run:\n{text}");
    }

    // Each session is audited: opened, then closed with its bytes and duration once the tab
    // closed (the gateway notices within moments).
    let t = Instant::now();
    loop {
        let audit = gw.audit()?;
        let closes: Vec<&serde_json::Value> =
            audit.iter().filter(|r| r["protocol"] == "rdp" && r["event"] == "connection-close").collect();
        if closes.len() >= 2 + 3 * usize::from(local.is_some()) {
            ensure!(
                closes
                    .iter()
                    .all(|c| c["bytesFromTarget"].as_u64().unwrap_or(0) > 1000 && c["durationMs"].is_u64()),
                "{closes:?}"
            );
            // The session lifecycle's end reason: a desktop whose tab closed ended on the
            // browser's side, and its close record says so by code.
            ensure!(
                closes.iter().any(|c| c["reasonCode"] == "ClientClosed" && c["result"] == "closed"),
                "a closed tab's desktop ends as ClientClosed: {closes:?}"
            );
            break;
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the closed tabs did not end their RDP sessions: {closes:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ensure!(
        gw.ok(&["network", "bastion", "session", "list", "-n", "default", "-g", "default"])?.trim() == "[]"
    );
    if let Some(user) = &local {
        let audit = gw.audit()?;
        ensure!(
            audit.iter().any(|r| r["protocol"] == "rdp"
                && r["event"] == "connection-open"
                && r["result"] == "failed"
                && r["reasonCode"] == "TargetAuthenticationFailed"),
            "the wrong RDP password is audited"
        );
        ensure!(!gw.log().contains(&user.password), "the RDP password never reaches the log");
    }

    // The .rdp file the Connect page gave opens in a stock client and connects through the
    // gateway's RD Gateway endpoint (xfreerdp, authentication only, on a display of its own).
    let client_n = 1300 + std::process::id() % 200;
    let _client_xvfb = rampart_e2e::xvfb(client_n)?;
    let rdp_file = out.join("portal.rdp");
    let client = Command::new("xfreerdp")
        .env("DISPLAY", format!(":{client_n}"))
        .arg(&rdp_file)
        .args(["/cert:ignore", "/sec:tls", "/u:x", "/p:y", "+auth-only"])
        .stdin(std::process::Stdio::null())
        .output()?;
    ensure!(
        client.status.success(),
        "xfreerdp could not open the portal's .rdp file: {}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    ensure!(
        gw.audit()?.iter().any(|r| r["protocol"] == "rdp"
            && r["event"] == "connection-open"
            && r["result"] == "allowed"
            && r["userAgent"].as_str().is_some_and(|a| a.contains("RDGateway"))),
        "the RD Gateway session from the portal's file is audited"
    );
    Ok(())
}
