//! Live join of a browser terminal in Chromium: an operator watches (the user is told, the
//! watcher sees the user's typing and cannot type), then joins to interact and types a command
//! the user sees; then another joins with `rampart network bastion session join --mode
//! interact` and does the same from the command line. Each join is audited and marked in the
//! session's recording.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser, Sshd, SshdOptions};

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

#[test]
fn an_operator_watches_then_types_into_a_browser_terminal() -> Result<()> {
    let Some(local) = LocalUser::create("join")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    gw.update_bastion("default", &["--sku", "Premium", "--enable-session-recording", "true"])?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let user = "watched@example.com";
    gw.new_user(user)?;
    gw.ok(&["role", "assignment", "create", "--assignee", user, "--role", "Reader", "--scope", BASTION])?;
    let out = rampart_e2e::artifacts("live-join")?;
    let script = rampart_e2e::spawn_browser_script(
        "join.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("BASTION_ID", gw.bastion_id()?),
            ("PORTAL_USER", user.into()),
            ("PORTAL_PASSWORD", format!("{user}-Passw0rd-long")),
            ("SSH_PORT", sshd.port.to_string()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
            ("CLI_JOIN", "1".into()),
        ],
    )?;
    join_from_the_command_line(&gw, &out)?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(120))?;
    ensure!(text.contains("the operator types a command the user sees"), "{text}");
    let joins: Vec<serde_json::Value> =
        gw.audit()?.into_iter().filter(|r| r["event"] == "session-join").collect();
    ensure!(joins.len() >= 2, "each join is audited: {joins:?}");
    ensure!(
        joins.iter().any(|r| r["reason"].as_str().is_some_and(|x| x.contains("(interact)"))),
        "the mode is in the record"
    );
    ensure!(joins.len() >= 3, "the command line's join is audited too: {joins:?}");
    let t = Instant::now();
    let rec = loop {
        let list: Vec<serde_json::Value> = gw.recordings(&[])?;
        if let Some(r) = list.into_iter().find(|r| r["complete"] == true) {
            break r;
        }
        ensure!(t.elapsed() < Duration::from_secs(20), "the session's recording is not complete");
        std::thread::sleep(Duration::from_millis(200));
    };
    let cast = out.join("joined.cast");
    gw.export_recording(rec["id"].as_str().context("id")?, &cast)?;
    let markers: Vec<String> = std::fs::read_to_string(&cast)?
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<(f64, String, String)>(l).ok())
        .filter(|(_, kind, _)| kind == "m")
        .map(|(_, _, text)| text)
        .collect();
    ensure!(
        markers.iter().any(|m| m == "admin joined (interact)") && markers.iter().any(|m| m == "admin left"),
        "joins are marked in the recording: {markers:?}"
    );
    Ok(())
}

/// Once the browser script says so: `session join --mode interact` on the command line types
/// a command the user sees, and shows what the user types; Ctrl-] leaves.
fn join_from_the_command_line(gw: &Gateway, out: &std::path::Path) -> Result<()> {
    let t = Instant::now();
    while !out.join("cli-ready").exists() {
        ensure!(
            t.elapsed() < Duration::from_secs(90),
            "the browser script never got to the command-line join"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sessions: Vec<serde_json::Value> = serde_json::from_str(
        &gw.ok(&["network", "bastion", "session", "list", "-n", "default", "-g", "default"])?,
    )?;
    let id =
        sessions.first().and_then(|s| s["sessionId"].as_str()).context("the user's session is listed")?;
    let mut cli = gw
        .cli()
        .args(["network", "bastion", "session", "join", "-n", "default", "-g", "default", "--ids", id])
        .args(["--mode", "interact"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = cli.stdout.take().context("stdout")?;
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().map(|mut s| s.extend_from_slice(&buf[..n])).ok();
        }
    });
    let mut stdin = cli.stdin.take().context("stdin")?;
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"echo typed-by-cli-$((4+5))\n")?;
    let t = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&seen.lock().map(|s| s.clone()).unwrap_or_default()).into_owned();
        if text.contains("seen-by-cli-8") && text.contains("typed-by-cli-9") {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = cli.kill();
            anyhow::bail!("the command-line operator did not see the session: {text:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(out.join("cli-done"), "yes")?;
    stdin.write_all(&[0x1d])?;
    let t = Instant::now();
    let status = loop {
        if let Some(status) = cli.try_wait()? {
            break status;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = cli.kill();
            anyhow::bail!("Ctrl-] did not end the command-line join");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    cli.stderr.take().context("stderr")?.read_to_string(&mut said)?;
    ensure!(status.success() && said.contains("left the session"), "{status}: {said}");
    Ok(())
}
