//! The native client against real OpenSSH: `rampart ssh` with a key, a password and an
//! identity certificate, host-key pinning, ProxyCommand mode and a generated ssh config.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rampart_e2e::{Gateway, LocalUser, Session, Sshd, SshdOptions, rampart_bin};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VM: &str =
    "/subscriptions/default/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/web1";

fn setup(gw: &Gateway, sshd: &Sshd) -> Result<()> {
    gw.allow_loopback()?;
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
        &sshd.port.to_string(),
    ])?;
    Ok(())
}

/// `rampart ssh` as `session`, to a target, with extra args; returns the finished process.
fn rampart_ssh(session: &Session, target: &[&str], port: u16, auth: &[&str], remote: &str) -> Result<Output> {
    let mut cmd = session.cli();
    cmd.args(["ssh", "-n", "default", "-g", "default", "--resource-port", &port.to_string()])
        .args(target)
        .args(auth)
        .args(["--", "-o", "BatchMode=yes", remote])
        .stdin(Stdio::null());
    Ok(cmd.output()?)
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn ssh_with_a_key_by_resource_id_and_by_ip_pins_host_keys_and_returns_exit_codes() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let mut sshd = Sshd::start()?;
    setup(&gw, &sshd)?;
    let key = sshd.dir.path().join("userkey").to_str().unwrap_or_default().to_string();
    let user = sshd.user.clone();
    let auth = ["--auth-type", "ssh-key", "--username", &user, "--ssh-key", &key];
    for target in [["--target-resource-id", VM], ["--target-ip-address", "127.0.0.1"]] {
        let mut with_pin = auth.to_vec();
        with_pin.extend(["--strict-host-key-checking", "accept-new"]);
        let out = rampart_ssh(&gw, &target, sshd.port, &with_pin, "echo hello; exit 3")?;
        ensure!(
            out.status.code() == Some(3),
            "ssh's exit code was not passed on: {:?} {}",
            out.status,
            text(&out)
        );
        ensure!(String::from_utf8_lossy(&out.stdout).trim() == "hello", "{}", text(&out));
        // Pinned now: strict checking passes.
        let mut strict = auth.to_vec();
        strict.extend(["--strict-host-key-checking", "yes"]);
        let out = rampart_ssh(&gw, &target, sshd.port, &strict, "true")?;
        ensure!(out.status.success(), "the pinned host key was not accepted: {}", text(&out));
    }
    let known = std::fs::read_to_string(gw.config_dir.join("known_hosts"))?;
    ensure!(
        known.contains(&format!("rampart:{}", VM.to_ascii_lowercase())),
        "no pin under the resource ID: {known}"
    );

    // A changed host key is refused, loudly.
    sshd.restart_with_new_host_key()?;
    let mut strict = auth.to_vec();
    strict.extend(["--strict-host-key-checking", "yes"]);
    let out = rampart_ssh(&gw, &["--target-resource-id", VM], sshd.port, &strict, "true")?;
    ensure!(!out.status.success(), "a changed host key was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || err.contains("Host key verification failed"),
        "{err}"
    );
    Ok(())
}

#[test]
fn ssh_with_a_password_for_a_throwaway_user() -> Result<()> {
    if Command::new("sshpass").arg("-V").output().is_err() {
        println!("SKIPPED: password sign-in needs sshpass");
        return Ok(());
    }
    let Some(user) = LocalUser::create("rp")? else {
        println!("SKIPPED: password sign-in needs root (to create a local user)");
        return Ok(());
    };
    let (name, password) = (user.name.clone(), user.password.as_str());

    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    setup(&gw, &sshd)?;
    for target in [["--target-resource-id", VM], ["--target-ip-address", "127.0.0.1"]] {
        // sshpass gives ssh the terminal it asks the password on.
        let out = Command::new("sshpass")
            .arg("-e")
            .arg(rampart_bin())
            .env("RAMPART_CONFIG_DIR", &gw.config_dir)
            .env("SSHPASS", password)
            .args(["ssh", "-n", "default", "-g", "default", "--resource-port", &sshd.port.to_string()])
            .args(target)
            .args([
                "--auth-type",
                "password",
                "--username",
                &name,
                "--strict-host-key-checking",
                "accept-new",
            ])
            .args(["--", "whoami"])
            .output()?;
        ensure!(out.status.success(), "password sign-in failed: {}", text(&out));
        ensure!(String::from_utf8_lossy(&out.stdout).trim() == name, "{}", text(&out));
    }
    Ok(())
}

