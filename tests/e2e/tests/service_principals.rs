//! Service principals, az's shape: `ad sp create-for-rbac` prints the credentials once, the
//! principal signs in non-interactively (`login --service-principal -u APPID -p SECRET
//! --tenant T`) and opens a tunnel to real OpenSSH within its scope, is refused outside it
//! naming the missing role, and a credential reset locks the old secret out.

use anyhow::{Result, ensure};
use rampart_e2e::{Gateway, Sshd};

const DEFAULT: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_service_principal_signs_in_and_reaches_only_its_scope() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let settings =
        ["--sku", "Standard", "--enable-ip-connect", "true", "--reachable-networks", "127.0.0.0/8"];
    gw.ok(&[&["network", "bastion", "create", "-n", "other", "-g", "default"][..], &settings[..]].concat())?;
    let sshd = Sshd::start()?;

    let created: serde_json::Value = serde_json::from_str(&gw.ok(&[
        "ad",
        "sp",
        "create-for-rbac",
        "--name",
        "deploy-bot",
        "--role",
        "Reader",
        "--scopes",
        DEFAULT,
    ])?)?;
    let field = |k: &str| created[k].as_str().unwrap_or_default().to_string();
    let (app, secret, tenant) = (field("appId"), field("password"), field("tenant"));
    ensure!(!app.is_empty() && secret.len() >= 32 && !tenant.is_empty(), "{created}");
    ensure!(created["displayName"] == "deploy-bot", "{created}");
    // Listed as a service principal, not as a user; never with its secret.
    let listed = gw.ok(&["ad", "sp", "list"])?;
    ensure!(listed.contains(&app) && !listed.contains(&secret), "{listed}");
    ensure!(!gw.ok(&["ad", "user", "list"])?.contains(&app), "a service principal among the users");

    // A wrong tenant is refused, naming it.
    let bot = gw.signed_out()?;
    let login = |password: &str, tenant: &str| {
        let args = ["login", "--server", &bot.url, "--fingerprint", &bot.fingerprint, "--service-principal"];
        [&args[..], &["-u", &app, "-p", password, "--tenant", tenant]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<String>>()
    };
    let wrong = bot.refused(&as_refs(&login(&secret, "00000000-0000-0000-0000-000000000000")))?;
    ensure!(wrong.contains("TenantMismatch") || wrong.contains("is not this gateway's"), "{wrong}");

    // Not in the browser: the portal's sign-in page refuses it, saying how it signs in.
    let portal = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{}/portal/signin", bot.url))
        .args([
            "--data-urlencode",
            &format!("username={app}"),
            "--data-urlencode",
            &format!("password={secret}"),
        ])
        .output()?;
    let status = String::from_utf8_lossy(&portal.stdout).to_string();
    ensure!(status == "403", "the portal's sign-in answered {status}");

    // Within its scope: a tunnel through the default bastion to real OpenSSH.
    bot.ok(&as_refs(&login(&secret, &tenant)))?;
    let tunnel = bot.tunnel("127.0.0.1", sshd.port)?;
    let out = sshd.ssh(tunnel.port, "echo as-the-bot")?;
    ensure!(out.trim() == "as-the-bot", "{out}");
    // Outside it: the other bastion refuses, naming the role and scope it lacks.
    let refused = bot.refused(&[
        "network",
        "bastion",
        "tunnel",
        "--name",
        "other",
        "--resource-group",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
        &sshd.port.to_string(),
        "--port",
        "0",
    ])?;
    ensure!(refused.to_lowercase().contains("role"), "{refused}");

    // A reset secret: the old one no longer signs in, the new one does.
    let reset: serde_json::Value =
        serde_json::from_str(&gw.ok(&["ad", "sp", "credential", "reset", "--id", &app])?)?;
    let fresh = reset["password"].as_str().unwrap_or_default().to_string();
    ensure!(!fresh.is_empty() && fresh != secret, "{reset}");
    let old = gw.signed_out()?;
    let stale = old.refused(&as_refs(&login(&secret, &tenant)))?;
    ensure!(stale.contains("wrong user name or password"), "{stale}");
    // A secret may begin with '-' on the command line (it is a value, not a flag).
    let dashed = old.refused(&as_refs(&login("-not-the-secret", &tenant)))?;
    ensure!(dashed.contains("wrong user name or password"), "a leading '-' is read as the secret: {dashed}");
    old.ok(&as_refs(&login(&fresh, &tenant)))?;

    // Sign-ins, refusals and the creation are audited.
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["reasonCode"] == "TenantMismatch"),
        "the wrong tenant's sign-in is audited"
    );
    ensure!(
        audit.iter().any(|r| r["reasonCode"] == "NotInteractive"),
        "the portal sign-in's refusal is audited"
    );
    ensure!(
        audit.iter().any(|r| r["reason"]
            .as_str()
            .is_some_and(|x| x.contains("created service principal deploy-bot"))),
        "the creation is audited"
    );
    gw.ok(&["ad", "sp", "delete", "--id", &app])?;
    ensure!(!gw.ok(&["ad", "sp", "list"])?.contains(&app), "deleted");
    Ok(())
}
