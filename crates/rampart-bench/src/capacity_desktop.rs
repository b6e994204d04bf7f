//! What one node holds in browser desktops: desktops opened as a browser opens them (the
//! Connect form, then the desktop page's WebSocket) on one real RDP server (FreeRDP's shadow
//! server, 1024×768), more and more of them, at an office workload: a terminal window on the
//! server's screen printing a line every second (about a fifth of the screen redrawn each
//! second), or with `page` the whole screen changing every 2 s (a plaid of new colours, as
//! switching windows or pages does), every desktop reading its frames as the page does. At each step: the desktops
//! still receiving frames, the frames each got per second, the gateway's resident memory and
//! CPU per desktop, and the RDP server's CPU (it runs on the same two cores).
//! Opening stops at the first desktop that fails, and that failure is reported as the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use rampart_e2e::{Gateway, Process};
use tokio_tungstenite::tungstenite::Message;

use crate::peers::{cpu_seconds, rss_bytes};
use crate::terminal::{Portal, PortalSocket};

/// Desktops being opened at once.
const OPENING_AT_ONCE: usize = 4;
/// How long a new desktop has to show its first frame.
const FIRST_FRAME: Duration = Duration::from_secs(60);
const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;

/// One step of the table.
struct Step {
    opened: usize,
    held: usize,
    frames_per_s_median: f64,
    frames_per_s_min: f64,
    kib_per_s: f64,
    rss_mib: f64,
    rss_per_desktop_mib: f64,
    gateway_cores: f64,
    server_cores: f64,
}

/// What one desktop has received.
#[derive(Default)]
struct Received {
    frames: AtomicUsize,
    bytes: AtomicUsize,
    ended: AtomicBool,
}

/// Reads a desktop's frames as the page does, counting them, until `stop`.
async fn read_frames(mut ws: PortalSocket, seen: Arc<Received>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Binary(b)))) => {
                seen.frames.fetch_add(1, Ordering::Relaxed);
                seen.bytes.fetch_add(b.len(), Ordering::Relaxed);
            }
            Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => break,
            Ok(Some(Ok(_))) => {}
            Ok(_) => break,
        }
    }
    seen.ended.store(true, Ordering::Relaxed);
    let _ = ws.close(None).await;
}

/// The connect form's fields for the shadow server at `port`.
fn fields(port: &str) -> Vec<(&'static str, String)> {
    [
        ("target", "ip"),
        ("ip", "127.0.0.1"),
        ("protocol", "rdp"),
        ("port", port),
        ("username", "bench"),
        ("auth", "password"),
        ("password", "unused"),
        ("width", "1024"),
        ("height", "768"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// Opens one desktop and waits for its first frame.
async fn open_one(portal: &Portal, port: &str) -> Result<(PortalSocket, usize)> {
    let owned = fields(port);
    let fields: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ws = portal.open(&fields).await?;
    let deadline = Instant::now() + FIRST_FRAME;
    loop {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Err(_) => bail!("no frame within {} s", FIRST_FRAME.as_secs()),
            Ok(Some(Ok(Message::Binary(b)))) => return Ok((ws, b.len())),
            Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => bail!("desktop ended: {t}"),
            Ok(Some(Ok(_))) => {}
            Ok(other) => bail!("desktop WebSocket: {other:?}"),
        }
    }
}

/// The X display, its RDP server and the workload on it (all live as long as this).
struct Server {
    port: String,
    pid: u32,
    _processes: (Process, Process, Process),
}

/// What changes on the server's screen while the desktops watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// A terminal window printing a line every second.
    Line,
    /// The whole screen changing every 2 s.
    Page,
}

impl Workload {
    fn describe(self) -> &'static str {
        match self {
            Workload::Line => "a terminal printing a line a second on its screen",
            Workload::Page => "its whole screen changing every 2 s",
        }
    }
}

fn start_server(workload: Workload) -> Result<Server> {
    let n = 950 + std::process::id() % 40;
    let xvfb = rampart_e2e::xvfb_sized(n, WIDTH, HEIGHT)?;
    let (shadow, port) = rampart_e2e::shadow_server(n, false)?;
    let mut cmd = match workload {
        Workload::Line => {
            let mut cmd = std::process::Command::new("xterm");
            cmd.args([
                "-geometry",
                "80x24+0+0",
                "-e",
                "bash",
                "-c",
                "while :; do date +%T.%N; sleep 1; done",
            ]);
            cmd
        }
        Workload::Page => {
            let mut cmd = std::process::Command::new("bash");
            cmd.args([
                "-c",
                "i=0; while :; do xsetroot -mod $((2 + i % 7)) $((3 + i % 5)) \\
                 -fg \"#$(printf %06x $((RANDOM * 512)))\" -bg \"#$(printf %06x $((RANDOM * 256)))\"; \\
                 i=$((i + 1)); sleep 2; done",
            ]);
            cmd
        }
    };
    cmd.env("DISPLAY", format!(":{n}")).stderr(std::process::Stdio::null());
    let workload = Process::spawn(cmd, "xterm workload")?;
    let pid = shadow.child.id();
    Ok(Server { port: port.to_string(), pid, _processes: (xvfb, shadow, workload) })
}