#[test]
fn identity_certificates_follow_the_login_roles() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let ca = gw.ok(&["ssh-ca", "show"])?;
    ensure!(ca.starts_with("ssh-ed25519 "), "{ca}");
    let sshd = Sshd::start_with(SshdOptions { trusted_ca: Some(ca), ..Default::default() })?;
    setup(&gw, &sshd)?;
    let assign = |user: &str, role: &str, scope: &str| {
        gw.ok(&["role", "assignment", "create", "--assignee", user, "--role", role, "--scope", scope])
    };
    let alice = gw.new_user("alice")?;
    assign("alice", "Reader", "/subscriptions/default")?;
    assign("alice", "Virtual Machine Administrator Login", VM)?;
    let bob = gw.new_user("bob")?;
    assign("bob", "Reader", "/subscriptions/default")?;
    assign("bob", "Virtual Machine User Login", "/subscriptions/default/resourceGroups/apps")?;
    let carol = gw.new_user("carol")?;
    assign("carol", "Owner", "/subscriptions/default")?;

    let aad = ["--auth-type", "AAD", "--username", &sshd.user, "--strict-host-key-checking", "accept-new"];
    for target in [["--target-resource-id", VM], ["--target-ip-address", "127.0.0.1"]] {
        let out = rampart_ssh(&alice, &target, sshd.port, &aad, "whoami; exit 4")?;
        ensure!(out.status.code() == Some(4), "identity sign-in failed: {}", text(&out));
        ensure!(String::from_utf8_lossy(&out.stdout).trim() == sshd.user, "{}", text(&out));
    }
    // User Login allows only the user's own name.
    let out = rampart_ssh(&bob, &["--target-resource-id", VM], sshd.port, &aad, "true")?;
    ensure!(
        !out.status.success() && text(&out).contains("Virtual Machine Administrator Login"),
        "{}",
        text(&out)
    );
    // Owner manages the VM but may not log in to it.
    let out = rampart_ssh(&carol, &["--target-resource-id", VM], sshd.port, &aad, "true")?;
    ensure!(
        !out.status.success()
            && text(&out).contains("Virtual Machine User Login or Virtual Machine Administrator Login"),
        "{}",
        text(&out)
    );
    // An address that belongs to no registered VM has no login roles to apply.
    let out = rampart_ssh(&alice, &["--target-ip-address", "127.0.0.9"], 22, &aad, "true")?;
    ensure!(!out.status.success() && text(&out).contains("needs a registered VM"), "{}", text(&out));
    let audit = gw.audit()?;
    ensure!(audit.iter().any(|r| r["event"] == "ssh-certificate" && r["result"] == "allowed"));
    ensure!(audit.iter().any(|r| r["event"] == "ssh-certificate" && r["result"] == "refused"));
    Ok(())
}

#[test]
fn an_expired_certificate_is_refused_by_sshd() -> Result<()> {
    let gw = Gateway::start(&[("RAMPART_SSH_CERTIFICATE_TTL", "1")])?;
    let ca = gw.ok(&["ssh-ca", "show"])?;
    let sshd = Sshd::start_with(SshdOptions { trusted_ca: Some(ca), ..Default::default() })?;
    setup(&gw, &sshd)?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "admin",
        "--role",
        "Virtual Machine Administrator Login",
        "--scope",
        VM,
    ])?;
    // Ask for a certificate by hand, wait for it to expire, then use it through a tunnel.
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("id");
    ensure!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .status()?
            .success()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let cert: rampart_proto::api::SshCertificate = runtime.block_on(async {
        let api = rampart_client::ApiClient::new(&gw.url(), rampart_client::Trust::Fingerprint(gw.fingerprint.clone()))?;
        api.login("admin", rampart_e2e::ADMIN_PASSWORD).await?;
        let body = rampart_proto::api::SshCertificateRequest {
            bastion_id: "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default".into(),
            target_resource_id: Some(VM.into()),
            target_ip_address: None,
            username: Some(sshd.user.clone()),
            public_key: std::fs::read_to_string(key.with_extension("pub"))?,
        };
        let cert = api
            .request(rampart_client::api::Method::POST, "/api/ssh/certificates", Some(&body))
            .await?
            .context("no certificate")?;
        anyhow::Ok(cert)
    })?;
    std::fs::write(dir.path().join("id-cert.pub"), format!("{}\n", cert.certificate))?;
    std::thread::sleep(Duration::from_millis(2500));
    let tunnel = gw.tunnel_with(&[
        "-n",
        "default",
        "-g",
        "default",
        "--target-resource-id",
        VM,
        "--resource-port",
        &sshd.port.to_string(),
    ])?;
    let out = Command::new("ssh")
        .args(["-p", &tunnel.port.to_string(), "-i"])
        .arg(&key)
        .arg("-o")
        .arg(format!("CertificateFile={}", dir.path().join("id-cert.pub").display()))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", &format!("{}@127.0.0.1", sshd.user), "true"])
        .stdin(Stdio::null())
        .output()?;
    ensure!(!out.status.success(), "sshd accepted an expired certificate");
    let log = std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default();
    ensure!(log.contains("expired") || log.contains("invalid"), "sshd's log does not say why: {log}");
    Ok(())
}

