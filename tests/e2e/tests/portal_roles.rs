//! Role assignments in the portal, in real Chromium (web/tests/roles.mjs): assign and remove,
//! refusals shown with their reason, a Reader's read-only view; and the API refuses the Reader
//! the change the page does not offer.

use std::time::Duration;

use anyhow::{Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

#[test]
fn owners_assign_and_remove_roles_in_the_portal_and_readers_only_read() -> Result<()> {
    let gw = Gateway::start(&[])?;
    drop(gw.new_user("alice")?);
    let reader = gw.reader("reader")?;
    let group = format!("{}/resourceGroups/default", gw.subscription_scope()?);

    let out = rampart_e2e::artifacts("portal-roles")?;
    let script = rampart_e2e::spawn_browser_script(
        "roles.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("READER", "reader".to_string()),
            ("READER_PASSWORD", "reader-Passw0rd-long".to_string()),
            ("SCOPE", group.clone()),
            ("ARTIFACTS", out.display().to_string()),
        ],
    )?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(120))?;
    ensure!(text.contains("ok - the Owner removes the assignment"), "{text}");

    let err = reader.refused(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "alice",
        "--role",
        "Reader",
        "--scope",
        &group,
    ])?;
    ensure!(
        err.contains("roleAssignments/write"),
        "the API refuses the Reader, naming the permission: {err}"
    );
    let audit = gw.audit()?;
    ensure!(
        rampart_e2e::audit_has(&audit, "role-change", "allowed", None)
            && rampart_e2e::audit_has(&audit, "role-change", "refused", Some("LastAccessManager")),
        "the changes and the refusal are audited"
    );
    Ok(())
}