pub async fn run(smoke: bool, sizes: &[usize], workload: Workload) -> Result<()> {
    crate::raise_fd_limit();
    let sizes: Vec<usize> = if smoke { vec![2] } else { sizes.to_vec() };
    let window = if smoke { Duration::from_secs(5) } else { Duration::from_secs(20) };
    let gateway = tokio::task::block_in_place(|| Gateway::start(&[("RAMPART_LOG", "error")]))?;
    gateway.allow_loopback()?;
    let server = tokio::task::block_in_place(|| start_server(workload))?;
    let pid = gateway.process.child.id();
    let portal = Arc::new(Portal::sign_in(&gateway).await?);
    let stop = Arc::new(AtomicBool::new(false));
    let base_rss = rss_bytes(pid)? as f64;
    let mut desktops: Vec<Arc<Received>> = Vec::new();
    let (mut steps, mut limit) = (Vec::new(), None::<String>);
    for &target in &sizes {
        let started = Instant::now();
        while desktops.len() < target && limit.is_none() {
            let batch = OPENING_AT_ONCE.min(target - desktops.len());
            let opening = (0..batch).map(|_| open_one(&portal, &server.port));
            for result in futures_util::future::join_all(opening).await {
                match result {
                    Ok((ws, first)) => {
                        let seen = Arc::new(Received::default());
                        seen.bytes.fetch_add(first, Ordering::Relaxed);
                        tokio::spawn(read_frames(ws, seen.clone(), stop.clone()));
                        desktops.push(seen);
                    }
                    Err(e) => limit = Some(format!("desktop {} could not open: {e:#}", desktops.len() + 1)),
                }
            }
        }
        eprintln!(
            "capacity: {} desktops open ({:.1} s to open this step)",
            desktops.len(),
            started.elapsed().as_secs_f64()
        );
        // Settle (the first full frames), then measure over the window.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before: Vec<(usize, usize)> = desktops
            .iter()
            .map(|d| (d.frames.load(Ordering::Relaxed), d.bytes.load(Ordering::Relaxed)))
            .collect();
        let (gw0, srv0) = (cpu_seconds(&[pid]), cpu_seconds(&[server.pid]));
        let t0 = Instant::now();
        tokio::time::sleep(window).await;
        let secs = t0.elapsed().as_secs_f64();
        let (gateway_cores, server_cores) =
            ((cpu_seconds(&[pid]) - gw0) / secs, (cpu_seconds(&[server.pid]) - srv0) / secs);
        let mut rates: Vec<f64> = Vec::new();
        let mut bytes = 0usize;
        for (d, (f0, b0)) in desktops.iter().zip(&before) {
            let frames = d.frames.load(Ordering::Relaxed) - f0;
            bytes += d.bytes.load(Ordering::Relaxed) - b0;
            if frames > 0 && !d.ended.load(Ordering::Relaxed) {
                rates.push(frames as f64 / secs);
            }
        }
        rates.sort_by(f64::total_cmp);
        let held = rates.len();
        let rss = rss_bytes(pid)? as f64;
        steps.push(Step {
            opened: desktops.len(),
            held,
            frames_per_s_median: rates.get(held / 2).copied().unwrap_or(0.0),
            frames_per_s_min: rates.first().copied().unwrap_or(0.0),
            kib_per_s: bytes as f64 / 1024.0 / secs / desktops.len().max(1) as f64,
            rss_mib: rss / 1048576.0,
            rss_per_desktop_mib: (rss - base_rss) / 1048576.0 / held.max(1) as f64,
            gateway_cores,
            server_cores,
        });
        if limit.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    println!("browser desktops on one node ({WIDTH}×{HEIGHT}, one RDP server, {}):", workload.describe());
    println!(
        "| desktops opened | still receiving frames | frames/s each, median (min) | KiB/s each | gateway RSS | RSS per desktop | gateway CPU | CPU per desktop | RDP server CPU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &steps {
        println!(
            "| {} | {} | {:.2} ({:.2}) | {:.1} | {:.0} MiB | {:.2} MiB | {:.2} cores | {:.1} ms/s | {:.2} cores |",
            s.opened,
            s.held,
            s.frames_per_s_median,
            s.frames_per_s_min,
            s.kib_per_s,
            s.rss_mib,
            s.rss_per_desktop_mib,
            s.gateway_cores,
            s.gateway_cores * 1000.0 / s.held.max(1) as f64,
            s.server_cores
        );
    }
    if let Some(limit) = limit {
        println!("limit: {limit}");
    }
    let first = steps.first().context("no step measured")?;
    anyhow::ensure!(first.held > 0, "no desktop received a frame while its screen changed");
    Ok(())
}
