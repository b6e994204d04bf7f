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
