//! What session recording costs, recording off and on in turn in one run on one gateway:
//! - a busy browser terminal (`seq` printing megabytes through the portal's WebSocket): output
//!   throughput and the gateway's CPU per MB, and the recording's size per MB of output;
//! - an interactive browser terminal (a command printing a screenful every 2 s): the gateway's
//!   CPU and the recording's bytes per minute;
//! - a browser desktop repainted 40 times a second (the worst case) and a still one: the
//!   gateway's CPU and the recording's bytes per minute.
//!
//! Run: `./scripts/bench.sh --recording` (release build); `--smoke` for a seconds-long check.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use rampart_e2e::{Gateway, Sshd};
use tokio_tungstenite::tungstenite::Message;

use crate::peers;
use crate::terminal::{PortalSocket, open_shell};

fn set_recording(gateway: &Gateway, on: bool) -> Result<()> {
    let on = if on { "true" } else { "false" };
    tokio::task::block_in_place(|| gateway.update_bastion("default", &["--enable-session-recording", on]))?;
    Ok(())
}

/// The newest recording's size in bytes, once it is complete.
async fn newest_recording_size(gateway: &Gateway) -> Result<u64> {
    let t = Instant::now();
    loop {
        let listed = tokio::task::block_in_place(|| {
            gateway.ok(&["network", "bastion", "recording", "list", "-n", "default", "-g", "default"])
        })?;
        let list: Vec<serde_json::Value> = serde_json::from_str(&listed)?;
        if let Some(size) =
            list.first().filter(|r| r["complete"] == true).and_then(|r| r["sizeBytes"].as_u64())
        {
            return Ok(size);
        }
        ensure!(t.elapsed() < Duration::from_secs(20), "the recording did not complete: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `command` and reads output until `marker` shows; returns the bytes read.
async fn run_until(ws: &mut PortalSocket, command: &str, marker: &str, limit: Duration) -> Result<usize> {
    ws.send(Message::Binary(format!("{command}\r").into_bytes().into())).await?;
    let end = Instant::now() + limit;
    let (mut bytes, mut tail) = (0usize, String::new());
    loop {
        ensure!(Instant::now() < end, "'{marker}' did not show within {} s", limit.as_secs());
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                bytes += b.len();
                tail.push_str(&String::from_utf8_lossy(&b));
                if tail.contains(marker) {
                    return Ok(bytes);
                }
                let keep = tail.len().saturating_sub(64);
                let keep = (keep..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(0);
                tail.drain(..keep);
            }
            Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => bail!("terminal ended: {t}"),
            Ok(Some(Ok(_))) => {}
            other => bail!("terminal WebSocket: {other:?}"),
        }
    }
}

/// One busy-terminal run: output MB/s, gateway CPU s per MB, recording bytes (when on).
struct Busy {
    mb_per_s: f64,
    cpu_per_mb: f64,
    recording: Option<u64>,
}

async fn busy(gateway: &Gateway, sshd: &Sshd, pid: u32, lines: u64, record: bool) -> Result<Busy> {
    set_recording(gateway, record)?;
    let mut ws = open_shell(gateway, sshd).await?;
    let cpu0 = peers::cpu_seconds(&[pid]);
    let t = Instant::now();
    // The marker is computed by the shell, so its echo of the command does not match.
    let bytes = run_until(
        &mut ws,
        &format!("seq 1 {lines}; echo busy-$((40+2))"),
        "busy-42",
        Duration::from_secs(300),
    )
    .await?;
    let seconds = t.elapsed().as_secs_f64();
    let cpu = peers::cpu_seconds(&[pid]) - cpu0;
    let mb = bytes as f64 / 1e6;
    let _ = ws.send(Message::Binary(b"exit\r".to_vec().into())).await;
    let _ = ws.close(None).await;
    drop(ws);
    let recording = if record { Some(newest_recording_size(gateway).await?) } else { None };
    Ok(Busy { mb_per_s: mb / seconds, cpu_per_mb: cpu / mb, recording })
}

/// An interactive terminal for `seconds`: a screenful every 2 s. Gateway CPU seconds per
/// minute, and the recording's bytes per minute when on.
async fn interactive(
    gateway: &Gateway,
    sshd: &Sshd,
    pid: u32,
    seconds: u64,
    record: bool,
) -> Result<(f64, Option<f64>)> {
    set_recording(gateway, record)?;
    let mut ws = open_shell(gateway, sshd).await?;
    let cpu0 = peers::cpu_seconds(&[pid]);
    let t = Instant::now();
    let mut i = 0u64;
    while t.elapsed() < Duration::from_secs(seconds) {
        i += 1;
        let command = format!("ls -la /usr/bin | head -40; echo step-$(({i}*1))");
        run_until(&mut ws, &command, &format!("step-{i}\r"), Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let minutes = t.elapsed().as_secs_f64() / 60.0;
    let cpu = (peers::cpu_seconds(&[pid]) - cpu0) / minutes;
    let _ = ws.send(Message::Binary(b"exit\r".to_vec().into())).await;
    let _ = ws.close(None).await;
    drop(ws);
    let size = if record { Some(newest_recording_size(gateway).await? as f64 / minutes) } else { None };
    Ok((cpu, size))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

fn range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.3}–{max:.3}")
}

pub async fn run(smoke: bool) -> Result<()> {
    let gateway = tokio::task::block_in_place(|| Gateway::start(&[("RAMPART_LOG", "error")]))?;
    gateway.allow_loopback()?;
    tokio::task::block_in_place(|| gateway.update_bastion("default", &["--sku", "Premium"]))?;
    let sshd = tokio::task::block_in_place(Sshd::start)?;
    let pid = gateway.process.child.id();
    let (rounds, lines, seconds) = if smoke { (1, 20_000, 4) } else { (3, 2_000_000, 30) };

    // Busy terminal: off and on in turn.
    let (mut off, mut on) = (vec![], vec![]);
    for _ in 0..rounds {
        off.push(busy(&gateway, &sshd, pid, lines, false).await?);
        on.push(busy(&gateway, &sshd, pid, lines, true).await?);
    }
    let output_mb = {
        // `seq 1 N` prints this many bytes (digits and newlines), before the terminal's CRs.
        let digits: u64 = (1..=lines).map(|n| n.to_string().len() as u64 + 1).sum();
        digits as f64 / 1e6
    };
    let rate = |v: &[Busy]| v.iter().map(|b| b.mb_per_s).collect::<Vec<_>>();
    let cpu = |v: &[Busy]| v.iter().map(|b| b.cpu_per_mb).collect::<Vec<_>>();
    let sizes: Vec<f64> = on.iter().filter_map(|b| b.recording).map(|r| r as f64 / 1e6 / output_mb).collect();
    println!(
        "busy browser terminal: `seq 1 {lines}` ({output_mb:.1} MB), {rounds} runs each, recording off and on in turn"
    );
    println!(
        "  output MB/s: off {:.1} ({}), on {:.1} ({}); on/off {:.2}",
        mean(&rate(&off)),
        range(&rate(&off)),
        mean(&rate(&on)),
        range(&rate(&on)),
        mean(&rate(&on)) / mean(&rate(&off)).max(1e-9)
    );
    println!(
        "  gateway CPU s per MB: off {:.4} ({}), on {:.4} ({}); on/off {:.2}",
        mean(&cpu(&off)),
        range(&cpu(&off)),
        mean(&cpu(&on)),
        range(&cpu(&on)),
        mean(&cpu(&on)) / mean(&cpu(&off)).max(1e-9)
    );
    println!("  recording MB per MB of output: {:.2} ({})", mean(&sizes), range(&sizes));

    // Interactive terminal.
    let (cpu_off, _) = interactive(&gateway, &sshd, pid, seconds, false).await?;
    let (cpu_on, size) = interactive(&gateway, &sshd, pid, seconds, true).await?;
    println!(
        "interactive browser terminal ({seconds} s, a 40-line listing every 2 s): gateway CPU s per minute off {cpu_off:.3}, on {cpu_on:.3}; recording {:.0} KB per minute",
        size.unwrap_or(0.0) / 1e3
    );

    // Desktop: the worst case (whole screen repainted 40 times a second), and still.
    let repaints = if smoke { 20 } else { 400 };
    set_recording(&gateway, false)?;
    let d_off = crate::desktop::measure(&gateway, pid, repaints).await?;
    set_recording(&gateway, true)?;
    let d_on = crate::desktop::measure(&gateway, pid, repaints).await?;
    let d_size = newest_recording_size(&gateway).await? as f64;
    println!(
        "browser desktop {}x{} repainted 40/s: off {:.1} fps, gateway {:.2} cores; on {:.1} fps, gateway {:.2} cores ({:.2}×); recording {:.1} MB per minute",
        d_on.width,
        d_on.height,
        d_off.frames as f64 / d_off.seconds,
        d_off.gateway_cores,
        d_on.frames as f64 / d_on.seconds,
        d_on.gateway_cores,
        d_on.gateway_cores / d_off.gateway_cores.max(1e-9),
        d_size / 1e6 / (d_on.seconds / 60.0)
    );
    let still = crate::desktop::still(&gateway, pid, if smoke { 2 } else { seconds }).await?;
    let still_size = newest_recording_size(&gateway).await? as f64;
    println!(
        "browser desktop still for {:.0} s: gateway {:.3} cores; recording {:.0} KB per minute",
        still.seconds,
        still.gateway_cores,
        still_size / 1e3 / (still.seconds / 60.0)
    );
    Ok(())
}
