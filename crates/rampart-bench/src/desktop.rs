//! The browser desktop under full-screen change: an RDP server (FreeRDP's shadow server on a
//! 1920×1080 Xvfb display) whose whole screen is repainted as fast as `xsetroot` can, seen
//! through the portal's WebSocket as a browser sees it. Counts the frames that reach the
//! "browser" per second and the gateway's CPU meanwhile. The shadow server captures the screen
//! at its own rate and the gateway sends at most one frame per 33 ms, so about 30 fps is the
//! ceiling of this setup.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::StreamExt;
use rampart_e2e::Gateway;
use tokio_tungstenite::tungstenite::Message;

use crate::peers;
use crate::terminal::{PortalSocket, open_portal_session};

pub struct DesktopResult {
    pub width: u32,
    pub height: u32,
    pub repaints: usize,
    pub frames: usize,
    pub bytes: usize,
    pub seconds: f64,
    /// Gateway CPU time over the measurement, in cores.
    pub gateway_cores: f64,
}

/// The portal's desktop of a fresh 1920×1080 display, once its first frames have arrived.
/// With `video`, as a browser that decodes H.264: the server's video passed through.
async fn open_desktop(gateway: &Gateway, video: bool) -> Result<(Desktop, PortalSocket)> {
    let (width, height) = (1920, 1080);
    let n = 900 + std::process::id() % 50;
    let display = format!(":{n}");
    let xvfb = tokio::task::block_in_place(|| rampart_e2e::xvfb_sized(n, width, height))?;
    let (shadow, port) = tokio::task::block_in_place(|| rampart_e2e::shadow_server(n, false))?;
    let port = port.to_string();
    let mut fields = vec![
        ("target", "ip"),
        ("ip", "127.0.0.1"),
        ("protocol", "rdp"),
        ("port", port.as_str()),
        ("username", "bench"),
        ("auth", "password"),
        ("password", "unused"),
        ("width", "1920"),
        ("height", "1080"),
    ];
    if video {
        fields.push(("video", "h264"));
    }
    let mut ws = open_portal_session(gateway, &fields).await?;
    // The first frames (the whole desktop), then quiet.
    let settle = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => bail!("desktop ended: {t}"),
            Ok(Some(Ok(_))) => {}
            Ok(other) => bail!("desktop WebSocket: {other:?}"),
        }
    }
    Ok((Desktop { width, height, display, _processes: (xvfb, shadow) }, ws))
}

/// The display a desktop shows (its X server and RDP server live as long as this).
struct Desktop {
    width: u32,
    height: u32,
    display: String,
    _processes: (rampart_e2e::Process, rampart_e2e::Process),
}

