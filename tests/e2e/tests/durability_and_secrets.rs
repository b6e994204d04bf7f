//! A gateway killed with live sessions comes back intact, and secrets stay out of logs,
//! audit records, error messages and files others can read.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

fn silent_target() -> Result<(u16, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let handle = std::thread::spawn(move || {
        let mut held = vec![];
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    Ok((port, handle))
}

#[test]
fn kill_9_with_100_live_sessions_then_restart() -> Result<()> {
    let mut gw = Gateway::start(&[])?;
    let (port, _target) = silent_target()?;
    gw.update_bastion(
        "default",
        &["--enable-ip-connect", "true", "--reachable-networks", "127.0.0.0/8", "--idle-timeout", "3600"],
    )?;
    let tunnel = gw.tunnel("127.0.0.1", port)?;
    let mut conns = vec![];
    for _ in 0..100 {
        let mut c = TcpStream::connect(("127.0.0.1", tunnel.port))?;
        c.write_all(b"x")?;
        conns.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = gw.ok(&["network", "bastion", "session", "list", "-n", "default", "-g", "default"])?;
        let n = serde_json::from_str::<Vec<serde_json::Value>>(&out)?.len();
        if n == 100 {
            break;
        }
        ensure!(Instant::now() < deadline, "only {n} of 100 sessions went live");
        std::thread::sleep(Duration::from_millis(200));
    }

    gw.process.child.kill()?; // SIGKILL: no drain, no close records.
    gw.process.child.wait()?;
    let (data, config) = (gw.data_dir.clone(), gw.config_dir.clone());
    let started = Instant::now();
    let again = Gateway::start_in(&data, &config, &[])?;
    let restart = started.elapsed();
    println!("restart after kill -9 with 100 sessions: serving after {:.0} ms", restart.as_secs_f64() * 1e3);
    ensure!(restart < Duration::from_secs(10), "the restart took {restart:?}");
    again.login()?;

    let audit = again.audit()?;
    let opened: Vec<&str> = audit
        .iter()
        .filter(|r| r["event"] == "connection-open" && r["result"] == "allowed")
        .filter_map(|r| r["connectionId"].as_str())
        .collect();
    ensure!(opened.len() >= 100, "{} open records", opened.len());
    for id in &opened {
        ensure!(
            audit.iter().any(|r| r["event"] == "connection-close"
                && r["connectionId"] == *id
                && r["reason"].as_str().is_some_and(|x| x.contains("ended by gateway restart"))),
            "connection {id} was not closed as ended by the restart"
        );
    }
    ensure!(again.ok(&["audit", "verify"])?.contains("intact"));
    let bastion: serde_json::Value =
        serde_json::from_str(&again.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?)?;
    ensure!(bastion["idleTimeoutSeconds"] == 3600 && bastion["enableIpConnect"] == true, "{bastion}");
    // SQLite's own integrity check runs at every start; it passed, or the gateway would not serve.
    ensure!(!again.log().contains("corrupt"), "{}", again.log());
    drop(conns);
    drop(gw);
    Ok(())
}

#[test]
fn secrets_never_reach_logs_audit_errors_or_readable_files() -> Result<()> {
    let gw = Gateway::start(&[("RAMPART_LOG", "trace")])?;
    let user_password = "bob-Secret-Passw0rd-123";
    let mut create = gw
        .cli()
        .args(["ad", "user", "create", "--user-principal-name", "bob", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    writeln!(create.stdin.take().context("stdin")?, "{user_password}")?;
    ensure!(create.wait()?.success());
    // A failed sign-in with a wrong (secret-looking) password, and a good one.
    let wrong = "not-the-Passw0rd-XYZ";
    let failed = gw.login_with("bob", wrong)?;
    ensure!(!failed.status.success());
    gw.allow_loopback()?;
    let (port, _t) = silent_target()?;
    let _tunnel = gw.tunnel("127.0.0.1", port)?;

    let profile = std::fs::read_to_string(gw.config_dir.join("profile.json"))?;
    let session: serde_json::Value = serde_json::from_str(&profile)?;
    let access = session["session"]["accessToken"].as_str().context("access token")?.to_string();
    let refresh = session["session"]["refreshToken"].as_str().context("refresh token")?.to_string();
    let ca_key = std::fs::read_to_string(gw.data_dir.join("keys").join("ssh-ca"))?;
    let ca_secret_line = ca_key.lines().nth(1).context("CA key body")?.to_string();
    let tls_key = std::fs::read_to_string(gw.data_dir.join("tls").join("key.pem"))?;
    let tls_secret_line = tls_key.lines().nth(1).context("TLS key body")?.to_string();

    let audit = gw.ok(&["audit", "list", "--limit", "10000"])?;
    let log = gw.log();
    let failed_text =
        format!("{}{}", String::from_utf8_lossy(&failed.stdout), String::from_utf8_lossy(&failed.stderr));
    for (name, secret) in [
        ("the admin password", ADMIN_PASSWORD),
        ("a user's password", user_password),
        ("a wrong password", wrong),
        ("an access token", access.as_str()),
        ("a refresh token", refresh.as_str()),
        ("the SSH CA key", ca_secret_line.as_str()),
        ("the TLS key", tls_secret_line.as_str()),
    ] {
        ensure!(!log.contains(secret), "{name} is in the gateway's log");
        ensure!(!audit.contains(secret), "{name} is in the audit log");
        ensure!(!failed_text.contains(secret), "{name} is in an error message");
    }
    ensure!(!log.is_empty(), "the trace-level log is empty: the test would prove nothing");

    for file in [
        gw.data_dir.join("keys").join("ssh-ca"),
        gw.data_dir.join("keys").join("token-signing.key"),
        gw.data_dir.join("tls").join("key.pem"),
        gw.config_dir.join("profile.json"),
    ] {
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "{} has mode {mode:o}", file.display());
    }
    // No panic anywhere in this gateway's life.
    ensure!(!log.contains("panicked"), "the gateway panicked: {log}");
    Ok(())
}
