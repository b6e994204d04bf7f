//! The browser desktop under full-screen change in real Chromium (`web/tests/desktop-fps.mjs`):
//! the RDP server (FreeRDP's shadow server and its Xvfb display) and the painter (the
//! application on its screen) pinned to CPU 0, the gateway to CPU 1 with Chromium. Once as a browser with
//! WebCodecs (the server's H.264 passed through) and once as one without (pictures), in the
//! same gateway, alternating. Frames are counted in the page as it draws them. The video runs
//! twice: with the server's H.264 encoder as FreeRDP ships it (x264's "medium" preset, which
//! bounds the frame rate on one core) and at x264's "ultrafast" (`x264_preset.c`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rampart_e2e::Gateway;

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserDesktop {
    pub frames: u64,
    pub video_frames: u64,
    /// Video frames drawn since the desktop opened (the first ones before the measurement).
    pub video_total: u64,
    pub seconds: f64,
    pub fps: f64,
    pub gateway_cores: f64,
    pub server_cores: f64,
    /// The largest colour difference between canvas and server at the photo's points.
    pub image_diff: u64,
}

/// Pins every thread of `pid` (and those it starts later) to `cpu`.
fn pin(pid: u32, cpu: u32) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("taskset (util-linux)")?;
    ensure!(status.success(), "taskset could not pin process {pid} to CPU {cpu}");
    Ok(())
}

/// Builds the library that sets the shadow server's x264 preset (`x264_preset.c`) in `dir`
/// with the machine's C compiler.
pub fn build_preset_library(dir: &Path) -> Result<PathBuf> {
    let source = dir.join("x264_preset.c");
    std::fs::write(&source, include_str!("x264_preset.c"))?;
    let library = dir.join("x264_preset.so");
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .context("cc (the C compiler) builds the preset library")?;
    ensure!(
        output.status.success(),
        "cc could not build the preset library: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(library)
}

/// The server's H.264 encoder preset for a run: `None` keeps FreeRDP's own.
#[derive(Debug, Clone, Copy)]
pub struct ServerPreset<'a> {
    pub library: &'a Path,
    pub preset: &'static str,
}

/// One run: a fresh 1920×1080 display and shadow server, the desktop opened in Chromium.
pub fn run(
    gateway: &Gateway,
    gateway_pid: u32,
    repaints: usize,
    video: bool,
    preset: Option<ServerPreset<'_>>,
) -> Result<BrowserDesktop> {
    let n = 950 + std::process::id() % 40;
    let xvfb = rampart_e2e::xvfb_sized(n, 1920, 1080)?;
    let env: Vec<(String, String)> = preset
        .map(|p| {
            vec![
                ("LD_PRELOAD".into(), p.library.display().to_string()),
                ("RAMPART_X264_PRESET".into(), p.preset.into()),
            ]
        })
        .unwrap_or_default();
    let (shadow, port) = rampart_e2e::shadow_server_with_env(n, &env)?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let server_pids = [xvfb.child.id(), shadow.child.id()];
    if cpus >= 2 {
        for pid in server_pids {
            pin(pid, 0)?;
        }
        pin(gateway_pid, 1)?;
    }
    let script = rampart_e2e::spawn_browser_script(
        "desktop-fps.mjs",
        &[
            ("RAMPART_URL", gateway.url()),
            ("ADMIN_PASSWORD", rampart_e2e::ADMIN_PASSWORD.to_string()),
            ("RDP_DISPLAY", format!(":{n}")),
            ("RDP_PORT", port.to_string()),
            ("REPAINTS", repaints.to_string()),
            ("VIDEO", if video { "1" } else { "0" }.to_string()),
            // Colour levels the photo may be off by afterwards (JPEG's loss on the pictures
            // path, H.264's at FreeRDP's 10 Mbit/s): seen within 2 (pictures) and 3-6 (H.264),
            // once the server's encoder has had a second of plain frames after the burst
            // (desktop-fps.mjs).
            ("IMAGE_TOLERANCE", "12".to_string()),
            ("GATEWAY_PIDS", gateway_pid.to_string()),
            // The painter stands for the application drawing on the server's screen: it runs
            // on the server's core (xsetroot 40 times a second), not beside the browser.
            ("PAINTER_CPU", if cpus >= 2 { "0" } else { "" }.to_string()),
            ("SERVER_PIDS", server_pids.map(|p| p.to_string()).join(",")),
        ],
    )?;
    // The browser shares the gateway's CPU; the server's core holds the server, its display and
    // the painter (the application on the server's screen).
    if cpus >= 2 {
        pin(script.id(), 1)?;
    }
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(180))?;
    let line =
        text.lines().rev().find(|l| l.starts_with('{')).context("desktop-fps.mjs printed no result")?;
    let result: BrowserDesktop = serde_json::from_str(line).context("desktop-fps.mjs's result")?;
    // (A smoke run's two seconds may see no picture from a debug build's gateway; its first
    // frame was awaited by the page already.)
    ensure!(
        result.frames > 0 || (!video && repaints < 200),
        "no frame reached the page while the screen changed"
    );
    if video {
        // (Likewise a smoke run may draw its video before the window: some video must be drawn.)
        let drew = result.video_frames > 0 || (repaints < 200 && result.video_total > 0);
        ensure!(drew, "the page drew no video: the H.264 path was not taken");
    }
    drop((shadow, xvfb));
    Ok(result)
}
