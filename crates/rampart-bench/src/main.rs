//! `rampart-bench`: Rampart's tunnel measured side by side with direct TCP (the ceiling),
//! OpenSSH `ssh -L` (default cipher and aes128-gcm) and a stunnel4 pair, in one run, on
//! loopback only. Every byte of the throughput runs is checksummed, and uploads rely on TCP
//! half-close being carried through. `--smoke` checks all of that in seconds (CI).
//!
//! Run: `./scripts/bench.sh` (release build; `--write BENCHMARKS.md` rewrites the table).

mod az;
mod capacity;
mod capacity_desktop;
mod desktop;
mod desktop_browser;
mod peers;
mod recording;
mod soak;
mod stats;
mod stores;
mod target;
mod terminal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use rampart_e2e::{Gateway, Process, Sshd, wait_for_port};
use tokio::net::TcpListener;

use crate::stats::Summary;

#[derive(Debug, Parser)]
#[command(about = "Benchmark Rampart's tunnel against direct TCP, ssh -L and stunnel (loopback only)")]
struct Args {
    /// Seconds-long correctness run: small sizes, one repetition, no timing claims.
    #[arg(long)]
    smoke: bool,
    /// Repetitions of each throughput measurement [default: 5; smoke: 1].
    #[arg(long)]
    repeat: Option<usize>,
    /// MiB moved per throughput measurement [default: 1024; smoke: 8].
    #[arg(long)]
    size_mib: Option<u64>,
    /// Round trips of 64 bytes [default: 20000; smoke: 200].
    #[arg(long)]
    round_trips: Option<usize>,
    /// Concurrent idle connections through the tunnel [default: 10000; smoke: 100].
    #[arg(long)]
    idle: Option<usize>,
    /// Rewrite the results section of this file (BENCHMARKS.md).
    #[arg(long)]
    write: Option<PathBuf>,
    /// Soak instead: this many seconds of checksummed echo traffic on `--soak-connections`
    /// concurrent tunnelled connections, then check the gateway is back to its baseline.
    #[arg(long)]
    soak: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    soak_connections: usize,
    /// Only the browser desktop (RDP) measurement, printed as one line.
    #[arg(long)]
    desktop_only: bool,
    /// Only the stores row: the tunnel through a gateway on SQLite and one on PostgreSQL.
    #[arg(long)]
    stores: bool,
    /// Only what session recording costs: terminals and desktops, recording off and on.
    #[arg(long)]
    recording: bool,
    /// Only what one node holds: browser terminals against a real sshd, opened in steps.
    #[arg(long)]
    capacity: bool,
    /// The steps of `--capacity`: terminals open at each [default: 100,500,1000].
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    capacity_terminals: Vec<usize>,
    /// Only what one node holds in browser desktops: one RDP server at an office workload,
    /// desktops opened in steps.
    #[arg(long)]
    capacity_desktops: bool,
    /// The steps of `--capacity-desktops`: desktops open at each [default: 10,50,100].
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    capacity_desktop_steps: Vec<usize>,
    /// What changes on the RDP server's screen during `--capacity-desktops`.
    #[arg(long, value_enum, default_value = "line")]
    capacity_desktop_workload: capacity_desktop::Workload,
    /// Only the browser desktop's input latency: mouse move to screen update, p50 and p99.
    #[arg(long)]
    input_latency: bool,
    /// The real Azure CLI's tunnel beside `rampart network bastion tunnel`.
    #[arg(long)]
    az: bool,
}

/// Latency and new-connection samples are taken in this many rounds over the paths.
const LATENCY_ROUNDS: usize = 4;

/// One way from the harness to the target.
struct Path {
    name: &'static str,
    addr: SocketAddr,
    /// Processes (with their children) whose CPU counts for this path.
    pids: Vec<u32>,
    up: Vec<f64>,
    down: Vec<f64>,
    cpu_per_gib: Vec<f64>,
    rtt: Option<Summary>,
    /// CPU of its processes per round trip, µs (none for direct TCP).
    cpu_per_round_trip: Option<f64>,
    first_byte: Option<Summary>,
    /// For Rampart's paths: the gateway's own mean time to admit a new connection (checks,
    /// dial, durable open record), from its `rampart_connect_seconds` histogram.
    admission: Option<Duration>,
}

