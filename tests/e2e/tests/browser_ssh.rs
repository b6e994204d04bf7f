//! SSH in the browser, end to end: a live gateway, a real sshd, real Chromium driven by
//! Playwright (`web/tests/browser-ssh.mjs`). While the script keeps a browser terminal open,
//! this test checks the session from the CLI (`session list` with growing byte counts, then
//! `session delete`), as an operator would.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser, Sshd, SshdOptions, audit_has};

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

fn browser_session(gw: &Gateway) -> Result<Option<serde_json::Value>> {
    Ok(gw.sessions()?.into_iter().find(|s| s["protocol"] == "ssh"))
}

#[test]
fn ssh_in_the_browser() -> Result<()> {
    let Some(local) = LocalUser::create("rb")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    gw.allow_loopback()?;
    let port = sshd.port.to_string();
    let register =
        ["vm", "register", "-n", "web1", "-g", "apps", "--os-type", "linux", "--private-ip-address"];
    gw.ok(&[&register[..], &["127.0.0.1", "--port-ssh", &port]].concat())?;
    // The VM's ID as the gateway spells it (subscription ID, not name), as the pages show it.
    let shown: serde_json::Value =
        serde_json::from_str(&gw.ok(&["vm", "show", "-n", "web1", "-g", "apps"])?)?;
    let vm_id = shown["id"].as_str().context("vm id")?.to_string();
    // A user who may read the bastion, and nothing else.
    let reader = "reader@example.com";
    let _ = gw.new_user(reader)?;
    gw.ok(&["role", "assignment", "create", "--assignee", reader, "--role", "Reader", "--scope", BASTION])?;

    // Screenshots stay here after the run.
    let out = rampart_e2e::repo_root().join("target/e2e-artifacts/browser-ssh");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let started = Instant::now();
    let mut script = rampart_e2e::spawn_browser_script(
        "browser-ssh.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("SSH_PORT", port.clone()),
            ("VM_ID", vm_id.clone()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
            ("KEY_USER", sshd.user.clone()),
            ("KEY_FILE", sshd.dir.path().join("userkey").display().to_string()),
            ("READER_USER", reader.to_string()),
            ("READER_PASSWORD", format!("{reader}-Passw0rd-long")),
        ],
    )?;

    // The script opens a terminal that prints a line every 100 ms, then waits for us.
    let marker = out.join("browser-session-open");
    while !marker.exists() {
        if script.try_wait()?.is_some() {
            let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(1))?;
            bail!("the browser script ended before opening its session:\n{text}");
        }
        ensure!(started.elapsed() < Duration::from_secs(120), "the browser script did not open its session");
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = browser_session(&gw)?.context("the browser session is in `session list`")?;
    ensure!(first["userName"] == "admin", "{first}");
    ensure!(first["targetPort"].as_u64() == Some(u64::from(sshd.port)), "{first}");
    std::thread::sleep(Duration::from_millis(1500));
    let second = browser_session(&gw)?.context("still listed")?;
    let bytes = |s: &serde_json::Value| s["bytesFromTarget"].as_u64().unwrap_or(0);
    ensure!(bytes(&second) > bytes(&first), "byte counts grow: {first} then {second}");
    let id = second["sessionId"].as_str().context("session id")?.to_string();
    gw.ok(&["network", "bastion", "session", "delete", "-n", "default", "-g", "default", "--ids", &id])?;
    // Measured from the answer (the CLI's own start is not the gateway's doing); each look
    // below is a CLI run too.
    let t = Instant::now();
    while browser_session(&gw)?.is_some() {
        ensure!(t.elapsed() < Duration::from_secs(3), "the deleted session ended within 3 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(out.join("cli-checked"), "yes")?;

    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(240))?;
    for step in [
        "a wrong portal password is refused",
        "IP address and password",
        "resize: stty size",
        "the live browser session is on the operator page",
        "a session deleted with the CLI ends in the browser with the reason",
        "private key",
        "the operator page's Disconnect button ends a browser session",
        "registered VM",
        "wrong target password: \"127.0.0.1",
        "outside the reachable networks: \"refused",
        "IP-based connection off",
        "a user without Reader on the VM neither sees it nor opens it by URL",
        "no request went anywhere but the gateway",
    ] {
        ensure!(text.contains(&format!("ok - {step}")), "step '{step}' did not run:\n{text}");
    }
    for shot in ["sign-in.png", "connect.png", "terminal.png", "home-phone-width.png"] {
        ensure!(out.join(shot).metadata().map(|m| m.len() > 1000).unwrap_or(false), "screenshot {shot}");
    }

    // Audited like tunnels: opens, closes with bytes, each refusal with its reason.
    let audit = gw.audit()?;
    let ssh = |r: &serde_json::Value| r["protocol"] == "ssh";
    let browser: Vec<serde_json::Value> = audit.iter().filter(|r| ssh(r)).cloned().collect();
    ensure!(audit_has(&browser, "connection-open", "allowed", None), "open records");
    ensure!(
        audit_has(&browser, "connection-open", "failed", Some("TargetAuthenticationFailed")),
        "bad password"
    );
    ensure!(audit_has(&browser, "connection-open", "refused", Some("OutsideReachableNetworks")), "network");
    ensure!(audit_has(&browser, "connection-open", "refused", Some("IpConnectDisabled")), "setting");
    ensure!(audit_has(&audit, "session-disconnect", "allowed", None), "the disconnect");
    let closes: Vec<&serde_json::Value> =
        browser.iter().filter(|r| r["event"] == "connection-close").collect();
    ensure!(closes.len() >= 3, "three sessions closed: {closes:?}");
    ensure!(
        closes.iter().all(|c| c["bytesFromTarget"].as_u64().unwrap_or(0) > 0 && c["durationMs"].is_u64()),
        "each close has bytes and duration: {closes:?}"
    );
    ensure!(
        closes.iter().any(|c| c["reason"].as_str().is_some_and(|r| r.contains("disconnected by admin"))),
        "{closes:?}"
    );
    // The session lifecycle's end reason: a terminal an operator disconnected says so by code.
    ensure!(
        closes
            .iter()
            .any(|c| c["reasonCode"] == "Disconnected" && c["protocol"] == "ssh" && c["result"] == "closed"),
        "the disconnected terminal's close record names its end reason: {closes:?}"
    );
    ensure!(!gw.log().contains(&local.password), "the target password never reaches the log");
    Ok(())
}
