//! A recorded browser desktop (Premium): an RDP desktop in Chromium (freerdp-shadow-cli on an
//! Xvfb display) on a recording bastion is recorded as its pictures with keyframes; the
//! portal's player plays it (the first screen at its start, the last at its end, a screenshot
//! kept); `recording list` shows it as rdp, `export` writes the rampart-desktop file, and
//! `verify` passes. While it runs an operator watches it live (the user is told; the watcher
//! sees the change); the join is audited.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

#[test]
fn a_browser_desktop_is_recorded_and_plays_back() -> Result<()> {
    for needed in ["/usr/bin/freerdp-shadow-cli", "/usr/bin/Xvfb", "/usr/bin/xsetroot"] {
        ensure!(Path::new(needed).exists(), "{needed} is missing: the README's test command installs it");
    }
    let n = 300 + std::process::id() % 150;
    let _xvfb = rampart_e2e::xvfb(n)?;
    let (_shadow, port) = rampart_e2e::shadow_server(n, false)?;
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    gw.update_bastion("default", &["--sku", "Premium", "--enable-session-recording", "true"])?;
    let out = rampart_e2e::artifacts("rdp-recording")?;
    let script = rampart_e2e::spawn_browser_script(
        "rdp-recording.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("BASTION_ID", gw.bastion_id()?),
            ("RDP_DISPLAY", format!(":{n}")),
            ("RDP_PORT", port.to_string()),
        ],
    )?;
    let played = rampart_e2e::finish_browser_script(script, Duration::from_secs(150));

    let listed: Vec<serde_json::Value> = gw.recordings(&[])?;
    // Two desktops were recorded (video, then pictures): each is whole and verifies.
    let rdp: Vec<_> = listed.iter().filter(|r| r["protocol"] == "rdp").collect();
    ensure!(rdp.len() == 2, "two desktop recordings are listed: {listed:?}");
    for rec in &rdp {
        ensure!(rec["format"] == "rampart-desktop-v1" && rec["complete"] == true, "{rec}");
        let id = rec["id"].as_str().context("id")?;
        let (valid, verified) = gw.verify_recording(id)?;
        ensure!(valid && verified.contains("\"valid\": true"), "{verified}");
    }
    let rec = rdp[0];
    ensure!(rec["format"] == "rampart-desktop-v1" && rec["complete"] == true, "{rec}");
    let id = rec["id"].as_str().context("id")?;
    let file = out.join("session.desktop");
    gw.export_recording(id, &file)?;
    let bytes = std::fs::read(&file)?;
    ensure!(bytes.starts_with(b"RAMPART-DESKTOP 1\n"), "the export is the recording's own bytes");
    ensure!(
        rec["sizeBytes"].as_u64() == Some(bytes.len() as u64),
        "the export is the whole recording ({} bytes)",
        bytes.len()
    );
    let text = played.with_context(|| format!("the recording's records: {:?}", records(&bytes)))?;
    for mode in ["H.264 video", "pictures"] {
        ensure!(
            text.contains(&format!("ok - a change on the desktop reaches the watcher too ({mode})")),
            "{text}"
        );
        ensure!(
            text.contains(&format!("ok - playing it through ends on the last screen ({mode})")),
            "{text}"
        );
    }
    ensure!(text.contains("ok - the portal's player plays the desktop"), "{text}");
    ensure!(
        gw.audit()?
            .iter()
            .any(|r| r["event"] == "session-join"
                && r["reason"].as_str().is_some_and(|x| x.contains("(view)"))),
        "the watch is audited"
    );
    ensure!(out.join("desktop-player.png").exists(), "a screenshot of the player is kept");
    let (valid, verified) = gw.verify_recording(id)?;
    ensure!(valid && verified.contains("\"valid\": true"), "{verified}");
    Ok(())
}

/// A desktop recording's records as (kind, milliseconds, length), for a failure's message.
fn records(bytes: &[u8]) -> Vec<(u8, u32, usize)> {
    let Some(start) = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(1).map(|(i, _)| i + 1)
    else {
        return vec![];
    };
    let mut rest = &bytes[start..];
    let mut out = vec![];
    while rest.len() >= 9 {
        let ms = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = u32::from_le_bytes([rest[5], rest[6], rest[7], rest[8]]) as usize;
        out.push((rest[0], ms, len));
        rest = rest.get(9 + len..).unwrap_or_default();
    }
    out
}
