//! Every tunnel protocol, through the real `rampart tunnel`: v3 (the default: one TLS
//! connection in Rampart's own stream framing), v2 (`RAMPART_TUNNEL_PROTOCOL=v2`: every
//! connection an HTTP/2 stream of one TLS connection) and v1 (`RAMPART_TUNNEL_PROTOCOL=v1`: a
//! TLS connection and WebSocket each). Many connections at once, TCP half-close in both orders,
//! how many connections the tunnel holds to the gateway, a changed setting ending open
//! connections and refusing new ones while the tunnel goes on, a gateway restart under an open tunnel, and the fall back to v1 through a
//! proxy that does not speak HTTP/2 (stunnel) or passes only WebSocket upgrades (nginx).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rampart_e2e::{Gateway, Process, Session, Tunnel, free_port, stunnel_program, wait_for_port};

/// A target whose behaviour the first byte of each connection picks:
/// - `E`: echoes until EOF, then sends `bye <n>` (the bytes it got) and closes;
/// - `T`: sends `from target`, half-closes at once, then counts what it still receives and
///   records the count once the client's EOF arrives.
struct Target {
    port: u16,
    late_bytes: Arc<Mutex<Vec<usize>>>,
}

impl Target {
    fn start() -> Result<Target> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let late_bytes = Arc::new(Mutex::new(Vec::new()));
        let record = late_bytes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve(stream, &record));
            }
        });
        Ok(Target { port, late_bytes })
    }
}

fn serve(mut stream: TcpStream, late_bytes: &Mutex<Vec<usize>>) -> std::io::Result<()> {
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    let mut buf = vec![0u8; 64 * 1024];
    match first[0] {
        b'E' => {
            let mut total = 1;
            stream.write_all(&first)?;
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n;
                stream.write_all(&buf[..n])?;
            }
            stream.write_all(format!("bye {total}").as_bytes())?;
        }
        _ => {
            stream.write_all(b"from target")?;
            stream.shutdown(Shutdown::Write)?;
            let mut total = 0;
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n;
            }
            if let Ok(mut l) = late_bytes.lock() {
                l.push(total);
            }
        }
    }
    Ok(())
}

/// A tunnel over `protocol` ("v1", "v2" or "v3").
fn open(session: &Session, target: &Target, protocol: &str) -> Result<Tunnel> {
    let port = target.port.to_string();
    session.tunnel_with_env(
        &[("RAMPART_TUNNEL_PROTOCOL", protocol)],
        &["-n", "default", "-g", "default", "--target-ip-address", "127.0.0.1", "--resource-port", &port],
    )
}

