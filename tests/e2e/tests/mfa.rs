//! Two-step sign-in of local accounts (TOTP, RFC 6238): enrolment from the CLI, sign-in refused
//! without a code, with a wrong one, and with a used one, on the CLI and the portal's sign-in
//! page; recovery codes used once; and `require_mfa` refusing a covered account everything
//! but enrolling, tunnels included. Codes are computed here with totp-rs from the secret the
//! gateway printed, as an authenticator app would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, ensure};
use rampart_e2e::{Gateway, Session};

const DEFAULT: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

fn code_at(secret: &str, unix: u64) -> Result<String> {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).map_err(|e| anyhow::anyhow!("{e:?}"))?)
        .with_digits(6)
        .with_step_duration(30)
        .build()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(totp.generate(unix).to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Waits until the current 30 s step has at least 8 s left, so the steps this test names
/// (the previous, the current, the next) stay valid while it runs.
fn settle() {
    while now() % 30 >= 22 {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `rampart login -u USER --password-stdin [--mfa-code CODE]` (standard input is no terminal).
fn login(session: &Session, user: &str, code: Option<&str>) -> Result<Output> {
    let mut cmd = session.cli();
    cmd.args([
        "login",
        "--server",
        &session.url,
        "--fingerprint",
        &session.fingerprint,
        "-u",
        user,
        "--password-stdin",
    ]);
    if let Some(c) = code {
        cmd.args(["--mfa-code", c]);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{user}-Passw0rd-long")?;
    }
    Ok(child.wait_with_output()?)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Enrols the signed-in user: returns the secret and the recovery codes.
fn enrol(session: &Session) -> Result<(String, Vec<String>)> {
    let started: serde_json::Value = serde_json::from_str(&session.ok(&["ad", "user", "mfa", "enable"])?)?;
    let uri = started["otpauthUri"].as_str().context("otpauthUri")?;
    ensure!(uri.starts_with("otpauth://totp/Rampart:") && uri.contains("issuer=Rampart"), "{uri}");
    let secret = started["secret"].as_str().context("secret")?.to_string();
    let wrong = session.refused(&["ad", "user", "mfa", "verify", "--code", "000000"])?;
    ensure!(wrong.contains("MfaCodeInvalid") || code_at(&secret, now())? == "000000", "{wrong}");
    // Enrolled with the previous step's code (valid with one step of skew), so the current
    // step is still unused for the sign-ins that follow.
    settle();
    let done: serde_json::Value = serde_json::from_str(&session.ok(&[
        "ad",
        "user",
        "mfa",
        "verify",
        "--code",
        &code_at(&secret, now() - 30)?,
    ])?)?;
    let codes: Vec<String> = done["recoveryCodes"]
        .as_array()
        .context("recovery codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    ensure!(codes.len() == 10, "ten recovery codes: {done}");
    Ok((secret, codes))
}

/// The portal's sign-in form: the HTTP status it answers (303 signed in, 401 refused).
fn portal_sign_in(gw: &Gateway, user: &str, code: &str) -> Result<String> {
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{}/portal/signin", gw.url))
        .args(["--data-urlencode", &format!("username={user}")])
        .args(["--data-urlencode", &format!("password={user}-Passw0rd-long")])
        .args(["--data-urlencode", &format!("mfa_code={code}")])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn totp_is_asked_for_checked_and_used_once() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let user = "mfa@example.com";
    let session = gw.new_user(user)?;
    let (secret, recovery) = enrol(&session)?;

    // The CLI without a terminal: refused with what to pass.
    let cli = gw.signed_out()?;
    let none = login(&cli, user, None)?;
    ensure!(!none.status.success() && stderr(&none).contains("--mfa-code"), "{}", stderr(&none));
    let current = code_at(&secret, now())?;
    let wrong = if current == "123456" { "654321" } else { "123456" };
    let bad = login(&cli, user, Some(wrong))?;
    ensure!(!bad.status.success() && stderr(&bad).contains("MfaCodeInvalid"), "{}", stderr(&bad));
    let good = login(&cli, user, Some(&current))?;
    ensure!(good.status.success(), "a valid code signs in: {}", stderr(&good));
    let again = login(&cli, user, Some(&current))?;
    ensure!(!again.status.success() && stderr(&again).contains("MfaCodeReused"), "{}", stderr(&again));

    // The portal's sign-in page: refused without a code, in with the next step's (valid with
    // one step of skew, and later than the step just used).
    ensure!(portal_sign_in(&gw, user, "")? == "401", "the portal asks for the code");
    ensure!(portal_sign_in(&gw, user, wrong)? == "401", "the portal refuses a wrong code");
    let next = code_at(&secret, now() + 30)?;
    ensure!(portal_sign_in(&gw, user, &next)? == "303", "the portal signs in with a valid code");
    ensure!(portal_sign_in(&gw, user, &next)? == "401", "and not twice with it");

    // A recovery code signs in once.
    ensure!(login(&cli, user, Some(&recovery[0]))?.status.success(), "a recovery code signs in");
    let reused = login(&cli, user, Some(&recovery[0]))?;
    ensure!(!reused.status.success() && stderr(&reused).contains("MfaCodeInvalid"), "{}", stderr(&reused));

    // Every refusal is audited with its reason.
    let audit = gw.audit()?;
    for code in ["MfaRequired", "MfaCodeInvalid", "MfaCodeReused"] {
        ensure!(
            audit
                .iter()
                .any(|r| r["event"] == "sign-in" && r["result"] == "refused" && r["reasonCode"] == code),
            "{code} is audited"
        );
    }
    // Turning it off needs a code; an administrator can reset it.
    let off = gw.signed_out()?;
    ensure!(login(&off, user, Some(&recovery[1]))?.status.success(), "signed in to turn it off");
    let refused = off.refused(&["ad", "user", "mfa", "disable", "--code", wrong])?;
    ensure!(refused.contains("MfaCodeInvalid"), "{refused}");
    gw.ok(&["ad", "user", "mfa", "reset", "--id", user])?;
    ensure!(login(&cli, user, None)?.status.success(), "after a reset the password alone signs in");
    Ok(())
}

#[test]
fn require_mfa_refuses_covered_accounts_until_they_enrol() -> Result<()> {
    let gw = Gateway::start(&[("RAMPART_REQUIRE_MFA", "roles:Reader")])?;
    gw.allow_loopback()?;
    let user = "reader-mfa@example.com";
    let session = gw.new_user(user)?;
    gw.ok(&["role", "assignment", "create", "--assignee", user, "--role", "Reader", "--scope", DEFAULT])?;
    let refused = session.refused(&["network", "bastion", "list", "--subscription", "default"])?;
    ensure!(refused.contains("MfaEnrollmentRequired") && refused.contains("mfa enable"), "{refused}");
    let tunnel = session.refused(&[
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
        "22",
        "--port",
        "0",
        "--subscription",
        "default",
    ])?;
    ensure!(tunnel.contains("MfaEnrollmentRequired"), "a tunnel is refused too: {tunnel}");
    // Enrolling is allowed, and then everything else is.
    let (secret, _) = enrol(&session)?;
    ensure!(
        session.ok(&["network", "bastion", "list", "--subscription", "default"])?.contains("default"),
        "enrolled"
    );
    let fresh = gw.signed_out()?;
    let out = login(&fresh, user, Some(&code_at(&secret, now() + 30)?))?;
    ensure!(out.status.success(), "{}", stderr(&out));
    // The administrator (Owner, not covered) was never asked.
    gw.ok(&["network", "bastion", "list"])?;
    Ok(())
}

#[test]
fn a_passkey_signs_in_through_chromiums_virtual_authenticator() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let user = "passkey@example.com";
    gw.new_user(user)?;
    let out = rampart_e2e::repo_root().join("target/e2e-artifacts/passkeys");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    // By name: WebAuthn's relying party is a DNS name, never an IP address.
    let by_name = gw.url.replace("127.0.0.1", "localhost");
    let script = rampart_e2e::spawn_browser_script(
        "passkeys.mjs",
        &[
            ("RAMPART_URL", by_name),
            ("PORTAL_USER", user.into()),
            ("PORTAL_PASSWORD", format!("{user}-Passw0rd-long")),
            ("ARTIFACTS", out.display().to_string()),
        ],
    )?;
    let text = rampart_e2e::finish_browser_script(script, std::time::Duration::from_secs(90))?;
    ensure!(text.contains("signed in with the passkey alone"), "{text}");
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["event"] == "sign-in" && r["result"] == "allowed" && r["reason"] == "passkey"),
        "the passkey sign-in is audited"
    );
    // The same over an IP address: refused with the reason, not a browser error.
    let refused = Command::new("curl")
        .args([
            "-sk",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data",
            &format!("{{\"username\":\"{user}\"}}"),
        ])
        .arg(format!("{}/portal/passkeys/login/start", gw.url))
        .output()?;
    let body = String::from_utf8_lossy(&refused.stdout);
    ensure!(body.contains("PasskeysNeedAName"), "{body}");
    Ok(())
}
