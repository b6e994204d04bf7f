//! Single sign-on against a real, certified OpenID provider (npm `oidc-provider`, started here
//! on loopback behind a private CA): the provider configured with `identity-provider create
//! --ca-file`; `rampart login --use-device-code` approved at the provider's own pages in
//! Chromium, then a tunnel and real OpenSSH for a user whose group holds the role; a user of
//! another group refused naming the role; removal from the group refused at the next refresh
//! (the stated bound: one access-token lifetime); the browser flow with a loopback redirect;
//! the portal's "Sign in with corp" with an SSH terminal; and the refusals of point 7 through
//! the real flow (state, replayed codes, PKCE, rate limits), each audited.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::idp::{CLIENT_SECRET, Idp};
use rampart_e2e::{Gateway, LocalUser, Session, Sshd, SshdOptions, url_encode};

const DEFAULT: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

/// The gateway and its provider, configured as an administrator would.
fn gateway_with_provider(env: &[(&str, &str)]) -> Result<(Gateway, Idp)> {
    let gw = Gateway::start(env)?;
    gw.allow_loopback()?;
    let idp = Idp::start(&[format!("{}/auth/oidc/corp/callback", gw.url)])?;
    idp.register_with(&gw, "corp")?;
    Ok((gw, idp))
}

/// Starts `rampart login … --identity-provider corp EXTRA` in `session`'s profile, stderr read.
fn start_login(
    session: &Session,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<(Child, std::sync::mpsc::Receiver<String>)> {
    let mut cmd = session.cli();
    cmd.args([
        "login",
        "--server",
        &session.url,
        "--fingerprint",
        &session.fingerprint,
        "--identity-provider",
        "corp",
    ])
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}

fn line_with(rx: &std::sync::mpsc::Receiver<String>, marker: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(marker) {
            return Ok(line);
        }
    }
    bail!("the CLI printed no line with '{marker}'")
}

