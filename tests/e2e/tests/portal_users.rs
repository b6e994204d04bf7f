//! Users in the portal, in real Chromium (web/tests/users.mjs): create, refuse a taken name,
//! add a group of a real OpenID provider (npm oidc-provider), delete; a user without roles is refused the page; a Reader reads it without controls.

use std::time::Duration;

use anyhow::{Result, ensure};
use rampart_e2e::idp::Idp;
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

#[test]
fn owners_create_and_delete_users_in_the_portal() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let idp = Idp::start(&[format!("{}/auth/oidc/corp/callback", gw.url)])?;
    idp.register_with(&gw, "corp")?;
    drop(gw.reader("reader")?);
    let out = rampart_e2e::artifacts("portal-users")?;
    let script = rampart_e2e::spawn_browser_script(
        "users.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("READER", "reader".to_string()),
            ("READER_PASSWORD", "reader-Passw0rd-long".to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("PROVIDER", "corp".to_string()),
        ],
    )?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(120))?;
    ensure!(text.contains("ok - the Owner deletes the user, who can no longer sign in"), "{text}");
    ensure!(text.contains("ok - an Owner adds an identity provider's group"), "{text}");
    let groups = gw.ok(&["ad", "group", "list"])?;
    ensure!(groups.contains("ops@corp"), "the group made in the portal is the API's too: {groups}");
    let audit = gw.audit()?;
    ensure!(rampart_e2e::audit_has(&audit, "user-change", "allowed", None), "the changes are audited");
    Ok(())
}