/// Established TCP connections whose remote end is `port` on this machine (both ends of a
/// loopback connection are listed, so this counts the clients' sockets).
fn connections_to(port: u16) -> Result<usize> {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state)) = (fields.get(2), fields.get(3)) else { continue };
            let remote_port = remote.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && *state == "01" {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// A pattern that differs per connection, so crossed streams would show.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

fn check_protocol(gw: &Gateway, target: &Target, name: &str) -> Result<()> {
    let tunnel = open(gw, target, name)?;

    // 24 connections at once, each echoing its own 300 KiB and ending with a half-close: the
    // target's reply after the client's EOF must still arrive.
    let mut held = Vec::new();
    for _ in 0..24 {
        let mut c = TcpStream::connect(("127.0.0.1", tunnel.port))?;
        c.set_read_timeout(Some(Duration::from_secs(20)))?;
        c.write_all(b"E")?;
        let mut echo = [0u8; 1];
        c.read_exact(&mut echo).with_context(|| format!("{name}: first echo"))?;
        held.push(c);
    }
    let to_gateway = connections_to(gw.addr.port())?;
    if name == "v1" {
        ensure!(to_gateway >= 24, "v1 holds a connection per tunnelled connection, found {to_gateway}");
    } else {
        // One for the streams, at most one more: the grant's pooled HTTPS connection.
        ensure!(to_gateway <= 2, "{name} should carry 24 connections over one, found {to_gateway}");
    }
    let workers: Vec<_> = held
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || -> Result<()> {
                let data = pattern(i, 300 * 1024);
                let mut writer = c.try_clone()?;
                let send = data.clone();
                let sender = std::thread::spawn(move || -> std::io::Result<()> {
                    writer.write_all(&send)?;
                    writer.shutdown(Shutdown::Write)
                });
                let mut got = Vec::new();
                c.read_to_end(&mut got)?;
                sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
                let expected_tail = format!("bye {}", data.len() + 1);
                ensure!(
                    got.len() == data.len() + expected_tail.len(),
                    "connection {i}: {} bytes back",
                    got.len()
                );
                ensure!(got[..data.len()] == data[..], "connection {i}: the echo differs");
                ensure!(
                    got.ends_with(expected_tail.as_bytes()),
                    "connection {i}: no reply after the half-close"
                );
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }

    // The target half-closes first; the client goes on sending, and all of it arrives.
    let before = target.late_bytes.lock().map(|l| l.len()).unwrap_or(0);
    let mut c = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    c.set_read_timeout(Some(Duration::from_secs(20)))?;
    c.write_all(b"T")?;
    let mut got = Vec::new();
    c.read_to_end(&mut got).with_context(|| format!("{name}: the target's EOF did not arrive"))?;
    ensure!(got == b"from target", "{name}: got {:?}", String::from_utf8_lossy(&got));
    let late = pattern(99, 200 * 1024);
    c.write_all(&late).with_context(|| format!("{name}: writing after the target's half-close"))?;
    c.shutdown(Shutdown::Write)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let recorded = loop {
        let l = target.late_bytes.lock().map(|l| l.clone()).unwrap_or_default();
        if l.len() > before {
            break l[before];
        }
        ensure!(std::time::Instant::now() < deadline, "{name}: the target never saw the client's EOF");
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(
        recorded == late.len(),
        "{name}: the target got {recorded} of {} bytes after its half-close",
        late.len()
    );
    ensure!(!tunnel.stderr().contains("failed"), "{name}: {}", tunnel.stderr());
    Ok(())
}

#[test]
fn every_protocol_carries_many_connections_and_half_close_in_both_orders() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let target = Target::start()?;
    for protocol in ["v2", "v1", "v3"] {
        check_protocol(&gw, &target, protocol)?;
    }
    // Every connection was audited open and closed, with its bytes.
    let audit = gw.audit()?;
    let closes = audit.iter().filter(|r| r["event"] == "connection-close" && r["result"] == "closed").count();
    ensure!(closes >= 75, "{closes} clean close records for 75 connections");
    Ok(())
}

#[test]
fn a_changed_setting_ends_open_streams_refuses_new_ones_and_the_tunnel_goes_on() -> Result<()> {
    for protocol in ["v2", "v3"] {
        setting_ends_streams_and_tunnel_goes_on(protocol).with_context(|| protocol.to_string())?;
    }
    Ok(())
}

fn setting_ends_streams_and_tunnel_goes_on(protocol: &str) -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let target = Target::start()?;
    let tunnel = open(&gw, &target, protocol)?;
    let mut first = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    first.set_read_timeout(Some(Duration::from_secs(10)))?;
    first.write_all(b"E")?;
    let mut b = [0u8; 1];
    first.read_exact(&mut b)?;
    // Turn IP-based connection off: the open stream, no longer allowed, ends naming why, and
    // the next one is refused.
    gw.update_bastion("default", &["--enable-ip-connect", "false"])?;
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    ensure!(rest.is_empty(), "the revoked stream carried bytes: {rest:?}");
    let mut second = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    second.set_read_timeout(Some(Duration::from_secs(10)))?;
    let _ = second.write_all(b"E");
    let _ = second.read_to_end(&mut rest);
    ensure!(rest.is_empty(), "a refused connection carried bytes: {rest:?}");
    let said = tunnel.said("IpConnectDisabled")?;
    ensure!(said.contains("access revoked") && said.contains("--enable-ip-connect"), "stderr: {said}");
    ensure!(said.contains("IpConnectDisabled"), "stderr: {said}");
    // Turned back on, the same tunnel carries new connections: neither the revocation nor the
    // refusal broke it.
    gw.update_bastion("default", &["--enable-ip-connect", "true"])?;
    let mut third = TcpStream::connect(("127.0.0.1", tunnel.port))?;
    third.set_read_timeout(Some(Duration::from_secs(10)))?;
    third.write_all(b"E")?;
    third.read_exact(&mut b)?;
    third.write_all(b"still here")?;
    let mut echo = [0u8; 10];
    third.read_exact(&mut echo)?;
    ensure!(&echo == b"still here", "the tunnel stopped carrying connections");
    Ok(())
}

