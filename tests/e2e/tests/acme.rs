//! `--acme-domain`: the gateway gets its certificate from an ACME CA (Debian's pebble, Let's
//! Encrypt's test server) by TLS-ALPN-01 on its own listening port, serves it (a client that
//! trusts only that CA connects by the domain name), and serves it again at the next start
//! without ordering another.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_e2e::pebble::Pebble;
use rampart_e2e::{Gateway, free_port};

const DOMAIN: &str = "gw.test";

/// `curl` to the gateway by its domain name (resolved to loopback), trusting only `root`.
fn healthz_by_name(port: u16, root: &Path) -> Result<std::process::Output> {
    Ok(Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{DOMAIN}:{port}:127.0.0.1")])
        .arg(format!("https://{DOMAIN}:{port}/healthz"))
        .output()?)
}

/// The fingerprint (`SHA256:AB:…`) of the certificate served to a connection naming the domain.
fn served(port: u16) -> Result<String> {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {DOMAIN} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    );
    let out = Command::new("sh").args(["-c", &script]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(format!("SHA256:{}", text.trim().rsplit('=').next().unwrap_or_default().to_uppercase()))
}

#[test]
fn a_certificate_from_pebble_is_served_and_kept_across_restarts() -> Result<()> {
    let port = free_port();
    let pebble = Pebble::start(port)?;
    let listen = format!("127.0.0.1:{port}");
    let ca = pebble.https_ca.to_str().context("path")?.to_string();
    let directory = pebble.directory.clone();
    let env = [
        ("RAMPART_LISTEN", listen.as_str()),
        ("RAMPART_ACME_DOMAIN", DOMAIN),
        ("RAMPART_ACME_EMAIL", "ops@example.com"),
        ("RAMPART_ACME_DIRECTORY", directory.as_str()),
        ("RAMPART_ACME_CA_FILE", ca.as_str()),
        ("RAMPART_LOG", "info"),
    ];
    // Not signed in: a sign-in pins the fingerprint, which the ACME certificate replaces.
    let (data, config) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let gw = Gateway::start_in(data.path(), config.path(), &env)?;
    let generated = gw.fingerprint.clone();

    let t = Instant::now();
    while !gw.log().contains("the ACME certificate is installed") {
        ensure!(t.elapsed() < Duration::from_secs(60), "no ACME certificate within 60 s: {}", gw.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let issued = served(port)?;
    ensure!(issued != generated, "the issued certificate replaced the generated one");
    ensure!(gw.log().contains(&issued), "the new fingerprint is logged");
    let root = pebble.issuing_root()?;
    let out = healthz_by_name(port, &root)?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "a client trusting only the ACME CA reaches the gateway by name: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(gw.log().contains("answered an ACME TLS-ALPN-01 validation"), "validated on the listening port");

    // The next start serves the issued certificate from its first connection, and orders none.
    let mut gw = gw;
    gw.process.terminate()?;
    let again = Gateway::start_in(data.path(), config.path(), &env)?;
    ensure!(again.fingerprint == issued, "the restarted gateway prints the issued certificate's fingerprint");
    ensure!(served(port)? == issued, "and serves it");
    ensure!(healthz_by_name(port, &root)?.status.success(), "still trusted by name");
    std::thread::sleep(Duration::from_secs(1));
    ensure!(again.log().matches("ordering a certificate").count() == 1, "no second order: {}", again.log());
    drop(pebble);
    drop(again);
    drop(gw);
    Ok(())
}

#[test]
fn acme_settings_that_cannot_work_stop_the_start_with_the_reason() -> Result<()> {
    let data = tempfile::tempdir()?;
    for (domain, wanted) in [("127.0.0.1", "a DNS name"), ("localhost", "a DNS name")] {
        let out = Command::new(rampart_e2e::rampart_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--acme-domain", domain])
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && err.contains(wanted), "{domain}: {err}");
    }
    Ok(())
}
