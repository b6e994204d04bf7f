//! Just-in-time access with real OpenSSH: an eligible user is refused with the command that
//! activates; activates (no approval), connects, and revoking the activation ends the open ssh
//! session within a second, naming the activation; with approval required, the activation
//! waits, the requester cannot approve it, an approver does; a short activation ends its live
//! session when it expires; and `audit list --target roleActivations/ID` tells one request's
//! story, with the sessions it ended.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{Gateway, Session, Sshd};

const DEFAULT: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

fn tunnel_args(sshd: &Sshd) -> Vec<String> {
    [
        "--name",
        "default",
        "--resource-group",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([sshd.port.to_string(), "--subscription".into(), "default".into()])
    .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused_tunnel(user: &Session, sshd: &Sshd) -> Result<String> {
    let mut args = vec!["network".to_string(), "bastion".into(), "tunnel".into()];
    args.extend(tunnel_args(sshd));
    args.extend(["--port".into(), "0".into()]);
    user.refused(&refs(&args))
}

/// An interactive-like ssh session through a tunnel: it prints `started`, then waits.
fn long_ssh(sshd: &Sshd, port: u16) -> Result<Child> {
    let mut child = sshd
        .client("ssh", port)
        .arg(format!("{}@127.0.0.1", sshd.user))
        .arg("echo started; sleep 120")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    ensure!(line.trim() == "started", "the ssh session started: {line}");
    Ok(child)
}

/// Waits for the process to end; how long it took, or an error past `limit`.
fn ended_within(child: &mut Child, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if child.try_wait()?.is_some() {
            return Ok(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().ok();
    bail!("still running after {limit:?}")
}

fn activate(user: &Session, extra: &[&str]) -> Result<serde_json::Value> {
    let mut args = vec!["role", "activate", "--role", "Reader", "--scope", DEFAULT];
    args.extend_from_slice(extra);
    Ok(serde_json::from_str(&user.ok(&args)?)?)
}

fn story(gw: &Gateway, id: &str) -> Result<Vec<serde_json::Value>> {
    let out = gw.ok(&["audit", "list", "--target", &format!("roleActivations/{id}")])?;
    Ok(serde_json::from_str(&out)?)
}

#[test]
fn an_activation_admits_and_its_revocation_ends_the_live_session() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start()?;
    let alice = gw.new_user("jit-alice")?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "jit-alice",
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
        "--eligible",
        "--max-duration",
        "PT2H",
    ])?;
    ensure!(
        !gw.ok(&["role", "assignment", "list", "--assignee", "jit-alice"])?.contains("Reader"),
        "eligible ones are not listed by default"
    );
    let listed = gw.ok(&["role", "assignment", "list", "--assignee", "jit-alice", "--include-eligible"])?;
    ensure!(listed.contains("\"maxDuration\": \"PT2H\""), "{listed}");

    let refused = refused_tunnel(&alice, &sshd)?;
    ensure!(refused.contains("ActivationRequired") && refused.contains("rampart role activate"), "{refused}");

    let made = activate(&alice, &["--duration", "PT1H", "--justification", "ticket 7"])?;
    let id = made["id"].as_str().context("activation id")?.to_string();
    ensure!(made["state"] == "active", "{made}");
    let tunnel = alice.tunnel_with(&refs(&tunnel_args(&sshd)))?;
    let mut ssh = long_ssh(&sshd, tunnel.port)?;

    // The gateway ends the sessions before it answers the revocation: measured from the answer.
    alice.ok(&["role", "activation", "revoke", "--ids", &id, "--reason", "done early"])?;
    let took = ended_within(&mut ssh, Duration::from_secs(5))?;
    ensure!(took < Duration::from_secs(3), "the live ssh session ended {took:?} after the revocation");
    let again = refused_tunnel(&alice, &sshd)?;
    ensure!(again.contains(&id) && again.contains("was revoked by jit-alice"), "{again}");

    let records = story(&gw, &id)?;
    for step in ["requested Reader", "activated until", "revoked by jit-alice: done early"] {
        ensure!(
            records.iter().any(|r| r["reason"].as_str().is_some_and(|x| x.contains(step))),
            "'{step}' in {records:?}"
        );
    }
    let closes = gw.audit()?;
    ensure!(
        closes.iter().any(
            |r| r["event"] == "connection-close" && r["reason"].as_str().is_some_and(|x| x.contains(&id))
        ),
        "the ended session's close record names the activation"
    );
    drop(tunnel);
    Ok(())
}

#[test]
fn an_activation_that_needs_approval_waits_for_an_approver() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start()?;
    let alice = gw.new_user("req-alice")?;
    let bob = gw.new_user("approver-bob")?;
    let carol = gw.new_user("other-carol")?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "req-alice",
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
        "--eligible",
        "--require-approval",
        "--approver",
        "approver-bob",
        "--require-justification",
    ])?;

    let unjustified = alice.refused(&["role", "activate", "--role", "Reader", "--scope", DEFAULT])?;
    ensure!(unjustified.contains("justification"), "{unjustified}");
    let made = activate(&alice, &["--duration", "PT30M", "--justification", "incident 12"])?;
    let id = made["id"].as_str().context("id")?.to_string();
    ensure!(made["state"] == "pending", "{made}");
    let waiting = refused_tunnel(&alice, &sshd)?;
    ensure!(waiting.contains("waiting for an approver"), "{waiting}");

    let own = alice.refused(&["role", "activation", "approve", "--ids", &id])?;
    ensure!(own.contains("requester cannot"), "{own}");
    let stranger = carol.refused(&["role", "activation", "approve", "--ids", &id])?;
    ensure!(stranger.contains("not an approver"), "{stranger}");
    ensure!(
        bob.ok(&["role", "activation", "list", "--pending"])?.contains(&id),
        "the approver sees it pending"
    );
    bob.ok(&["role", "activation", "approve", "--ids", &id, "--reason", "on call"])?;

    let tunnel = alice.tunnel_with(&refs(&tunnel_args(&sshd)))?;
    ensure!(sshd.ssh(tunnel.port, "echo approved")?.trim() == "approved", "connects once approved");
    let records = story(&gw, &id)?;
    ensure!(
        records
            .iter()
            .any(|r| r["reason"].as_str().is_some_and(|x| x.contains("approved by approver-bob: on call"))),
        "{records:?}"
    );
    ensure!(records.iter().any(|r| r["result"] == "refused"), "the refused approvals are in the story");
    Ok(())
}