/// A TLS-terminating proxy in front of the gateway that negotiates no ALPN (stunnel: TLS in
/// with the gateway's own certificate, plain in between, TLS out to the gateway), as an
/// HTTP/1.1-only load balancer would be. The tunnel finds no HTTP/2 there and carries its
/// connections over v1 WebSockets instead: one proxy connection per tunnelled connection.
/// (stunnel passes bytes through, so HTTP/2 would happen to work across it; a real HTTP/1.1
/// proxy would break it, which is why the client goes by ALPN.)
#[test]
fn a_tunnel_through_a_proxy_without_http2_falls_back_to_websockets() -> Result<()> {
    let stunnel = stunnel_program()?;
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let (front, back) = (free_port(), free_port());
    let tls = gw.data_dir.join("tls");
    let dir = tempfile::tempdir()?;
    let config = format!(
        "foreground = yes\npid =\n[front]\naccept = 127.0.0.1:{front}\nconnect = 127.0.0.1:{back}\ncert = {}\nkey = {}\n\
         [back]\nclient = yes\naccept = 127.0.0.1:{back}\nconnect = {}\n",
        tls.join("cert.pem").display(),
        tls.join("key.pem").display(),
        gw.addr
    );
    std::fs::write(dir.path().join("proxy.conf"), config)?;
    let mut cmd = std::process::Command::new(stunnel);
    cmd.arg(dir.path().join("proxy.conf")).stderr(std::process::Stdio::null());
    let _proxy = Process::spawn(cmd, "stunnel proxy")?;
    wait_for_port(std::net::SocketAddr::from(([127, 0, 0, 1], front)), Duration::from_secs(10))?;

    let added = three_connections_through(&gw, front, Some("v2"))?;
    ensure!(added >= 3, "3 tunnelled connections added {added} proxy connections: not v1");
    Ok(())
}

/// nginx in front of the gateway as a TLS-terminating HTTP/1.1 reverse proxy (the gateway's own
/// certificate, no HTTP/2), passing on either every upgrade (the usual WebSocket recipe:
/// `Upgrade $http_upgrade`) or WebSocket upgrades only, as many load balancers behave (any
/// other `Upgrade` header is dropped, so the gateway sees a plain request). Returns the proxy
/// (running until dropped), its directory and its port.
fn nginx_in_front(gw: &Gateway, websocket_only: bool) -> Result<(Process, tempfile::TempDir, u16)> {
    let nginx = std::path::Path::new("/usr/sbin/nginx");
    ensure!(nginx.exists(), "nginx is not installed (apt-get install nginx-light; scripts/test.sh does)");
    let front = free_port();
    let tls = gw.data_dir.join("tls");
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let (upgrade, connection) = if websocket_only {
        (
            "map $http_upgrade $up { ~*^websocket$ websocket; default ''; }",
            "map $http_upgrade $conn { ~*^websocket$ upgrade; default ''; }",
        )
    } else {
        (
            "map $http_upgrade $up { default $http_upgrade; }",
            "map $http_upgrade $conn { default upgrade; '' close; }",
        )
    };
    let config = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           {upgrade}\n  {connection}\n\
           server {{\n    listen 127.0.0.1:{front} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             location / {{\n      proxy_pass https://{upstream};\n      proxy_http_version 1.1;\n\
               proxy_set_header Host $http_host;\n      proxy_set_header Upgrade $up;\n\
               proxy_set_header Connection $conn;\n      proxy_buffering off;\n\
               proxy_request_buffering off;\n      proxy_read_timeout 300s;\n    }}\n  }}\n}}\n",
        cert = tls.join("cert.pem").display(),
        key = tls.join("key.pem").display(),
        upstream = gw.addr,
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config)?;
    let mut cmd = std::process::Command::new(nginx);
    cmd.arg("-p").arg(dir.path()).arg("-e").arg(dir.path().join("error.log")).arg("-c").arg(&conf);
    cmd.stderr(std::process::Stdio::null());
    let proxy = Process::spawn(cmd, "nginx proxy")?;
    wait_for_port(std::net::SocketAddr::from(([127, 0, 0, 1], front)), Duration::from_secs(10))?;
    Ok((proxy, dir, front))
}