impl Path {
    fn new(name: &'static str, port: u16, pids: Vec<u32>) -> Path {
        Path {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pids,
            up: vec![],
            down: vec![],
            cpu_per_gib: vec![],
            rtt: None,
            cpu_per_round_trip: None,
            first_byte: None,
            admission: None,
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    if let Some(seconds) = args.soak {
        return soak::run(Duration::from_secs(seconds.clamp(1, 3600)), args.soak_connections.clamp(1, 5000))
            .await;
    }
    if args.stores {
        return stores::run(args.smoke).await;
    }
    if args.recording {
        return recording::run(args.smoke).await;
    }
    if args.capacity {
        return capacity::run(args.smoke, &args.capacity_terminals).await;
    }
    if args.capacity_desktops {
        return capacity_desktop::run(
            args.smoke,
            &args.capacity_desktop_steps,
            args.capacity_desktop_workload,
        )
        .await;
    }
    if args.az {
        return az::run(args.smoke).await;
    }
    if args.input_latency {
        let gateway = tokio::task::block_in_place(|| Gateway::start(&[("RAMPART_LOG", "error")]))?;
        gateway.allow_loopback()?;
        let moves = if args.smoke { 10 } else { 300 };
        // Pictures, then the server's H.264 passed through, in the same gateway.
        for video in [false, true] {
            let s = desktop::input_latency(&gateway, moves, video).await?;
            println!(
                "browser desktop (RDP) 1920x1080, mouse move to screen update through the gateway, {}, {moves} moves: p50 {:.1} ms, p99 {:.1} ms",
                if video { "H.264 passed through" } else { "pictures" },
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3
            );
        }
        return Ok(());
    }
    if args.desktop_only {
        let gateway = tokio::task::block_in_place(|| Gateway::start(&[("RAMPART_LOG", "error")]))?;
        gateway.allow_loopback()?;
        let pid = gateway.process.child.id();
        let (repaints, runs) = if args.smoke { (80, 1) } else { (600, 2) };
        let dir = tempfile::tempdir()?;
        let library = desktop_browser::build_preset_library(dir.path())?;
        let fast = desktop_browser::ServerPreset { library: &library, preset: "ultrafast" };
        // Pictures (the baseline: a browser without WebCodecs), then video with the server's
        // encoder as shipped and at x264's fastest preset, alternating.
        let paths: [(&str, bool, Option<desktop_browser::ServerPreset<'_>>); 3] = [
            ("pictures (no WebCodecs)", false, None),
            ("H.264 passed through, server x264 preset medium (FreeRDP's own)", true, None),
            ("H.264 passed through, server x264 preset ultrafast", true, Some(fast)),
        ];
        let mut results = vec![];
        for _ in 0..runs {
            let mut run = vec![];
            for (name, video, preset) in paths {
                let d = tokio::task::block_in_place(|| {
                    desktop_browser::run(&gateway, pid, repaints, video, preset)
                })?;
                println!(
                    "browser desktop (RDP) 1920x1080 in Chromium, {repaints} full-screen repaints, {name}: {:.1} fps drawn in the page ({} frames in {:.1} s), gateway {:.2} cores (CPU 1), RDP server {:.2} cores (CPU 0); then the canvas matched a screenshot of the server's screen (within {} levels)",
                    d.fps, d.frames, d.seconds, d.gateway_cores, d.server_cores, d.image_diff,
                );
                run.push(d);
            }
            results.push(run);
        }
        let per_frame = |d: &desktop_browser::BrowserDesktop| d.gateway_cores / d.fps.max(1e-9);
        for run in &results {
            let [pictures, medium, ultrafast] = [run[0], run[1], run[2]];
            println!(
                "ratio video / pictures: fps {:.2}x (ultrafast {:.2}x), gateway CPU per frame {:.2}x (ultrafast {:.2}x)",
                medium.fps / pictures.fps.max(1e-9),
                ultrafast.fps / pictures.fps.max(1e-9),
                per_frame(&medium) / per_frame(&pictures).max(1e-12),
                per_frame(&ultrafast) / per_frame(&pictures).max(1e-12),
            );
        }
        return Ok(());
    }
    let smoke = args.smoke;
    let repeat = args.repeat.unwrap_or(if smoke { 1 } else { 5 });
    let size = args.size_mib.unwrap_or(if smoke { 8 } else { 1024 }) * 1024 * 1024;
    let round_trips = args.round_trips.unwrap_or(if smoke { 200 } else { 20_000 });
    let mut idle = args.idle.unwrap_or(if smoke { 100 } else { 10_000 });
    // Each idle connection costs about two descriptors in each process it crosses.
    let fd_limit = raise_fd_limit();
    if (idle as u64) * 2 + 1000 > fd_limit {
        let fit = ((fd_limit.saturating_sub(1000)) / 2) as usize;
        eprintln!("note: open-file limit {fd_limit} fits {fit} idle connections, not {idle}");
        idle = fit;
    }

    let pattern = target::pattern();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let target_port = listener.local_addr()?.port();
    tokio::spawn(target::serve(listener, pattern.clone()));
    eprintln!("target on 127.0.0.1:{target_port}; starting the gateway, sshd, ssh -L and stunnel");

    let started = tokio::task::block_in_place(|| Setup::start(target_port))?;
    let mut paths = vec![Path::new("direct TCP", target_port, vec![])];
    paths.push(Path::new(
        "rampart tunnel",
        started.tunnel.port,
        vec![started.gateway_pid(), started.tunnel_pid()],
    ));
    paths.push(Path::new(
        "rampart tunnel v2 (HTTP/2 streams)",
        started.tunnel_v2.port,
        vec![started.gateway_pid(), started.tunnel_v2.process.child.id()],
    ));
    paths.push(Path::new(
        "rampart tunnel v1 (WebSocket each)",
        started.tunnel_v1.port,
        vec![started.gateway_pid(), started.tunnel_v1.process.child.id()],
    ));
    for (name, (process, port)) in
        ["ssh -L (default cipher)", "ssh -L aes128-gcm"].into_iter().zip(&started.ssh)
    {
        paths.push(Path::new(name, *port, vec![process.child.id(), started.sshd.process.child.id()]));
    }
    if let Some((server, client, port)) = &started.stunnel {
        paths.push(Path::new("stunnel pair", *port, vec![server.child.id(), client.child.id()]));
    }

    // Memory per idle connection first, while the gateway is fresh: after the bulk transfers
    // its allocator holds freed buffers that new connections reuse, and at about 1 KiB per
    // connection that reuse is larger than what is measured.
    let idle_result = idle_connections(&started, idle).await?;

    // Throughput: repetitions round-robin over the paths, so drift hits all alike.
    let gib = size as f64 / (1u64 << 30) as f64;
    for rep in 0..repeat {
        for p in paths.iter_mut() {
            let cpu0 = peers::cpu_seconds(&p.pids);
            let up =
                target::upload(p.addr, &pattern, size).await.with_context(|| format!("{} upload", p.name))?;
            let down =
                target::download(p.addr, size).await.with_context(|| format!("{} download", p.name))?;
            let cpu = peers::cpu_seconds(&p.pids) - cpu0;
            p.up.push(size as f64 / up.as_secs_f64() / 1e6);
            p.down.push(size as f64 / down.as_secs_f64() / 1e6);
            if !p.pids.is_empty() {
                p.cpu_per_gib.push(cpu / (2.0 * gib));
            }
            eprintln!(
                "rep {}/{repeat} {:<24} up {:>7.0} MB/s  down {:>7.0} MB/s  cpu {:.2} s",
                rep + 1,
                p.name,
                p.up[rep],
                p.down[rep],
                cpu
            );
        }
    }

    // Latency and connection setup, in rounds over the paths like the throughput repetitions,
    // so the shared host's drift during a run hits every path alike.
    let new_conns = if smoke { 20 } else { 200 };
    let rounds = if smoke { 1 } else { LATENCY_ROUNDS };
    let mut rtts = vec![Vec::new(); paths.len()];
    let mut rtt_cpu = vec![(0.0, 0usize); paths.len()];
    let mut firsts = vec![Vec::new(); paths.len()];
    let mut admitted = vec![(0.0, 0u64); paths.len()];
    let limit = Duration::from_secs(60) / rounds as u32;
    for _ in 0..rounds {
        for (i, p) in paths.iter().enumerate() {
            let cpu0 = peers::cpu_seconds(&p.pids);
            let samples = target::round_trips(p.addr, round_trips.div_ceil(rounds), limit).await?;
            rtt_cpu[i].0 += peers::cpu_seconds(&p.pids) - cpu0;
            rtt_cpu[i].1 += samples.len();
            rtts[i].extend(samples);
            let before = admission_seconds(&started.gateway).await?;
            for _ in 0..new_conns / rounds {
                firsts[i].push(
                    target::first_byte(p.addr).await.with_context(|| format!("{} new connection", p.name))?,
                );
            }
            let after = admission_seconds(&started.gateway).await?;
            admitted[i].0 += after.0 - before.0;
            admitted[i].1 += after.1.saturating_sub(before.1);
        }
    }
    for (i, p) in paths.iter_mut().enumerate() {
        p.rtt = Some(Summary::of(&rtts[i]));
        if !p.pids.is_empty() && rtt_cpu[i].1 > 0 {
            p.cpu_per_round_trip = Some(rtt_cpu[i].0 / rtt_cpu[i].1 as f64 * 1e6);
        }
        p.first_byte = Some(Summary::of(&firsts[i]));
        let (seconds, count) = admitted[i];
        if count > 0 {
            p.admission = Some(Duration::from_secs_f64(seconds / count as f64));
        }
    }

    // A whole `rampart tunnel` start: process start, grant, listen, first echoed byte.
    let mut starts = vec![];
    for _ in 0..if smoke { 1 } else { 5 } {
        let t = Instant::now();
        let tunnel = tokio::task::block_in_place(|| started.gateway.tunnel("127.0.0.1", target_port))?;
        target::first_byte(SocketAddr::from(([127, 0, 0, 1], tunnel.port))).await?;
        starts.push(t.elapsed());
    }
    let tunnel_start = Summary::of(&starts);

    // `rampart ssh` to a finished remote command, beside plain ssh to the same sshd.
    let ssh_runs = if smoke { 1 } else { 5 };
    let (mut via_rampart, mut plain) = (vec![], vec![]);
    for _ in 0..ssh_runs {
        let t = Instant::now();
        let out = tokio::task::block_in_place(|| started.rampart_ssh())?;
        anyhow::ensure!(out.status.success(), "rampart ssh failed: {}", String::from_utf8_lossy(&out.stderr));
        via_rampart.push(t.elapsed());
        let t = Instant::now();
        let out = tokio::task::block_in_place(|| {
            started
                .sshd
                .client("ssh", started.sshd.port)
                .arg(format!("{}@127.0.0.1", started.sshd.user))
                .arg("true")
                .output()
        })?;
        anyhow::ensure!(out.status.success(), "plain ssh failed");
        plain.push(t.elapsed());
    }
    let ssh_times = (Summary::of(&via_rampart), Summary::of(&plain));

    let echo = terminal::measure(&started.gateway, &started.sshd, if smoke { 20 } else { 1000 }).await?;
    let desktop =
        desktop::measure(&started.gateway, started.gateway_pid(), if smoke { 20 } else { 600 }).await?;
    let shape = stats::RunShape { size, repeat, round_trips, smoke };
    let report = stats::report(&paths, &tunnel_start, &ssh_times, &idle_result, (&echo, &desktop), &shape);
    println!("{report}");
    if let Some(file) = &args.write {
        stats::write_into(file, &report)?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}

/// The gateway's `rampart_connect_seconds` histogram: (sum of seconds, count).
async fn admission_seconds(gateway: &Gateway) -> Result<(f64, u64)> {
    let trust = rampart_client::Trust::Fingerprint(gateway.fingerprint.clone());
    let tls = rampart_client::trust::client_config(&trust, &[b"http/1.1"])?;
    let http = reqwest::Client::builder().tls_backend_preconfigured(tls).build()?;
    let text =
        http.get(format!("{}/metrics", gateway.url())).send().await?.error_for_status()?.text().await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse::<f64>().ok()))
            .unwrap_or(0.0)
    };
    Ok((value("rampart_connect_seconds_sum"), value("rampart_connect_seconds_count") as u64))
}

/// Opens `count` echo connections through the tunnel, measures the gateway's memory per
/// connection, and checks that every one still echoes.
pub struct IdleResult {
    pub count: usize,
    pub gateway_bytes_per_conn: f64,
    pub tunnel_client_bytes_per_conn: f64,
    pub all_echoed: bool,
}

async fn idle_connections(s: &Setup, count: usize) -> Result<IdleResult> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = SocketAddr::from(([127, 0, 0, 1], s.tunnel.port));
    let (g0, c0) = (peers::rss_bytes(s.gateway_pid())?, peers::rss_bytes(s.tunnel_pid())?);
    let mut conns = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(300);
    for chunk_start in (0..count).step_by(100) {
        let n = 100.min(count - chunk_start);
        let opened = futures_join(n, addr).await?;
        conns.extend(opened);
        anyhow::ensure!(Instant::now() < deadline, "opening idle connections took over 300 s");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (g1, c1) = (peers::rss_bytes(s.gateway_pid())?, peers::rss_bytes(s.tunnel_pid())?);
    let mut all_echoed = true;
    for c in conns.iter_mut() {
        let mut b = [0u8; 1];
        let ok = async {
            c.write_all(b"x").await?;
            c.read_exact(&mut b).await?;
            anyhow::Ok(b == *b"x")
        };
        all_echoed &= tokio::time::timeout(Duration::from_secs(10), ok)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(false);
    }
    drop(conns);
    Ok(IdleResult {
        count,
        gateway_bytes_per_conn: (g1 as f64 - g0 as f64) / count.max(1) as f64,
        tunnel_client_bytes_per_conn: (c1 as f64 - c0 as f64) / count.max(1) as f64,
        all_echoed,
    })
}

async fn futures_join(n: usize, addr: SocketAddr) -> Result<Vec<tokio::net::TcpStream>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(target::echo_connection(addr));
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    Ok(out)
}