#[test]
fn an_expired_activation_ends_its_live_session() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start()?;
    let alice = gw.new_user("exp-alice")?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "exp-alice",
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
        "--eligible",
    ])?;
    let made = activate(&alice, &["--duration", "PT6S"])?;
    let id = made["id"].as_str().context("id")?.to_string();
    let ends: chrono::DateTime<chrono::Utc> = made["endsAt"].as_str().context("endsAt")?.parse()?;
    let tunnel = alice.tunnel_with(&refs(&tunnel_args(&sshd)))?;
    let mut ssh = long_ssh(&sshd, tunnel.port)?;
    ended_within(&mut ssh, Duration::from_secs(15))?;
    let late = chrono::Utc::now() - ends;
    ensure!(
        late < chrono::Duration::milliseconds(2500),
        "the session ended {late} after the activation's end"
    );
    ensure!(late > chrono::Duration::milliseconds(-1000), "not before its end ({late})");
    let records = story(&gw, &id)?;
    ensure!(
        records.iter().any(|r| r["reason"].as_str().is_some_and(|x| x.contains("expired at"))),
        "{records:?}"
    );
    Ok(())
}

#[test]
fn the_portal_requests_access_and_a_revocation_ends_the_browser_terminal() -> Result<()> {
    let Some(local) = rampart_e2e::LocalUser::create("jitb")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start_with(rampart_e2e::SshdOptions { password_auth: true, ..Default::default() })?;
    let user = "portal-jit";
    let cli = gw.new_user(user)?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        user,
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
        "--eligible",
    ])?;
    let bastion: serde_json::Value =
        serde_json::from_str(&gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    let out = rampart_e2e::repo_root().join("target/e2e-artifacts/jit-browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let script = rampart_e2e::spawn_browser_script(
        "jit.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ARTIFACTS", out.display().to_string()),
            ("PORTAL_USER", user.into()),
            ("PORTAL_PASSWORD", format!("{user}-Passw0rd-long")),
            ("BASTION_ID", bastion["id"].as_str().context("bastion id")?.to_string()),
            ("SSH_PORT", sshd.port.to_string()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
        ],
    )?;
    let t = Instant::now();
    while !out.join("terminal-open").exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let list: Vec<serde_json::Value> = serde_json::from_str(&cli.ok(&["role", "activation", "list"])?)?;
    let id = list.first().and_then(|a| a["id"].as_str()).context("the portal's activation")?.to_string();
    let revoked_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    std::fs::write(out.join("revoked"), revoked_at.to_string())?;
    gw.ok(&["role", "activation", "revoke", "--ids", &id, "--reason", "incident over"])?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;
    let ended_at: u128 = std::fs::read_to_string(out.join("ended-at"))?.trim().parse()?;
    let took = ended_at.saturating_sub(revoked_at);
    // The CLI's run, the browser seeing its socket close and the script's 100 ms polls are in it.
    ensure!(took < 3000, "the browser terminal ended {took} ms after the revocation was asked for:\n{text}");
    Ok(())
}