fn finish(mut child: Child, limit: Duration) -> Result<String> {
    let t = Instant::now();
    while child.try_wait()?.is_none() {
        if t.elapsed() > limit {
            child.kill().ok();
            bail!("rampart login did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "rampart login failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn artifacts(name: &str) -> Result<std::path::PathBuf> {
    let out = rampart_e2e::repo_root().join("target/e2e-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    Ok(out)
}

/// Approves a sign-in at the provider's pages in Chromium as `user`.
fn approve(idp: &Idp, user: &str, start_url: &str, code: &str, out: &std::path::Path) -> Result<String> {
    let script = rampart_e2e::spawn_browser_script(
        "sso.mjs",
        &[
            ("MODE", "approve".into()),
            ("IDP_URL", idp.issuer.clone()),
            ("IDP_USER", user.into()),
            ("START_URL", start_url.into()),
            ("DEVICE_CODE", code.into()),
            ("ARTIFACTS", out.display().to_string()),
        ],
    )?;
    rampart_e2e::finish_browser_script(script, Duration::from_secs(90))
}

/// `rampart login --use-device-code`, approved at the provider as `user`.
fn device_login(session: &Session, idp: &Idp, user: &str, out: &std::path::Path) -> Result<String> {
    let (child, rx) = start_login(session, &["--use-device-code"], &[])?;
    let line = line_with(&rx, "To sign in, use a web browser to open the page")?;
    // "… open the page URL and enter the code CODE to authenticate."
    let words: Vec<&str> = line.split_whitespace().collect();
    let url = words.iter().find(|w| w.starts_with("https://")).context("no URL in the device line")?;
    let code = words.iter().position(|w| *w == "code").and_then(|i| words.get(i + 1)).context("no code")?;
    ensure!(line.ends_with("to authenticate."), "az's sentence: {line}");
    approve(idp, user, url, code, out)?;
    finish(child, Duration::from_secs(60))
}

fn tunnel_to(session: &Session, sshd: &Sshd) -> Result<String> {
    let tunnel = session.tunnel("127.0.0.1", sshd.port)?;
    sshd.ssh(tunnel.port, "echo via-sso")
}

fn refused_tunnel(session: &Session, sshd: &Sshd) -> Result<String> {
    session.refused(&[
        "network",
        "bastion",
        "tunnel",
        "--name",
        "default",
        "--resource-group",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
        &sshd.port.to_string(),
        "--port",
        "0",
        "--subscription",
        "default",
    ])
}

#[test]
fn device_code_sign_in_group_access_and_removal() -> Result<()> {
    // Access tokens of 5 s: the client refreshes before every command, so the provider is asked
    // again each time (the bound on group removal is one access-token lifetime).
    let (gw, mut idp) = gateway_with_provider(&[("RAMPART_ACCESS_TOKEN_TTL", "5")])?;
    idp.set_accounts(&[("alice", &["ops"]), ("bob", &["dev"])])?;
    let shown = gw.ok(&["identity-provider", "show", "--name", "corp"])?;
    ensure!(
        shown.contains(&format!("{}/auth/oidc/corp/callback", gw.url)),
        "show names the redirect URI: {shown}"
    );
    ensure!(
        !shown.contains(CLIENT_SECRET) && !gw.ok(&["identity-provider", "list"])?.contains(CLIENT_SECRET),
        "never the secret"
    );
    ensure!(!gw.log().contains(CLIENT_SECRET), "the secret is not in the gateway's log");

    // "Members of ops may use the default bastion": one assignment, to the group's object ID.
    let group: serde_json::Value = serde_json::from_str(&gw.ok(&[
        "ad",
        "group",
        "create",
        "--external-id",
        "ops",
        "--identity-provider",
        "corp",
    ])?)?;
    let group_id = group["id"].as_str().context("group id")?.to_string();
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        &group_id,
        "--assignee-principal-type",
        "Group",
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
    ])?;
    let wrong_kind = gw.refused(&[
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        &group_id,
        "--assignee-principal-type",
        "User",
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
    ])?;
    ensure!(wrong_kind.contains("PrincipalTypeMismatch"), "{wrong_kind}");

    let sshd = Sshd::start()?;
    let out = artifacts("sso-device")?;
    let alice = gw.signed_out()?;
    let signed_in = device_login(&alice, &idp, "alice", &out)?;
    ensure!(signed_in.contains("alice@corp"), "signed in as alice@corp: {signed_in}");
    let echoed = tunnel_to(&alice, &sshd)?;
    ensure!(echoed.trim() == "via-sso", "{echoed}");
    let users = gw.ok(&["ad", "user", "list"])?;
    ensure!(users.contains("alice@corp"), "the federated user is listed: {users}");
    let groups = gw.ok(&["ad", "group", "list"])?;
    ensure!(groups.contains("alice@corp"), "alice is a member of ops: {groups}");

    // bob is in dev, which holds nothing: refused, naming the role.
    let bob = gw.signed_out()?;
    device_login(&bob, &idp, "bob", &out)?;
    let refused = refused_tunnel(&bob, &sshd)?;
    ensure!(refused.contains("role"), "bob is refused naming the role: {refused}");

    // alice leaves ops at the provider: refused once her access token has been renewed.
    idp.set_accounts(&[("alice", &[]), ("bob", &["dev"])])?;
    std::thread::sleep(Duration::from_secs(6));
    let after = refused_tunnel(&alice, &sshd)?;
    ensure!(after.contains("role"), "removed from the group, alice is refused: {after}");
    ensure!(!gw.ok(&["ad", "group", "list"])?.contains("alice@corp"), "no longer a member");

    // Signing out revokes the provider's refresh token too: the old session cannot refresh.
    alice.ok(&["logout"])?;

    // The provider restarts with a new signing key: the gateway meets an unknown key ID,
    // fetches the keys again, and the next sign-in works. bob's refresh token died with the
    // provider's memory: his next command is refused naming why.
    idp.restart()?;
    let stale = bob.refused(&["network", "bastion", "list", "--subscription", "default"])?;
    ensure!(stale.contains("GrantRejected"), "a refresh the provider refuses ends the session: {stale}");
    let carol = gw.signed_out()?;
    idp.set_accounts(&[("alice", &[]), ("bob", &["dev"]), ("carol", &["ops"])])?;
    device_login(&carol, &idp, "carol", &out)?;
    ensure!(tunnel_to(&carol, &sshd)?.trim() == "via-sso", "signed with the rotated key, carol gets in");

    let audit = gw.audit()?;
    ensure!(
        audit
            .iter()
            .any(|r| r["event"] == "sign-in" && r["result"] == "allowed" && r["user"] == "alice@corp"),
        "alice's sign-in is audited"
    );
    Ok(())
}

#[test]
fn browser_sign_in_portal_terminal_and_refusals() -> Result<()> {
    let (gw, idp) = gateway_with_provider(&[])?;
    idp.set_accounts(&[("alice", &["ops"]), ("carol", &["dev"])])?;
    let out = artifacts("sso-browser")?;
    gw.ok(&["ad", "group", "create", "--external-id", "ops", "--identity-provider", "corp"])?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "ops@corp",
        "--assignee-principal-type",
        "Group",
        "--role",
        "Reader",
        "--scope",
        DEFAULT,
    ])?;

    // The CLI's browser flow: az's line, a loopback redirect, the code redeemed by the CLI.
    let alice = gw.signed_out()?;
    let (child, rx) = start_login(&alice, &[], &[("RAMPART_BROWSER", "/bin/true")])?;
    let line = line_with(&rx, "A web browser has been opened at")?;
    ensure!(line.contains("Please continue the login in the web browser."), "az's sentence: {line}");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .context("URL")?
        .trim_end_matches('.')
        .to_string();
    approve(&idp, "alice", &url, "", &out)?;
    let signed_in = finish(child, Duration::from_secs(60))?;
    ensure!(signed_in.contains("alice@corp"), "{signed_in}");
    ensure!(
        alice.ok(&["network", "bastion", "list"])?.contains("default"),
        "alice reads the bastion through her group"
    );

    // The callback replayed with its flow cookie: the provider refuses the used code.
    let replay: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("replay.json"))?)?;
    let callback = replay["callback"].as_str().context("callback URL")?;
    let cookie = replay["flowCookie"].as_str().context("flow cookie")?;
    let replayed = curl(&["-H", &format!("Cookie: __Host-rampart-oidc={cookie}"), callback])?;
    ensure!(replayed.contains("GrantRejected"), "a replayed code is refused: {replayed}");
    // No flow cookie, or another state: refused as a state mismatch.
    let forged = curl(&[&format!("{}/auth/oidc/corp/callback?code=abc&state=forged", gw.url)])?;
    ensure!(forged.contains("StateMismatch"), "{forged}");
    let other_state = curl(&[
        "-H",
        &format!("Cookie: __Host-rampart-oidc={cookie}"),
        &format!("{}/auth/oidc/corp/callback?code=abc&state=other", gw.url),
    ])?;
    ensure!(other_state.contains("StateMismatch"), "{other_state}");
    // A CLI code with the wrong PKCE verifier is refused.
    let pkce = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        r#"{"code":"guessed","codeVerifier":"0000000000000000000000000000000000000000000"}"#,
        &format!("{}/api/auth/oidc/corp/token", gw.url),
    ])?;
    ensure!(pkce.contains("unknown, used, expired"), "{pkce}");
    // Failures count against the sign-in limits of every flow: the address is slowed down.
    let mut limited = false;
    for _ in 0..8 {
        if curl(&[&format!("{}/auth/oidc/corp/callback?code=x&state=y", gw.url)])?.contains("RateLimited") {
            limited = true;
            break;
        }
    }
    ensure!(limited, "repeated failures are rate limited");
    let audit = gw.audit()?;
    for code in ["GrantRejected", "StateMismatch", "RateLimited"] {
        ensure!(
            audit.iter().any(|r| r["event"] == "sign-in" && r["reasonCode"] == code),
            "{code} is audited"
        );
    }

    // The portal: "Sign in with corp", then an SSH terminal to a VM ops may reach.
    let Some(local) = LocalUser::create("sso")? else {
        println!("SKIPPED (portal terminal): password sign-in to sshd needs root");
        return Ok(());
    };
    // Loopback is now rate limited at this gateway, as it should be: the portal part runs
    // against a fresh gateway and provider.
    drop(gw);
    let (gw, idp) = gateway_with_provider(&[])?;
    idp.set_accounts(&[("alice", &["ops"]), ("carol", &["dev"])])?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let port = sshd.port.to_string();
    gw.ok(&[
        "vm",
        "register",
        "-n",
        "web1",
        "-g",
        "apps",
        "--os-type",
        "linux",
        "--private-ip-address",
        "127.0.0.1",
        "--port-ssh",
        &port,
    ])?;
    let vm: serde_json::Value = serde_json::from_str(&gw.ok(&["vm", "show", "-n", "web1", "-g", "apps"])?)?;
    let vm_id = vm["id"].as_str().context("vm id")?.to_string();
    let bastion: serde_json::Value =
        serde_json::from_str(&gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    let bastion_id = bastion["id"].as_str().context("bastion id")?.to_string();
    let apps = vm_id.split("/providers/").next().context("vm scope")?.to_string();
    gw.ok(&["ad", "group", "create", "--external-id", "ops", "--identity-provider", "corp"])?;
    for scope in [DEFAULT, apps.as_str()] {
        gw.ok(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            "ops@corp",
            "--role",
            "Reader",
            "--scope",
            scope,
        ])?;
    }
    let portal = |user: &str, expect: &str| -> Result<String> {
        let script = rampart_e2e::spawn_browser_script(
            "sso.mjs",
            &[
                ("MODE", "portal".into()),
                ("RAMPART_URL", gw.url()),
                ("IDP_URL", idp.issuer.clone()),
                ("IDP_USER", user.into()),
                ("EXPECT", expect.into()),
                ("VM_ID", vm_id.clone()),
                ("CONNECT_PATH", format!("/portal/connect?bastion={}", url_encode(&bastion_id))),
                ("SSH_USER", local.name.clone()),
                ("SSH_PASSWORD", local.password.clone()),
                ("ARTIFACTS", out.display().to_string()),
            ],
        )?;
        rampart_e2e::finish_browser_script(script, Duration::from_secs(120))
    };
    let alice_run = portal("alice", "connected")?;
    ensure!(alice_run.contains("opened an SSH terminal"), "{alice_run}");
    let carol_run = portal("carol", "refused")?;
    ensure!(carol_run.contains("another group is refused"), "{carol_run}");
    Ok(())
}

/// `curl -sk` on loopback: the answer's body.
fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl").args(["-sk", "--max-time", "20"]).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