/// Everything the paths run through, stopped when dropped.
pub(crate) struct Setup {
    gateway: Gateway,
    pub(crate) tunnel: rampart_e2e::Tunnel,
    /// The same tunnel over protocol v1 (a TLS connection and WebSocket per connection).
    tunnel_v1: rampart_e2e::Tunnel,
    /// The same tunnel over protocol v2 (one TLS connection, each connection an HTTP/2 stream).
    tunnel_v2: rampart_e2e::Tunnel,
    sshd: Sshd,
    ssh: Vec<(Process, u16)>,
    stunnel: Option<(Process, Process, u16)>,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub(crate) fn start(target_port: u16) -> Result<Setup> {
        let gateway = Gateway::start(&[("RAMPART_LOG", "error")])?;
        gateway.allow_loopback()?;
        let tunnel = gateway.tunnel("127.0.0.1", target_port)?;
        let port = target_port.to_string();
        let tunnel_v1 = gateway.tunnel_with_env(
            &[("RAMPART_TUNNEL_PROTOCOL", "v1")],
            &["-n", "default", "-g", "default", "--target-ip-address", "127.0.0.1", "--resource-port", &port],
        )?;
        let tunnel_v2 = gateway.tunnel_with_env(
            &[("RAMPART_TUNNEL_PROTOCOL", "v2")],
            &["-n", "default", "-g", "default", "--target-ip-address", "127.0.0.1", "--resource-port", &port],
        )?;
        let sshd = Sshd::start()?;
        let ssh = vec![
            peers::ssh_forward(&sshd, target_port, None)?,
            peers::ssh_forward(&sshd, target_port, Some("aes128-gcm@openssh.com"))?,
        ];
        let dir = tempfile::tempdir()?;
        let tls = gateway.data_dir.join("tls");
        let stunnel =
            match peers::stunnel_pair(dir.path(), &tls.join("cert.pem"), &tls.join("key.pem"), target_port) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: no stunnel baseline: {e:#}");
                    None
                }
            };
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], tunnel.port)), Duration::from_secs(5))?;
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], tunnel_v1.port)), Duration::from_secs(5))?;
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], tunnel_v2.port)), Duration::from_secs(5))?;
        Ok(Setup { gateway, tunnel, tunnel_v1, tunnel_v2, sshd, ssh, stunnel, _dir: dir })
    }

    /// `rampart ssh … -- true` with the sshd's key, to the target by IP.
    fn rampart_ssh(&self) -> Result<std::process::Output> {
        let key = self.sshd.dir.path().join("userkey");
        Ok(self
            .gateway
            .cli()
            .args([
                "ssh",
                "-n",
                "default",
                "-g",
                "default",
                "--target-ip-address",
                "127.0.0.1",
                "--resource-port",
            ])
            .arg(self.sshd.port.to_string())
            .args(["--username", &self.sshd.user, "--ssh-key"])
            .arg(key)
            .args(["--strict-host-key-checking", "accept-new", "--", "-o", "BatchMode=yes", "true"])
            .stdin(std::process::Stdio::null())
            .output()?)
    }

    pub(crate) fn gateway_pid(&self) -> u32 {
        self.gateway.process.child.id()
    }

    fn tunnel_pid(&self) -> u32 {
        self.tunnel.process.child.id()
    }
}

/// Raises the soft (and, as root, the hard) open-file limit; returns the soft limit.
pub(crate) fn raise_fd_limit() -> u64 {
    use rlimit::Resource;
    let want = 65_536;
    if Resource::NOFILE.set(want, want).is_err()
        && let Ok((_, hard)) = Resource::NOFILE.get()
    {
        let _ = Resource::NOFILE.set(hard, hard);
    }
    Resource::NOFILE.get().map(|(soft, _)| soft).unwrap_or(1024)
}
