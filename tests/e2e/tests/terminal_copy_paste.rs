//! `--disable-copy-paste` in the browser terminal (Chromium): a paste reaches the target while
//! copy and paste are on; turned off during the session, a paste is refused by the page and a
//! marked paste sent anyway is dropped by the gateway, while typing still works.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser, Sshd, SshdOptions};

#[test]
fn pastes_follow_the_copy_and_paste_setting() -> Result<()> {
    let Some(local) = LocalUser::create("cp")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let out = rampart_e2e::artifacts("terminal-paste")?;
    let script = rampart_e2e::spawn_browser_script(
        "terminal-paste.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("BASTION_ID", gw.bastion_id()?),
            ("SSH_PORT", sshd.port.to_string()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
        ],
    )?;
    let t = Instant::now();
    while !out.join("pasted-on").exists() {
        ensure!(t.elapsed() < Duration::from_secs(90), "the browser script never pasted");
        std::thread::sleep(Duration::from_millis(100));
    }
    gw.update_bastion("default", &["--disable-copy-paste", "true"])?;
    std::fs::write(out.join("turned-off"), "yes")?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;
    ensure!(text.contains("ok - with copy and paste off, pastes do not reach the target"), "{text}");
    Ok(())
}
