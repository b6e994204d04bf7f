//! Three gateway nodes on one PostgreSQL behind a real HAProxy speaking the PROXY protocol
//! (v2, from 127.0.0.9, the only trusted proxy): sign-in and tunnels through the balancer, a
//! role given through node 1 used wherever the tunnel lands, every node's sessions listed on
//! node 3 with the user's own address, a disconnect through node 1 and a role removed through
//! node 3 taking effect within a second; then `kill -9` of the node holding a live tunnel:
//! it is seen lost, its session ended, and the same local port works again through another
//! node.

#[path = "../../../crates/rampart-store/tests/support/postgres.rs"]
mod pg;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use rampart_e2e::{Gateway, Process, Sshd};

const BASTION: &str =
    "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One certificate for every node: through a balancer, the client must see one server.
fn shared_certificate(dir: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=rampart-nodes", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()?;
    ensure!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn haproxy(dir: &Path, port: u16, nodes: &[u16]) -> Result<Process> {
    let mut config = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n\
         frontend lb\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\
         backend nodes\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n"
    );
    // Health checks ask /readyz (503 while a node drains), over TLS, with a PROXY header too.
    for (i, p) in nodes.iter().enumerate() {
        config.push_str(&format!(
            "  server n{i} 127.0.0.1:{p} send-proxy-v2 source 127.0.0.9 check check-ssl verify none check-send-proxy inter 300 fall 2 rise 1\n"
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config)?;
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path).stderr(Stdio::null());
    let process = Process::spawn(cmd, "haproxy")?;
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(t.elapsed() < Duration::from_secs(10), "haproxy did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(process)
}

fn nodes(node: &Gateway) -> Result<Vec<serde_json::Value>> {
    Ok(serde_json::from_str(&node.ok(&["node", "list"])?)?)
}

/// Polls `check` until it yields, or fails after `limit`.
fn within<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if t.elapsed() > limit {
            bail!("{what}: not within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_nodes_behind_haproxy_share_everything_and_survive_a_kill() -> Result<()> {
    if Command::new("haproxy").arg("-v").output().is_err() {
        bail!("haproxy is not installed (./scripts/test.sh installs it)");
    }
    let cluster = pg::PgCluster::start().map_err(|e| anyhow!(e))?;
    let url = cluster.create_database("nodes").map_err(|e| anyhow!(e))?;
    let dir = tempfile::tempdir()?;
    shared_certificate(dir.path())?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = (cert.to_str().context("path")?, key.to_str().context("path")?);
    let start = |name: &str| {
        Gateway::start(&[
            ("RAMPART_STORE", url.as_str()),
            ("RAMPART_NODE_NAME", name),
            ("RAMPART_TLS_CERT", cert),
            ("RAMPART_TLS_KEY", key),
            ("RAMPART_PROXY_PROTOCOL", "true"),
            ("RAMPART_TRUSTED_PROXIES", "127.0.0.9"),
        ])
    };
    // One at a time: the first creates what the others find.
    let mut all = vec![start("node-1")?, start("node-2")?, start("node-3")?];
    let lb_port = free_port()?;
    let _lb = haproxy(dir.path(), lb_port, &all.iter().map(|n| n.addr.port()).collect::<Vec<_>>())?;
    let lb = format!("https://127.0.0.1:{lb_port}");
    let sshd = Sshd::start()?;

    // Everything set up through node 1; bob signs in through the balancer.
    all[0].allow_loopback()?;
    all[0].new_user("bob")?;
    let created: serde_json::Value = serde_json::from_str(&all[0].ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "bob",
        "--role",
        "Reader",
        "--scope",
        BASTION,
    ])?)?;
    let assignment = created["id"].as_str().unwrap_or_default().to_string();
    let bob = all[0].user_via("bob", &lb)?;
    let tunnel = bob.tunnel("127.0.0.1", sshd.port)?;
    ensure!(sshd.ssh(tunnel.port, "echo through-the-balancer")?.trim() == "through-the-balancer");

    // A long ssh session, listed on node 3 with bob's own address (not the balancer's).
    quiet(&all, "bob")?;
    let mut long =
        sshd.client("ssh", tunnel.port).arg(format!("{}@127.0.0.1", sshd.user)).arg("sleep 60").spawn()?;
    let listed = within(Duration::from_secs(10), "node 3 lists bob's session", || {
        Ok(all[2].sessions()?.into_iter().find(|s| s["userName"] == "bob"))
    })?;
    let client = listed["clientAddress"].as_str().unwrap_or_default();
    ensure!(client.starts_with("127.0.0.1:"), "the user's own address, from the PROXY header: {listed}");
    ensure!(listed["nodeName"].as_str().is_some_and(|n| n.starts_with("node-")), "{listed}");

    // Disconnected through node 1: ended at once (3 s allowed on a loaded machine), wherever it runs.
    let id = listed["sessionId"].as_str().unwrap_or_default().to_string();
    let t = Instant::now();
    all[0]
        .ok(&["network", "bastion", "session", "delete", "-n", "default", "-g", "default", "--ids", &id])?;
    within(Duration::from_secs(3), "the disconnected ssh ends", || Ok(long.try_wait()?.map(|_| ())))?;
    println!("disconnect through another node took {:?}", t.elapsed());

    // The role removed through node 3: the next connection, on any node, is refused at once.
    all[2].ok(&["role", "assignment", "delete", "--ids", &assignment])?;
    let t = Instant::now();
    ensure!(sshd.ssh(tunnel.port, "echo after").is_err(), "a connection after the role was removed");
    ensure!(t.elapsed() < Duration::from_secs(5));
    let refused = all[1].audit()?;
    ensure!(
        refused
            .iter()
            .any(|r| r["user"] == "bob" && r["event"] == "connection-open" && r["result"] == "refused"),
        "the refusal is audited"
    );
    drop(tunnel);

    // A header from anyone but the balancer is refused, and audited.
    let direct = all[1].addr;
    let out = Command::new("curl")
        .args(["-sk", "--haproxy-protocol", "--max-time", "5"])
        .arg(format!("https://{direct}/healthz"))
        .output()?;
    ensure!(!String::from_utf8_lossy(&out.stdout).contains("ok"), "an untrusted PROXY header was believed");
    let audit = all[1].audit()?;
    ensure!(audit.iter().any(|r| r["reasonCode"] == "UntrustedProxyHeader"), "the refusal is audited");

    let names: Vec<String> = (1..=3).map(|i| format!("node-{i}")).collect();
    let mut names = names;

    // Drain the node holding a live session: it goes on; new connections go elsewhere; the
    // node exits when the session ends.
    let admin = all[0].admin_via(&lb)?;
    let tunnel = admin.tunnel("127.0.0.1", sshd.port)?;
    quiet(&all, "admin")?;
    let mut held =
        sshd.client("ssh", tunnel.port).arg(format!("{}@127.0.0.1", sshd.user)).arg("sleep 60").spawn()?;
    let (_, drained) = reported(&all, &names, "admin")?;
    let other = (drained + 1) % all.len();
    all[other].ok(&["node", "drain", &names[drained]])?;
    within(Duration::from_secs(10), "the drained node reports draining", || {
        Ok(nodes(&all[other])?
            .into_iter()
            .find(|n| n["name"] == names[drained].as_str() && n["state"] == "draining"))
    })?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(held.try_wait()?.is_none(), "the drained node's live session goes on");
    let t = Instant::now();
    within(Duration::from_secs(8), "a new connection through the same tunnel", || {
        Ok(sshd.ssh(tunnel.port, "echo while-draining").ok().filter(|o| o.trim() == "while-draining"))
    })?;
    println!("a new connection worked {:?} after the drain began", t.elapsed());
    let _ = held.kill();
    let _ = held.wait();
    within(Duration::from_secs(10), "the drained node exits once its session ended", || {
        Ok(all[drained].process.child.try_wait()?.map(|_| ()))
    })?;
    all.remove(drained);
    names.remove(drained);
    drop(tunnel);

    // kill -9 of the node holding the admin's live session.
    let tunnel = admin.tunnel("127.0.0.1", sshd.port)?;
    quiet(&all, "admin")?;
    let mut held =
        sshd.client("ssh", tunnel.port).arg(format!("{}@127.0.0.1", sshd.user)).arg("sleep 60").spawn()?;
    let (session, victim) = reported(&all, &names, "admin")?;
    let holder = names[victim].clone();
    let pid = all[victim].process.child.id().to_string();
    ensure!(Command::new("kill").args(["-9", &pid]).status()?.success());
    let killed = Instant::now();
    let survivor = (victim + 1) % all.len();
    let lost = within(Duration::from_secs(10), "the killed node is seen lost", || {
        Ok(nodes(&all[survivor])?.into_iter().find(|n| n["name"] == holder.as_str() && n["state"] == "lost"))
    })?;
    println!("node {holder} seen lost after {:?}: {lost}", killed.elapsed());
    let session_id = session["sessionId"].as_str().unwrap_or_default().to_string();
    let closed = within(Duration::from_secs(5), "the lost node's session is closed", || {
        Ok(all[survivor].audit()?.into_iter().find(|r| {
            r["event"] == "connection-close"
                && r["connectionId"] == session_id.as_str()
                && r["reasonCode"] == "NodeLost"
        }))
    })?;
    ensure!(closed["reason"].as_str().is_some_and(|r| r.contains(&holder)), "{closed}");
    let _ = held.wait();
    // The same local port works again: the tunnel reconnects through the balancer.
    let again = within(Duration::from_secs(10), "a new ssh through the same local port", || {
        Ok(sshd.ssh(tunnel.port, "echo after-the-kill").ok().filter(|o| o.trim() == "after-the-kill"))
    })?;
    ensure!(again.trim() == "after-the-kill");
    ensure!(all[survivor].ok(&["audit", "verify"])?.contains("intact"));
    all.remove(victim);
    Ok(())
}

/// Waits until no node lists a session of `user` (ended ones leave the list with their node's
/// next heartbeat), so the next one found is the next one started.
fn quiet(all: &[Gateway], user: &str) -> Result<()> {
    within(Duration::from_secs(5), "earlier sessions leave the list", || {
        for node in all {
            if node.sessions()?.iter().any(|s| s["userName"] == user) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
}

/// A live session of `user` as a node that does not hold it lists it (so its holder's
/// heartbeat has reported it), and the index of its holder.
fn reported(all: &[Gateway], names: &[String], user: &str) -> Result<(serde_json::Value, usize)> {
    within(Duration::from_secs(10), "the session is reported by its node", || {
        for (i, node) in all.iter().enumerate() {
            let found = node.sessions()?.into_iter().find(|s| {
                s["userName"] == user && s["nodeName"].as_str().is_some_and(|n| n != names[i].as_str())
            });
            if let Some(s) = found {
                let holder = s["nodeName"].as_str().unwrap_or_default();
                if let Some(h) = names.iter().position(|n| n == holder) {
                    return Ok(Some((s, h)));
                }
            }
        }
        Ok(None)
    })
}
