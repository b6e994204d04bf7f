//! Live join of a browser terminal in Chromium: an operator watches (the user is told, the
//! watcher sees the user's typing and cannot type), then joins to interact and types a command
//! the user sees; each join is audited.

use std::time::Duration;

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
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let user = "watched@example.com";
    gw.new_user(user)?;
    gw.ok(&["role", "assignment", "create", "--assignee", user, "--role", "Reader", "--scope", BASTION])?;
    let bastion: serde_json::Value =
        serde_json::from_str(&gw.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    let out = rampart_e2e::repo_root().join("target/e2e-artifacts/live-join");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let script = rampart_e2e::spawn_browser_script(
        "join.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("BASTION_ID", bastion["id"].as_str().context("bastion id")?.to_string()),
            ("PORTAL_USER", user.into()),
            ("PORTAL_PASSWORD", format!("{user}-Passw0rd-long")),
            ("SSH_PORT", sshd.port.to_string()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
        ],
    )?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(120))?;
    ensure!(text.contains("the operator types a command the user sees"), "{text}");
    let joins: Vec<serde_json::Value> =
        gw.audit()?.into_iter().filter(|r| r["event"] == "session-join").collect();
    ensure!(joins.len() >= 2, "each join is audited: {joins:?}");
    ensure!(
        joins.iter().any(|r| r["reason"].as_str().is_some_and(|x| x.contains("(interact)"))),
        "the mode is in the record"
    );
    Ok(())
}
