//! Live sessions: listing and disconnecting them, idle timeout and maximum duration, a dead
//! peer found by keep-alive, graceful drain on SIGTERM, and the Prometheus metrics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_client::{ApiClient, Trust};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, Tunnel};

/// A target that accepts connections and never says anything (so only the client's bytes
/// count as activity).
struct SilentTarget {
    port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentTarget {
    fn start() -> Result<SilentTarget> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(mut h) = keep.lock() {
                    h.push(stream);
                }
            }
        });
        Ok(SilentTarget { port, _held: held })
    }
}

fn open(gw: &Gateway, target: &SilentTarget) -> Result<(Tunnel, TcpStream)> {
    gw.allow_loopback()?;
    let tunnel = gw.tunnel("127.0.0.1", target.port)?;
    let mut conn = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    conn.write_all(b"hello")?;
    Ok((tunnel, conn))
}

/// Waits until the local connection is closed; returns how long that took.
fn closed_within(conn: &mut TcpStream, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    conn.set_read_timeout(Some(limit))?;
    let mut buf = [0u8; 64];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() < limit => return Ok(started.elapsed()),
            Ok(_) => continue,
            _ => anyhow::bail!("the connection was still open after {limit:?}"),
        }
    }
}

async fn api(gw: &Gateway) -> Result<ApiClient> {
    let api = ApiClient::new(&gw.url(), Trust::Fingerprint(gw.fingerprint.clone()))?;
    api.login("admin", ADMIN_PASSWORD).await?;
    Ok(api)
}

#[test]
fn operators_list_and_disconnect_sessions_and_metrics_count_them() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let target = SilentTarget::start()?;
    let (tunnel, mut conn) = open(&gw, &target)?;
    let live = rampart_e2e::wait_until(Duration::from_secs(5), || {
        Ok(gw.sessions()?.into_iter().find(|s| s["bytesToTarget"].as_u64().unwrap_or(0) >= 5))
    })?;
    ensure!(live["userName"] == "admin" && live["protocol"] == "tcptunnel", "{live}");
    ensure!(live["targetPort"] == target.port, "{live}");

    // A Reader may not see or end sessions.
    let reader = gw.new_user("watcher")?;
    gw.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee",
        "watcher",
        "--role",
        "Reader",
        "--scope",
        "/subscriptions/default",
    ])?;
    let err = reader.refused(&["network", "bastion", "session", "list", "-n", "default", "-g", "default"])?;
    ensure!(err.contains("getActiveSessions"), "{err}");

    let id = live["sessionId"].as_str().context("session id")?.to_string();
    gw.ok(&["network", "bastion", "session", "delete", "-n", "default", "-g", "default", "--ids", &id])?;
    // Measured from the answer: the CLI's own start is not the gateway's doing.
    closed_within(&mut conn, Duration::from_secs(3))?;
    tunnel.said("disconnected by admin")?;
    ensure!(gw.sessions()?.is_empty(), "the session is still listed");
    let audit = gw.audit()?;
    ensure!(audit.iter().any(|r| r["event"] == "session-disconnect" && r["user"] == "admin"));
    ensure!(audit.iter().any(|r| r["event"] == "connection-close"
        && r["reason"].as_str().is_some_and(|x| x.contains("disconnected by admin"))));

    let metrics = tokio::runtime::Runtime::new()?
        .block_on(async { anyhow::Ok(api(&gw).await?.request_text("/metrics").await?) })?;
    for name in [
        "rampart_sessions_started_total",
        "rampart_sessions_active",
        "rampart_refusals_total",
        "rampart_bytes_relayed_total",
        "rampart_connect_seconds",
    ] {
        ensure!(metrics.contains(name), "/metrics lacks {name}: {metrics}");
    }
    Ok(())
}

#[test]
fn idle_timeout_and_maximum_duration_end_sessions_with_the_reason() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let target = SilentTarget::start()?;
    // Set first: the idle clock starts at the connection's "hello", just before the wait.
    gw.update_bastion("default", &["--idle-timeout", "2"])?;
    let (tunnel, mut conn) = open(&gw, &target)?;
    let took = closed_within(&mut conn, Duration::from_secs(8))?;
    ensure!(took >= Duration::from_millis(1500), "closed after {took:?}, before the idle timeout");
    tunnel.said("idle timeout")?;

    // A busy session outlives the idle timeout but not the maximum duration.
    gw.update_bastion("default", &["--idle-timeout", "0", "--max-session-duration", "3"])?;
    let mut busy = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    let started = Instant::now();
    let mut ended = None;
    while started.elapsed() < Duration::from_secs(10) {
        if busy.write_all(b"x").is_err() {
            ended = Some(started.elapsed());
            break;
        }
        busy.set_read_timeout(Some(Duration::from_millis(300)))?;
        let mut b = [0u8; 8];
        if let Ok(0) = busy.read(&mut b) {
            ended = Some(started.elapsed());
            break;
        }
    }
    let ended = ended.context("the busy session was not ended by the maximum duration")?;
    ensure!(ended >= Duration::from_millis(2500), "ended after {ended:?}, before the maximum duration");
    tunnel.said("maximum session duration")?;
    Ok(())
}