/// Through a proxy on `front`, with `protocol` forced or the default one as a user runs it:
/// three connections held at once, then each carries 64 KiB with a half-close, and none is
/// refused. Returns how many connections to the proxy the three added (the tunnel's own API
/// calls may hold one more).
fn three_connections_through(gw: &Gateway, front: u16, protocol: Option<&str>) -> Result<usize> {
    let target = Target::start()?;
    let via_proxy = gw.admin_via(&format!("https://127.0.0.1:{front}"))?;
    let port = target.port.to_string();
    let env: Vec<(&str, &str)> = protocol.map(|p| ("RAMPART_TUNNEL_PROTOCOL", p)).into_iter().collect();
    let tunnel = via_proxy.tunnel_with_env(
        &env,
        &["-n", "default", "-g", "default", "--target-ip-address", "127.0.0.1", "--resource-port", &port],
    )?;
    let before = connections_to(front)?;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(("127.0.0.1", tunnel.port))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        c.write_all(b"E")?;
        let mut echo = [0u8; 1];
        c.read_exact(&mut echo)
            .with_context(|| format!("first echo through the proxy: {}", tunnel.stderr()))?;
        held.push(c);
    }
    let added = connections_to(front)?.saturating_sub(before);
    for (round, mut c) in held.into_iter().enumerate() {
        let data = pattern(round, 64 * 1024);
        c.write_all(&data)?;
        c.shutdown(Shutdown::Write)?;
        let mut got = Vec::new();
        c.read_to_end(&mut got).context("through the proxy")?;
        let tail = format!("bye {}", data.len() + 1);
        ensure!(got.len() == data.len() + tail.len(), "round {round}: {} bytes back", got.len());
        ensure!(
            got[..data.len()] == data[..] && got.ends_with(tail.as_bytes()),
            "round {round}: bytes differ"
        );
    }
    let stderr = tunnel.stderr();
    ensure!(!stderr.contains("failed") && !stderr.contains("NotUpgrade"), "{stderr}");
    let audit = gw.audit()?;
    let opened = audit.iter().filter(|r| r["event"] == "connection-open" && r["result"] == "allowed").count();
    ensure!(opened == 3, "{opened} connections opened through the proxy, expected 3");
    Ok(added)
}

/// Behind nginx passing WebSocket upgrades only, the default tunnel (v3) finds its upgrade did
/// not get through (the gateway's `400 NotUpgrade`), falls back to v2, finds no HTTP/2 there
/// and carries its connections over v1 WebSockets: every connection works, none is refused.
#[test]
fn a_tunnel_through_a_proxy_that_passes_only_websocket_upgrades_falls_back_to_websockets() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let (_proxy, _dir, front) = nginx_in_front(&gw, true)?;
    let added = three_connections_through(&gw, front, None)?;
    ensure!(added >= 3, "3 tunnelled connections added {added} proxy connections: not v1");
    // The upgrade that did not arrive is audited, once: the tunnel does not try v3 again.
    let audit = gw.audit()?;
    let not_upgrades = audit
        .iter()
        .filter(|r| r["event"] == "connection-open" && r["reasonCode"].as_str() == Some("NotUpgrade"))
        .count();
    ensure!(not_upgrades == 1, "{not_upgrades} NotUpgrade records, expected 1");
    Ok(())
}

/// Behind nginx with the usual WebSocket recipe (every upgrade passed on), v3 gets through: the
/// tunnel's connections share one connection to the proxy.
#[test]
fn a_tunnel_through_a_proxy_that_passes_upgrades_keeps_one_connection() -> Result<()> {
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let (_proxy, _dir, front) = nginx_in_front(&gw, false)?;
    let added = three_connections_through(&gw, front, None)?;
    ensure!(added <= 1, "3 tunnelled connections added {added} proxy connections: not v3");
    Ok(())
}

/// One echo round with a half-close through `port`.
fn echo_round(port: u16, seed: usize) -> Result<()> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let data = pattern(seed, 32 * 1024);
    c.write_all(b"E")?;
    c.write_all(&data)?;
    c.shutdown(Shutdown::Write)?;
    let mut got = Vec::new();
    c.read_to_end(&mut got)?;
    let tail = format!("bye {}", data.len() + 1);
    ensure!(got.len() == 1 + data.len() + tail.len(), "{} bytes back", got.len());
    ensure!(got[1..=data.len()] == data[..] && got.ends_with(tail.as_bytes()), "the echo differs");
    Ok(())
}

/// The tunnel's one connection (v2's HTTP/2, v3's) dies with the gateway (kill -9); the
/// tunnel stays open, and its next connection, once the gateway is back on the same address,
/// opens a new one and works (the grant's token is still valid: the key persists).
#[test]
fn a_tunnel_carries_on_after_the_gateway_restarts() -> Result<()> {
    for protocol in ["v2", "v3"] {
        carries_on_after_restart(protocol).with_context(|| protocol.to_string())?;
    }
    Ok(())
}

fn carries_on_after_restart(protocol: &str) -> Result<()> {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut gw = Gateway::start(&[("RAMPART_LISTEN", &listen)])?;
    gw.allow_loopback()?;
    let target = Target::start()?;
    let tunnel = open(&gw, &target, protocol)?;
    echo_round(tunnel.port, 1).context("before the restart")?;
    gw.process.child.kill()?;
    gw.process.child.wait()?;
    let again = Gateway::start_in(&gw.data_dir, &gw.config_dir, &[("RAMPART_LISTEN", &listen)])?;
    echo_round(tunnel.port, 2).with_context(|| format!("after the restart; tunnel: {}", tunnel.stderr()))?;
    echo_round(tunnel.port, 3).context("again")?;
    drop(again);
    Ok(())
}
