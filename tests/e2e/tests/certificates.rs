//! The gateway's certificate runs itself: a generated one is valid for a year at most (browsers
//! accept 398 days) and is renewed when a month is left; the operator's certificate files are
//! served anew after they change (SIGHUP, or within seconds on their own) while a tunnel opened
//! before stays up; files that do not form a certificate and key are refused, the one in use stays.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_e2e::{Gateway, Sshd};

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("openssl")?;
    ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A server certificate for 127.0.0.1 (not a CA) as `NAME.pem` with `NAME.key`.
fn server_certificate(dir: &Path, name: &str, days: u32) -> Result<()> {
    let (cert, key, days) = (format!("{name}.pem"), format!("{name}.key"), days.to_string());
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            &days,
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
    )
}

/// The fingerprint of the certificate a new TLS connection to the gateway is given, as the
/// gateway prints it (`SHA256:AB:…`).
fn served(gw: &Gateway) -> Result<String> {
    let script = format!(
        "openssl s_client -connect {} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        gw.addr
    );
    let out = Command::new("sh").args(["-c", &script]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.trim().rsplit('=').next().unwrap_or_default().to_uppercase();
    Ok(format!("SHA256:{hex}"))
}

fn fingerprint_of(dir: &Path, cert: &str) -> Result<String> {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", cert])
        .current_dir(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(format!("SHA256:{}", text.trim().rsplit('=').next().unwrap_or_default().to_uppercase()))
}

fn wait_served(gw: &Gateway, wanted: &str, within: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        let now = served(gw)?;
        if now == wanted {
            return Ok(());
        }
        ensure!(t.elapsed() < within, "the gateway still serves {now}, not {wanted}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Puts `NAME.pem`/`NAME.key` in place of the served files, key first, each by a rename.
fn install(dir: &Path, name: &str) -> Result<()> {
    std::fs::copy(dir.join(format!("{name}.key")), dir.join("next.key"))?;
    std::fs::copy(dir.join(format!("{name}.pem")), dir.join("next.pem"))?;
    std::fs::rename(dir.join("next.key"), dir.join("served.key"))?;
    std::fs::rename(dir.join("next.pem"), dir.join("served.pem"))?;
    Ok(())
}

#[test]
fn replaced_certificate_files_are_served_while_a_tunnel_stays_up() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    for name in ["first", "second"] {
        server_certificate(d, name, 90)?;
    }
    install(d, "first")?;
    let (cert, key) = (d.join("served.pem"), d.join("served.key"));
    let gw = Gateway::start(&[
        ("RAMPART_TLS_CERT", cert.to_str().context("path")?),
        ("RAMPART_TLS_KEY", key.to_str().context("path")?),
        ("RAMPART_LOG", "info"),
    ])?;
    gw.allow_loopback()?;
    let sshd = Sshd::start()?;
    let tunnel = gw.tunnel("127.0.0.1", sshd.port)?;
    ensure!(sshd.ssh(tunnel.port, "echo before")?.trim() == "before");
    let first = fingerprint_of(d, "first.pem")?;
    ensure!(served(&gw)? == first && gw.fingerprint == first, "the given certificate is served");

    // SIGHUP: the new files are served to new connections at once.
    install(d, "second")?;
    let second = fingerprint_of(d, "second.pem")?;
    let pid = gw.process.child.id().to_string();
    ensure!(Command::new("kill").args(["-HUP", &pid]).status()?.success());
    wait_served(&gw, &second, Duration::from_secs(5))?;
    ensure!(
        sshd.ssh(tunnel.port, "echo after")?.trim() == "after",
        "the tunnel opened before the change still carries new connections"
    );
    ensure!(gw.log().contains(&second), "the change is logged with the new fingerprint");

    // Files that are not a certificate and its key are refused; the one in use stays.
    // The file's time set back: the gateway's look every few seconds sees no change, so only
    // the signal can be what reads the new key.
    let before = std::fs::metadata(d.join("served.key"))?.modified()?;
    std::fs::copy(d.join("first.key"), d.join("served.key"))?;
    std::fs::File::options().write(true).open(d.join("served.key"))?.set_modified(before)?;
    let refusals = gw.log().matches("refused").count();
    ensure!(Command::new("kill").args(["-HUP", &pid]).status()?.success());
    rampart_e2e::wait_until(Duration::from_secs(10), || {
        Ok((gw.log().matches("refused").count() > refusals).then_some(()))
    })
    .with_context(|| format!("the refusal is logged: {}", gw.log()))?;
    ensure!(served(&gw)? == second, "a key that does not match is refused");

    // Without a signal: files that change are looked at every few seconds.
    std::fs::copy(d.join("first.pem"), d.join("served.pem"))?;
    wait_served(&gw, &first, Duration::from_secs(15))?;
    drop(tunnel);
    Ok(())
}

#[test]
fn a_generated_certificate_lasts_a_year_and_is_renewed_near_its_end() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let tls = gw.data_dir.join("tls");
    let expires_within = |seconds: u64| -> Result<bool> {
        let status = Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &seconds.to_string(), "-in", "cert.pem"])
            .current_dir(&tls)
            .output()?
            .status;
        Ok(!status.success())
    };
    ensure!(expires_within(398 * 86_400)?, "valid for at most 398 days");
    ensure!(!expires_within(300 * 86_400)?, "and for most of a year");

    // A generated certificate with ten days left is renewed at the next start.
    let mut gw = gw;
    gw.process.terminate()?;
    openssl(
        &tls,
        &[
            "req",
            "-x509",
            "-key",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "10",
            "-subj",
            "/CN=localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    )?;
    let old = fingerprint_of(&tls, "cert.pem")?;
    let again = Gateway::start_in(&gw.data_dir, &gw.admin.config_dir, &[])?;
    ensure!(again.fingerprint != old, "the renewed certificate is printed at start");
    ensure!(!expires_within(300 * 86_400)?, "the renewed certificate lasts a year again");
    ensure!(served(&again)? == again.fingerprint, "and is served");
    drop(again);
    Ok(())
}

/// Debian's testssl.sh, headers only, no DNS: a fresh gateway sends HSTS (a year).
#[test]
fn testssl_finds_hsts_on_a_fresh_gateway() -> Result<()> {
    ensure!(
        Path::new("/usr/bin/testssl").exists(),
        "/usr/bin/testssl is missing: the README's test command installs testssl.sh"
    );
    let gw = Gateway::start(&[])?;
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("testssl.json");
    let out = Command::new("timeout")
        .args([
            "120",
            "testssl",
            "--quiet",
            "--nodns",
            "none",
            "--headers",
            "--warnings",
            "off",
            "--jsonfile",
        ])
        .arg(&json)
        .arg(gw.url())
        .output()?;
    ensure!(out.status.success(), "testssl: {}", String::from_utf8_lossy(&out.stdout));
    let findings: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let hsts = findings.iter().find(|f| f["id"] == "HSTS_time").context("testssl reports no HSTS finding")?;
    let said = hsts["finding"].as_str().unwrap_or_default();
    ensure!(said.contains("31536000"), "HSTS for a year: {said}");
    ensure!(hsts["severity"] == "OK", "testssl rates it OK: {hsts}");
    Ok(())
}