#[test]
fn a_dead_client_is_found_by_keepalive() -> Result<()> {
    let gw = Gateway::start(&[("RAMPART_KEEPALIVE", "1")])?;
    let target = SilentTarget::start()?;
    let (tunnel, _conn) = open(&gw, &target)?;
    rampart_e2e::wait_until(Duration::from_secs(5), || Ok((!gw.sessions()?.is_empty()).then_some(())))?;
    // Freeze the client: its socket stays open, but nothing answers the gateway's pings.
    let pid = tunnel.process.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status()?;
    let found =
        rampart_e2e::wait_until(Duration::from_secs(15), || Ok(gw.sessions()?.is_empty().then_some(())));
    Command::new("kill").args(["-CONT", &pid]).status()?;
    found.context("the gateway still lists the session of a frozen client")?;
    let audit = gw.audit()?;
    ensure!(
        audit.iter().any(|r| r["event"] == "connection-close"
            && r["reason"].as_str().is_some_and(|x| x.contains("keep-alive"))),
        "no close record names the keep-alive"
    );
    Ok(())
}

#[test]
fn a_paused_gateway_is_found_by_the_client() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let target = SilentTarget::start()?;
    gw.allow_loopback()?;
    let port = target.port.to_string();
    let tunnel = gw.tunnel_with(&[
        "-n",
        "default",
        "-g",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
        &port,
        "--keepalive",
        "1",
    ])?;
    let mut conn = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    conn.write_all(b"hello")?;
    rampart_e2e::wait_until(Duration::from_secs(5), || Ok((!gw.sessions()?.is_empty()).then_some(())))?;
    let pid = gw.process.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status()?;
    let closed = closed_within(&mut conn, Duration::from_secs(10));
    Command::new("kill").args(["-CONT", &pid]).status()?;
    closed.context("the client did not notice the paused gateway")?;
    tunnel.said("keep-alive")?;
    Ok(())
}

#[test]
fn sigterm_drains_then_ends_sessions_with_the_reason() -> Result<()> {
    let mut gw = Gateway::start(&[("RAMPART_DRAIN_TIMEOUT", "10")])?;
    let target = SilentTarget::start()?;
    let (tunnel, mut conn) = open(&gw, &target)?;
    rampart_e2e::wait_until(Duration::from_secs(5), || Ok((!gw.sessions()?.is_empty()).then_some(())))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let client = runtime.block_on(api(&gw))?;
    ensure!(runtime.block_on(client.request_text("/readyz"))?.contains("ready"));

    Command::new("kill").args(["-TERM", &gw.process.child.id().to_string()]).status()?;
    std::thread::sleep(Duration::from_millis(500));
    let not_ready = runtime.block_on(client.request_text("/readyz"));
    ensure!(matches!(not_ready, Err(rampart_client::ClientError::Api { status: 503, .. })), "{not_ready:?}");
    let err = gw.refused(&[
        "tunnel",
        "-n",
        "default",
        "-g",
        "default",
        "--target-ip-address",
        "127.0.0.1",
        "--resource-port",
        &target.port.to_string(),
        "--port",
        "0",
    ])?;
    ensure!(err.contains("shutting down"), "{err}");
    // The live session goes on during the drain…
    conn.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut b = [0u8; 8];
    ensure!(!matches!(conn.read(&mut b), Ok(0)), "the session ended at once instead of draining");
    // …and is ended at the deadline, with the reason; then the gateway exits cleanly.
    closed_within(&mut conn, Duration::from_secs(15))?;
    let status = rampart_e2e::wait_until(Duration::from_secs(10), || Ok(gw.process.child.try_wait()?))?;
    ensure!(status.success(), "the gateway exited with {status}");
    tunnel.said("shutting down")?;

    let (data, config) = (gw.data_dir.clone(), gw.config_dir.clone());
    let again = Gateway::start_in(&data, &config, &[])?;
    again.login()?;
    let audit = again.audit()?;
    ensure!(
        audit.iter().any(|r| r["event"] == "connection-close"
            && r["reason"].as_str().is_some_and(|x| x.contains("shutting down"))),
        "no close record for the drained session"
    );
    drop(gw);
    Ok(())
}
