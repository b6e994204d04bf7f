//! The gateway on PostgreSQL (`--store postgres://…`, here through `RAMPART_STORE`), with a
//! cluster this test starts: real OpenSSH through a tunnel, every record in the database, and a
//! second gateway on the same database carrying on with the first one's users, settings and
//! audit chain.

#[path = "../../../crates/rampart-store/tests/support/postgres.rs"]
mod pg;

use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use rampart_e2e::{Gateway, Sshd, audit_has};

#[test]
fn a_gateway_on_postgres_tunnels_and_a_second_one_carries_on_with_its_state() -> Result<()> {
    let cluster = pg::PgCluster::start().map_err(|e| anyhow!(e))?;
    let url = cluster.create_database("e2e").map_err(|e| anyhow!(e))?;
    let sshd = Sshd::start()?;
    {
        let gw = Gateway::start(&[("RAMPART_STORE", &url)])?;
        ensure!(!gw.data_dir.join("rampart.db").exists(), "no SQLite file beside a PostgreSQL store");
        gw.allow_loopback()?;
        let tunnel = gw.tunnel("127.0.0.1", sshd.port)?;
        let hello = sshd.ssh(tunnel.port, "echo hello-through-rampart-on-postgres")?;
        ensure!(hello.trim() == "hello-through-rampart-on-postgres", "ssh printed {hello:?}");
        drop(tunnel);
        let closed = |r: &serde_json::Value| {
            r["event"] == "connection-close" && r["bytesFromTarget"].as_u64().unwrap_or(0) > 0
        };
        let audit = rampart_e2e::wait_until(Duration::from_secs(10), || {
            let audit = gw.audit()?;
            Ok(audit.iter().any(closed).then_some(audit))
        })
        .with_context(|| format!("no close record with bytes: {:?}", gw.audit().unwrap_or_default()))?;
        ensure!(audit_has(&audit, "tunnel-request", "allowed", None), "no tunnel-request record");
        ensure!(gw.ok(&["audit", "verify"])?.contains("intact"));
        ensure!(!gw.log().contains("postgres://rampart@"), "the store URL is not logged");
    }
    // Another gateway, another data directory, the same database: the admin, the bastion's
    // settings (loopback reachable) and the audit chain are all there.
    let gw = Gateway::start(&[("RAMPART_STORE", &url)])?;
    let tunnel = gw.tunnel("127.0.0.1", sshd.port)?;
    let again = sshd.ssh(tunnel.port, "echo again")?;
    ensure!(again.trim() == "again", "ssh printed {again:?}");
    drop(tunnel);
    std::thread::sleep(Duration::from_millis(300));
    let verified = gw.ok(&["audit", "verify"])?;
    ensure!(verified.contains("intact"), "{verified}");
    let tunnels =
        gw.audit()?.iter().filter(|r| r["event"] == "tunnel-request" && r["result"] == "allowed").count();
    ensure!(tunnels >= 2, "both gateways' grants are in one audit log: {tunnels}");
    Ok(())
}
