//! Shareable links (web/tests/share.mjs, real Chromium, real sshd): a link made with the CLI
//! opens a terminal to its one VM for someone without an account, deleting it ends that
//! terminal and the link, an expired link is refused, a Basic bastion refuses to make one
//! naming its tier, and every use is audited under the link's id.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rampart_e2e::{Gateway, LocalUser, Sshd, SshdOptions};

fn vm_id(gw: &Gateway, name: &str) -> Result<String> {
    let shown: serde_json::Value =
        serde_json::from_str(&gw.ok(&["vm", "show", "-n", name, "-g", "default"])?)?;
    Ok(shown["id"].as_str().context("vm id")?.to_string())
}

fn make_link(gw: &Gateway, vm: &str, extra: &[&str]) -> Result<serde_json::Value> {
    let args =
        [
            &[
                "network",
                "bastion",
                "shareable-link",
                "create",
                "-n",
                "default",
                "-g",
                "default",
                "--vms",
                vm,
            ][..],
            extra,
            &["-o", "json"],
        ]
        .concat();
    let made: serde_json::Value = serde_json::from_str(&gw.ok(&args)?)?;
    Ok(made[0].clone())
}

#[test]
fn a_shareable_link_opens_its_vm_until_deleted_or_expired() -> Result<()> {
    let Some(local) = LocalUser::create("sl")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let port = sshd.port.to_string();
    for (name, ip) in [("web", "127.0.0.1"), ("other", "127.0.0.3")] {
        let register = ["vm", "register", "-n", name, "-g", "default", "--os-type", "linux"];
        gw.ok(&[&register[..], &["--private-ip-address", ip, "--port-ssh", &port]].concat())?;
    }
    let (web, other) = (vm_id(&gw, "web")?, vm_id(&gw, "other")?);

    // Off by default: the setting names itself.
    let off = gw.refused(&[
        "network",
        "bastion",
        "shareable-link",
        "create",
        "-n",
        "default",
        "-g",
        "default",
        "--vms",
        &web,
    ])?;
    ensure!(off.contains("--enable-shareable-link"), "{off}");
    gw.update_bastion("default", &["--enable-shareable-link", "true"])?;
    let link = make_link(&gw, &web, &[])?;
    let bsl = link["bsl"].as_str().context("the link is shown once")?.to_string();
    let link_id = link["id"].as_str().context("link id")?.to_string();
    let expiring = make_link(&gw, &web, &["--expires-in", "PT2S"])?;
    let expires = std::time::Instant::now() + Duration::from_secs(3);
    let listed = gw.ok(&[
        "network",
        "bastion",
        "shareable-link",
        "list",
        "-n",
        "default",
        "-g",
        "default",
        "-o",
        "json",
    ])?;
    ensure!(listed.contains(&link_id) && !listed.contains(&bsl), "listed without the link itself: {listed}");

    let out = rampart_e2e::artifacts("shareable-link")?;
    let script = rampart_e2e::spawn_browser_script(
        "share.mjs",
        &[
            ("LINK", bsl.clone()),
            ("EXPIRED_LINK", expiring["bsl"].as_str().context("second link")?.to_string()),
            ("VM_NAME", "web".to_string()),
            ("OTHER_VM_ID", other.clone()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
            ("ARTIFACTS", out.display().to_string()),
        ],
    )?;
    let script = rampart_e2e::wait_for_flag(&out.join("connected"), script, Duration::from_secs(90))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.log()))?;
    gw.ok(&[
        "network",
        "bastion",
        "shareable-link",
        "delete",
        "-n",
        "default",
        "-g",
        "default",
        "--tokens",
        &bsl,
    ])?;
    // The script tries the expired link next: past its expiry whatever this machine's speed.
    std::thread::sleep(expires.saturating_duration_since(std::time::Instant::now()));
    std::fs::write(out.join("deleted"), "yes")?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;
    ensure!(text.contains("ok - an expired link stops working"), "{text}");

    // Every use is audited under the link's id, and went to the link's VM only.
    let audit = gw.audit()?;
    let who = format!("shareable-link:{link_id}");
    let opens: Vec<_> =
        audit.iter().filter(|r| r["event"] == "connection-open" && r["user"] == who.as_str()).collect();
    ensure!(!opens.is_empty(), "the link's session is audited under its id");
    ensure!(
        opens.iter().all(|r| r["targetResourceId"] == web.as_str() && r["targetIp"] != "127.0.0.3"),
        "only the link's VM was reached: {opens:?}"
    );
    let expired_id = expiring["id"].as_str().context("second link's id")?;
    ensure!(
        audit.iter().any(|r| r["event"] == "connection-open"
            && r["result"] == "refused"
            && r["user"] == format!("shareable-link:{expired_id}").as_str()
            && r["reasonCode"] == "ShareableLinkExpired"),
        "the expired link's refused use is audited under its id"
    );
    ensure!(
        audit.iter().any(|r| r["event"] == "shareable-link"
            && r["reason"].as_str().is_some_and(|t| t.contains("deleted") && t.contains(&link_id))),
        "the deletion is audited"
    );

    // Basic has no shareable links: refused naming the tier.
    gw.ok(&[
        "network",
        "bastion",
        "create",
        "-n",
        "basic",
        "-g",
        "default",
        "--sku",
        "Basic",
        "--enable-tunneling",
        "false",
    ])?;
    let basic = gw.refused(&[
        "network",
        "bastion",
        "shareable-link",
        "create",
        "-n",
        "basic",
        "-g",
        "default",
        "--vms",
        &web,
    ])?;
    ensure!(basic.contains("tier Basic does not include shareable links"), "{basic}");

    // A link is a form anyone may post to: attempts are limited per link and address.
    let spare = make_link(&gw, &web, &[])?;
    let spare = spare["bsl"].as_str().context("spare link")?.to_string();
    let mut codes = Vec::new();
    for _ in 0..11 {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--data",
                "protocol=none&username=x&auth=password",
                &spare,
            ])
            .output()?;
        codes.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    ensure!(
        codes[..10].iter().all(|c| c == "400") && codes[10] == "429",
        "ten attempts a minute, then 429: {codes:?}"
    );
    Ok(())
}