/// A desktop left still for `seconds`: the gateway's CPU meanwhile.
pub async fn still(gateway: &Gateway, gateway_pid: u32, seconds: u64) -> Result<DesktopResult> {
    let (desktop, mut ws) = open_desktop(gateway, false).await?;
    let cpu0 = peers::cpu_seconds(&[gateway_pid]);
    let t0 = Instant::now();
    let (mut frames, mut bytes) = (0usize, 0usize);
    while t0.elapsed() < Duration::from_secs(seconds) {
        if let Ok(Some(Ok(Message::Binary(b)))) =
            tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        {
            frames += 1;
            bytes += b.len();
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let gateway_cores = (peers::cpu_seconds(&[gateway_pid]) - cpu0) / seconds;
    let _ = ws.close(None).await;
    Ok(DesktopResult {
        width: desktop.width,
        height: desktop.height,
        repaints: 0,
        frames,
        bytes,
        seconds,
        gateway_cores,
    })
}

pub async fn measure(gateway: &Gateway, gateway_pid: u32, repaints: usize) -> Result<DesktopResult> {
    let (desktop, mut ws) = open_desktop(gateway, false).await?;
    let (width, height, display) = (desktop.width, desktop.height, desktop.display.clone());
    // Every pixel changes 40 times a second: a plaid whose cell size and colours change each
    // time (what a video or a scrolling page costs, more than a flat colour would).
    let t0 = Instant::now();
    let pace = Duration::from_millis(25);
    let painter = tokio::spawn(async move {
        for i in 0..repaints {
            let fg = format!("#{:02x}{:02x}{:02x}", (i * 37) % 256, (i * 91) % 256, (i * 13) % 256);
            let bg = format!("#{:02x}{:02x}{:02x}", (i * 53) % 256, (i * 29) % 256, (i * 71) % 256);
            let (x, y) = ((2 + i % 7).to_string(), (3 + i % 5).to_string());
            let _ = tokio::process::Command::new("xsetroot")
                .args(["-display", &display, "-mod", &x, &y, "-fg", &fg, "-bg", &bg])
                .status()
                .await;
            let next = t0 + pace * u32::try_from(i + 1).unwrap_or(u32::MAX);
            tokio::time::sleep_until(next.into()).await;
        }
    });
    let cpu0 = peers::cpu_seconds(&[gateway_pid]);
    let (mut frames, mut bytes) = (0usize, 0usize);
    let limit = Duration::from_secs(120);
    // Frames that arrive while the screen changes; the painter's end closes the window.
    loop {
        if painter.is_finished() {
            let _ = painter.await;
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Err(_) => bail!("no frame for 5 s while the screen was changing"),
            Ok(Some(Ok(Message::Binary(b)))) => {
                frames += 1;
                bytes += b.len();
            }
            Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => bail!("desktop ended: {t}"),
            Ok(Some(Ok(_))) => {}
            Ok(other) => bail!("desktop WebSocket: {other:?}"),
        }
        if t0.elapsed() > limit {
            bail!("the desktop measurement ran over {} s", limit.as_secs());
        }
    }
    // Frames, seconds and CPU over one window, from the first repaint until the loop saw the
    // painter finished (the painter's own end time made a short smoke run's window shorter than
    // the CPU counted over it: 4.7 "cores" on 2).
    let seconds = t0.elapsed().as_secs_f64().max(1e-3);
    let gateway_cores = (peers::cpu_seconds(&[gateway_pid]) - cpu0) / seconds;
    let _ = ws.close(None).await;
    Ok(DesktopResult { width, height, repaints, frames, bytes, seconds, gateway_cores })
}

/// Mouse move to screen update through the gateway: an xeyes window on the server's screen
/// follows the pointer, so each move the page sends makes the server draw; the time from
/// sending the move to the next frame reaching the "browser", `moves` times (alternating
/// between two far points), each once the screen is quiet again. It includes the server's own
/// capture interval and encoding, as a user would see it. With `video`, the server's H.264
/// passed through (the time to the message reaching the harness, which plays the page, not its decoding there).
pub async fn input_latency(gateway: &Gateway, moves: usize, video: bool) -> Result<crate::stats::Summary> {
    use futures_util::SinkExt;
    let (desktop, mut ws) = open_desktop(gateway, video).await?;
    let mut eyes = std::process::Command::new("xeyes");
    eyes.env("DISPLAY", &desktop.display).args(["-geometry", "400x300+700+400"]);
    let _eyes = tokio::task::block_in_place(|| rampart_e2e::Process::spawn(eyes, "xeyes"))?;
    let quiet = |ms: u64| Duration::from_millis(ms);
    // The window's first drawing, then quiet.
    while let Ok(Some(_)) = tokio::time::timeout(quiet(1000), ws.next()).await {}
    let mut samples = Vec::with_capacity(moves);
    for i in 0..moves {
        let (x, y) = if i % 2 == 0 { (100, 100) } else { (1800, 1000) };
        let t = Instant::now();
        ws.send(Message::Text(format!(r#"{{"type":"mouse","x":{x},"y":{y}}}"#).into())).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Err(_) => bail!("no frame within 5 s of a mouse move"),
                Ok(Some(Ok(Message::Binary(_)))) => break,
                Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => bail!("desktop ended: {t}"),
                Ok(Some(Ok(_))) => {}
                Ok(other) => bail!("desktop WebSocket: {other:?}"),
            }
        }
        samples.push(t.elapsed());
        // The rest of this update, until the screen is quiet.
        while let Ok(Some(_)) = tokio::time::timeout(quiet(150), ws.next()).await {}
    }
    let _ = ws.close(None).await;
    Ok(crate::stats::Summary::of(&samples))
}
