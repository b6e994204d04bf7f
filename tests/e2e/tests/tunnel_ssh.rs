//! Real OpenSSH through `rampart tunnel`: a session, eight at once, and a 16 MiB scp.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rampart_e2e::{Gateway, Sshd, audit_has};
use rand::RngCore;
use sha2::{Digest, Sha256};

#[test]
fn ssh_sessions_and_scp_through_the_tunnel() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let sshd = Sshd::start()?;
    gw.allow_loopback()?;
    let tunnel = gw.tunnel("127.0.0.1", sshd.port)?;

    let hello = sshd.ssh(tunnel.port, "echo hello-through-rampart")?;
    ensure!(hello.trim() == "hello-through-rampart", "ssh printed {hello:?}");

    // Eight sessions at once. Each one checks in and then waits (bounded) until all eight
    // have checked in, so each prints 8 only if all eight were connected at the same time.
    let barrier = tempfile::tempdir()?;
    let children: Vec<_> = (0..8)
        .map(|i| {
            let script = format!(
                "touch {dir}/s{i}; for n in $(seq 300); do [ $(ls {dir} | wc -l) -ge 8 ] && break; sleep 0.1; done; ls {dir} | wc -l",
                dir = barrier.path().display()
            );
            sshd.client("ssh", tunnel.port)
                .arg(format!("{}@127.0.0.1", sshd.user))
                .arg(script)
                .stdout(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "concurrent session {i} failed: {:?}", out.status);
        let seen = String::from_utf8_lossy(&out.stdout);
        ensure!(seen.trim() == "8", "session {i} saw {seen:?} sessions at once, not 8");
    }

    // 16 MiB of random bytes with scp, checked by SHA-256.
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("random.bin");
    let mut data = vec![0u8; 16 * 1024 * 1024];
    rand::rng().fill_bytes(&mut data);
    std::fs::write(&source, &data)?;
    let copy = dir.path().join("copy.bin");
    let out = sshd
        .client("scp", tunnel.port)
        .arg(&source)
        .arg(format!("{}@127.0.0.1:{}", sshd.user, copy.display()))
        .output()?;
    ensure!(out.status.success(), "scp failed: {}", String::from_utf8_lossy(&out.stderr));
    let sent = hex::encode(Sha256::digest(&data));
    let received = hex::encode(Sha256::digest(std::fs::read(&copy)?));
    ensure!(sent == received, "scp copy differs: {sent} != {received}");

    // Every connection is audited: open before any byte, close with byte counts.
    drop(tunnel);
    let upload_closed = |audit: &[serde_json::Value]| {
        audit.iter().any(|r| {
            r["event"] == "connection-close" && r["bytesToTarget"].as_u64().unwrap_or(0) >= 16 * 1024 * 1024
        })
    };
    // The last close is written as the gateway sees it: waited for, not assumed.
    let audit = rampart_e2e::wait_until(Duration::from_secs(10), || {
        let audit = gw.audit()?;
        Ok(upload_closed(&audit).then_some(audit))
    })
    .with_context(|| {
        let biggest = gw.audit().unwrap_or_default().iter().filter_map(|r| r["bytesToTarget"].as_u64()).max();
        format!("no close record counts the 16 MiB upload (largest: {biggest:?})")
    })?;
    ensure!(audit_has(&audit, "tunnel-request", "allowed", None), "no tunnel-request record");
    ensure!(
        audit
            .iter()
            .filter(|r| r["event"] == "connection-open")
            .all(|r| r["userAgent"].as_str().is_some_and(|u| u.starts_with("rampart/"))
                && r["protocol"] == "tcptunnel"),
        "connection records lack the client's user agent or the protocol"
    );
    let opens = audit.iter().filter(|r| r["event"] == "connection-open" && r["result"] == "allowed").count();
    ensure!(opens >= 10, "expected ≥ 10 connection-open records, found {opens}");
    Ok(())
}
