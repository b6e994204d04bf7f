//! An operator sets up access entirely in the portal (web/tests/operator.mjs, real Chromium,
//! real sshd): registers a VM and its network interface, assigns "Virtual Machine User Login"
//! at the VM's scope, and the user connects from the browser; the audit page shows it; a
//! Reader sees the inventory without controls, and the API refuses them the change.

use std::time::Duration;

use anyhow::{Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser, Sshd, SshdOptions};

#[test]
fn an_operator_grants_access_through_the_portal_and_the_user_connects() -> Result<()> {
    let Some(local) = LocalUser::create("op")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    drop(gw.new_user("alice")?);
    let reader = gw.reader("reader")?;
    let bastion = gw.bastion_id()?;

    let out = rampart_e2e::artifacts("portal-operator")?;
    let script = rampart_e2e::spawn_browser_script(
        "operator.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ALICE_PASSWORD", "alice-Passw0rd-long".to_string()),
            ("READER", "reader".to_string()),
            ("READER_PASSWORD", "reader-Passw0rd-long".to_string()),
            ("BASTION_ID", bastion.clone()),
            ("SSH_PORT", sshd.port.to_string()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
            ("ARTIFACTS", out.display().to_string()),
        ],
    )?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(150))?;
    ensure!(text.contains("ok - a Reader sees the inventory on a phone"), "{text}");

    let err = reader.refused(&[
        "vm",
        "register",
        "-n",
        "web2",
        "-g",
        "default",
        "--os-type",
        "linux",
        "--private-ip-address",
        "127.0.0.2",
    ])?;
    ensure!(
        err.contains("virtualMachines/write"),
        "the API refuses the Reader, naming the permission: {err}"
    );
    Ok(())
}