#[test]
fn proxy_command_and_a_generated_ssh_config_move_16_mib_intact() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;
    setup(&gw, &sshd)?;
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("random.bin");
    let mut data = vec![0u8; 16 * 1024 * 1024];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(&source, &data)?;
    let want = hex::encode(Sha256::digest(&data));
    let sha =
        |path: &std::path::Path| -> Result<String> { Ok(hex::encode(Sha256::digest(std::fs::read(path)?))) };
    let key = sshd.dir.path().join("userkey");

    // 1. ssh -o ProxyCommand="rampart ssh-proxy …" (scp over it).
    let proxy = format!(
        "env RAMPART_CONFIG_DIR={} {} ssh-proxy --name default --resource-group default --target-resource-id {VM} --resource-port {}",
        gw.config_dir.display(),
        rampart_bin().display(),
        sshd.port
    );
    let copy1 = dir.path().join("copy1.bin");
    let out = Command::new("scp")
        .arg("-i")
        .arg(&key)
        .args([
            "-o",
            &format!("ProxyCommand={proxy}"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes"])
        .arg(&source)
        .arg(format!("{}@web1:{}", sshd.user, copy1.display()))
        .stdin(Stdio::null())
        .output()?;
    ensure!(out.status.success(), "scp over ProxyCommand failed: {}", text(&out));
    ensure!(sha(&copy1)? == want, "the copy over ProxyCommand differs");

    // 2. A generated ssh config: scp and sftp by the VM's name.
    let config = dir.path().join("ssh_config");
    std::fs::write(&config, "# my own settings stay\nHost other\n  HostName 127.0.0.1\n")?;
    gw.ok(&["ssh", "config", "--file", config.to_str().unwrap_or_default(), "--username", &sshd.user])?;
    let written = std::fs::read_to_string(&config)?;
    ensure!(written.contains("Host web1") && written.contains("# my own settings stay"), "{written}");
    let common = |cmd: &mut Command| {
        cmd.arg("-F").arg(&config).arg("-i").arg(&key);
        cmd.args(["-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes"]).stdin(Stdio::null());
    };
    let copy2 = dir.path().join("copy2.bin");
    let mut scp = Command::new("scp");
    common(&mut scp);
    let out = scp.arg(&source).arg(format!("web1:{}", copy2.display())).output()?;
    ensure!(out.status.success(), "scp through the generated config failed: {}", text(&out));
    ensure!(sha(&copy2)? == want, "the scp copy differs");
    let copy3 = dir.path().join("copy3.bin");
    let batch = dir.path().join("sftp-batch");
    std::fs::write(&batch, format!("get {} {}\n", copy2.display(), copy3.display()))?;
    let mut sftp = Command::new("sftp");
    common(&mut sftp);
    let out = sftp.arg("-b").arg(&batch).arg("web1").output()?;
    ensure!(out.status.success(), "sftp through the generated config failed: {}", text(&out));
    ensure!(sha(&copy3)? == want, "the sftp copy differs");

    // Writing again replaces Rampart's block instead of adding a second one.
    gw.ok(&["ssh", "config", "--file", config.to_str().unwrap_or_default()])?;
    let again = std::fs::read_to_string(&config)?;
    ensure!(again.matches("# BEGIN rampart").count() == 1, "{again}");
    if !again.contains("Host other") {
        bail!("the user's own entries were lost: {again}");
    }
    Ok(())
}
