//! Abuse: many half-open connections do not lock users out, oversized input is refused with
//! a clear status, and nothing panics.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rampart_client::{ApiClient, ClientError, Trust};
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

#[test]
fn ten_thousand_half_open_connections_do_not_stop_a_sign_in() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let limit = rlimit_nofile();
    let count = 10_000.min(limit.saturating_sub(500) as usize);
    ensure!(count >= 1_000, "the open-file limit ({limit}) is too low for this test");
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = TcpStream::connect(gw.addr)?;
        // Some send the start of a TLS record and stop: a handshake that never finishes.
        if i % 2 == 0 {
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])?;
        }
        held.push(s);
    }
    let started = Instant::now();
    let out = gw.login_with("admin", ADMIN_PASSWORD)?;
    let took = started.elapsed();
    println!("sign-in with {count} half-open connections held: {:.0} ms", took.as_secs_f64() * 1e3);
    ensure!(out.status.success(), "sign-in failed: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(took < Duration::from_secs(5), "sign-in took {took:?}");
    drop(held);
    Ok(())
}

fn rlimit_nofile() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(1024)
}

#[test]
fn oversized_and_malformed_input_is_refused_clearly() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let api = ApiClient::new(&gw.url(), Trust::Fingerprint(gw.fingerprint.clone()))?;
        api.login("admin", ADMIN_PASSWORD).await?;
        let sub = api.subscriptions().await?.remove(0).id;
        // A 4 MiB import body.
        let big: Vec<serde_json::Value> = (0..40_000)
            .map(|i| serde_json::json!({"resourceGroup": "g", "name": format!("vm{i}"), "osType": "linux", "privateIpAddress": "10.0.0.4", "nicName": "x".repeat(60)}))
            .collect();
        let err = api
            .request::<_, serde_json::Value>(
                rampart_client::api::Method::POST,
                &format!("/api/subscriptions/{sub}/virtualMachines/import"),
                Some(&big),
            )
            .await;
        ensure!(matches!(&err, Err(ClientError::Api { status: 413, .. })), "{err:?}");
        // A malformed body is named, not a crash.
        let err = api
            .request::<_, serde_json::Value>(rampart_client::api::Method::POST, "/api/roleAssignments", Some(&serde_json::json!({"nope": 1})))
            .await;
        ensure!(matches!(&err, Err(ClientError::Api { status: 400, .. })), "{err:?}");
        anyhow::Ok(())
    })?;
    // A megabyte of plaintext HTTP on the TLS port is dropped, and the gateway keeps serving.
    let huge = "a".repeat(1 << 20);
    let mut s = TcpStream::connect(gw.addr)?;
    let _ = s.write_all(format!("GET /healthz HTTP/1.1\r\nX-Big: {huge}\r\n\r\n").as_bytes());
    drop(s);
    ensure!(gw.ok(&["account", "list"]).is_ok(), "the gateway stopped serving");
    ensure!(!gw.log().contains("panicked"), "the gateway panicked: {}", gw.log());
    Ok(())
}

#[test]
fn an_oversized_websocket_message_ends_the_connection_not_the_gateway() -> Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use rampart_tunnel::tokio_tungstenite::tungstenite::Message;
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let api = ApiClient::new(&gw.url(), Trust::Fingerprint(gw.fingerprint.clone()))?;
        api.login("admin", ADMIN_PASSWORD).await?;
        let sub = api.subscriptions().await?.remove(0).id;
        let grant = api
            .grant_tunnel(&rampart_proto::tunnel::TunnelRequest {
                bastion_id: format!("/subscriptions/{sub}/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default"),
                target_ip_address: Some("127.0.0.1".into()),
                target_resource_id: None,
                resource_port: port,
            })
            .await?;
        let connector = rampart_client::tunnel::Connector::new(&gw.url(), &Trust::Fingerprint(gw.fingerprint.clone()))?;
        let mut ws = connector.open(&grant.tunnel_token).await?;
        // 2 MiB in one message: twice what a receiver accepts (and under the sender's own cap).
        use rampart_tunnel::tokio_tungstenite::tungstenite::Error as WsError;
        match ws.send(Message::Binary(vec![7u8; 2 << 20].into())).await {
            // The gateway may refuse the frame from its header and reset the connection while
            // the rest is still being sent: that is the connection ending, as it should.
            Err(WsError::Io(e)) => ensure!(
                matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
                "sending failed unexpectedly: {e}"
            ),
            Err(e) => anyhow::bail!("the message was not sent at all: {e}"),
            Ok(()) => {
                let answer = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
                ensure!(
                    matches!(answer, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
                    "the gateway accepted an oversized message: {answer:?}"
                );
            }
        }
        anyhow::Ok(())
    })?;
    ensure!(gw.ok(&["account", "list"]).is_ok(), "the gateway stopped serving");
    ensure!(!gw.log().contains("panicked"), "{}", gw.log());
    drop(listener);
    Ok(())
}

#[test]
fn an_oversized_header_gets_a_clear_status() -> Result<()> {
    let gw = Gateway::start(&[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    let status = runtime.block_on(async {
        // The test's own client; the gateway's self-signed certificate is accepted only here,
        // on loopback.
        let client = reqwest::Client::builder().tls_danger_accept_invalid_certs(true).build()?;
        let resp =
            client.get(format!("{}/healthz", gw.url())).header("x-big", "a".repeat(1 << 20)).send().await;
        anyhow::Ok(resp.map(|r| r.status().as_u16()).ok())
    })?;
    // hyper answers 431 (or closes the connection) rather than buffering a megabyte of header.
    ensure!(matches!(status, Some(431) | None), "an oversized header got {status:?}");
    ensure!(gw.ok(&["account", "list"]).is_ok(), "the gateway stopped serving");
    Ok(())
}
