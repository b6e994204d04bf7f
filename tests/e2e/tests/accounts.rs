//! `rampart account list|show|set`, `logout`, and what the client keeps on disk.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

#[test]
fn accounts_profile_and_logout() -> Result<()> {
    let gw = Gateway::start(&[])?;

    let list: serde_json::Value = serde_json::from_str(&gw.ok(&["account", "list"])?)?;
    let subs = list.as_array().cloned().unwrap_or_default();
    ensure!(subs.len() == 1, "{list}");
    ensure!(subs[0]["name"] == "default" && subs[0]["isDefault"] == true, "{list}");
    let table = gw.ok(&["account", "list", "--output", "table"])?;
    ensure!(table.lines().next().is_some_and(|h| h.contains("SubscriptionId")), "{table}");

    let err = gw.refused(&["account", "set", "--subscription", "nosuch"])?;
    ensure!(err.contains("'nosuch' was not found"), "{err}");
    gw.ok(&["account", "set", "--subscription", "default"])?;
    let shown: serde_json::Value = serde_json::from_str(&gw.ok(&["account", "show"])?)?;
    ensure!(shown["name"] == "default", "{shown}");

    // The profile holds tokens: owner-only, and never the password.
    let profile = gw.config_dir.join("profile.json");
    let mode = std::fs::metadata(&profile)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "profile mode is {mode:o}");
    ensure!(!std::fs::read_to_string(&profile)?.contains(ADMIN_PASSWORD));

    // `network bastion` and the short form list the same bastion.
    let bastions: serde_json::Value = serde_json::from_str(&gw.ok(&["network", "bastion", "list"])?)?;
    ensure!(bastions[0]["name"] == "default" && bastions[0]["sku"]["name"] == "Standard", "{bastions}");
    ensure!(bastions[0]["enableTunneling"] == true && bastions[0]["enableIpConnect"] == false, "{bastions}");

    gw.ok(&["logout"])?;
    let err = gw.refused(&["account", "list"])?;
    ensure!(err.contains("not signed in"), "{err}");
    Ok(())
}
