//! Medians, percentiles, the results table and its place in BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path as FsPath;
use std::time::Duration;

use anyhow::Result;

use crate::{IdleResult, Path};

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Summary {
        let mut s = samples.to_vec();
        s.sort();
        let at = |q: f64| {
            s.get(((s.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or_default()
        };
        Summary { p50: at(0.5), p99: at(0.99) }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() > 1 {
        format!("{:.0} ({:.0}–{:.0})", median(v), min, max)
    } else {
        format!("{:.0}", median(v))
    }
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn throughput(p: &Path) -> f64 {
    (median(&p.up) + median(&p.down)) / 2.0
}

/// How a run was sized.
#[derive(Debug, Clone, Copy)]
pub struct RunShape {
    pub size: u64,
    pub repeat: usize,
    pub round_trips: usize,
    pub smoke: bool,
}

pub fn report(
    paths: &[Path],
    tunnel_start: &Summary,
    ssh_times: &(Summary, Summary),
    idle: &IdleResult,
    (echo, desktop): (&crate::terminal::EchoResult, &crate::desktop::DesktopResult),
    shape: &RunShape,
) -> String {
    let RunShape { size, repeat, round_trips, smoke } = *shape;
    let mut r = String::new();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let _ = writeln!(
        r,
        "Measured {} on {cores} cores, loopback only{}. {} MiB per transfer each way, {repeat} repetitions \
         (median, min–max), {round_trips} round trips of 64 bytes, every byte checksummed.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        if smoke { " (SMOKE RUN: sizes too small for the numbers to mean anything)" } else { "" },
        size >> 20,
    );
    r.push_str("| path | upload MB/s | download MB/s | CPU s per GiB (all its processes) | RTT p50 µs | RTT p99 µs | CPU µs per round trip (its processes) | new connection p50 ms |\n");
    r.push_str("|---|---|---|---|---|---|---|---|\n");
    for p in paths {
        let cpu = if p.cpu_per_gib.is_empty() {
            "–".to_string()
        } else {
            format!("{:.2}", median(&p.cpu_per_gib))
        };
        let rtt = p.rtt.unwrap_or(Summary { p50: Duration::ZERO, p99: Duration::ZERO });
        let rtt_cpu = p.cpu_per_round_trip.map(|c| format!("{c:.0}")).unwrap_or_else(|| "–".into());
        let first = p.first_byte.map(|f| format!("{:.2}", f.p50.as_secs_f64() * 1e3)).unwrap_or_default();
        let _ = writeln!(
            r,
            "| {} | {} | {} | {cpu} | {} | {} | {rtt_cpu} | {first} |",
            p.name,
            spread(&p.up),
            spread(&p.down),
            micros(rtt.p50),
            micros(rtt.p99)
        );
    }
    let find = |name: &str| paths.iter().find(|p| p.name == name);
    r.push_str("\nRampart against the baselines, same run:\n\n");
    if let Some(rampart) = find("rampart tunnel") {
        let ratio = |other: Option<&Path>, f: &dyn Fn(&Path) -> f64| other.map(|o| f(rampart) / f(o));
        let tp = |p: &Path| throughput(p);
        let rtt = |p: &Path| p.rtt.map(|s| s.p50.as_secs_f64()).unwrap_or(f64::NAN);
        let show = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "n/a".into());
        let ssh = find("ssh -L aes128-gcm");
        let _ = writeln!(r, "| measure | Rampart | goal |\n|---|---|---|");
        let _ = writeln!(r, "| throughput ÷ ssh -L aes128-gcm | {} | ≥ 1.4× |", show(ratio(ssh, &tp)));
        let _ = writeln!(
            r,
            "| throughput ÷ stunnel pair | {} | ≥ 1.6× |",
            show(ratio(find("stunnel pair"), &tp))
        );
        let _ =
            writeln!(r, "| throughput ÷ direct TCP | {} | (ceiling) |", show(ratio(find("direct TCP"), &tp)));
        let _ = writeln!(r, "| RTT p50 ÷ ssh -L aes128-gcm | {} | ≤ 0.65× |", show(ratio(ssh, &rtt)));
        let rtt_cpu = |p: &Path| p.cpu_per_round_trip.unwrap_or(f64::NAN);
        let _ = writeln!(
            r,
            "| CPU per round trip (all processes of the path) ÷ ssh -L aes128-gcm | {} | |",
            show(ratio(ssh, &rtt_cpu))
        );
        let _ =
            writeln!(r, "| CPU s per GiB, both tunnel ends | {:.2} | ≤ 1.4 |", median(&rampart.cpu_per_gib));
        if let Some(f) = rampart.first_byte {
            let _ = writeln!(
                r,
                "| new connection through an open tunnel, p50 / p99 | {:.2} / {:.2} ms | ≤ 1 ms |",
                f.p50.as_secs_f64() * 1e3,
                f.p99.as_secs_f64() * 1e3
            );
        }
        if let Some(a) = rampart.admission {
            let _ = writeln!(
                r,
                "| of which the gateway's admission (token, roles and settings again, dial, durable open record), mean | {:.2} ms | |",
                a.as_secs_f64() * 1e3
            );
        }
        let ms = |s: Option<Summary>| s.map(|s| s.p50.as_secs_f64() * 1e3).unwrap_or(f64::NAN);
        for (name, label) in [
            (
                "rampart tunnel v2 (HTTP/2 streams)",
                "protocol v2 (each connection an HTTP/2 stream of one TLS connection)",
            ),
            ("rampart tunnel v1 (WebSocket each)", "protocol v1 (a TLS connection and WebSocket each)"),
        ] {
            if let Some(other) = find(name) {
                let _ = writeln!(
                    r,
                    "| {label}, same run: throughput, RTT p50, CPU per GiB, new connection p50 | {:.2}× v3, {:.2}× v3, {:.2}× v3, {:.2} ms | |",
                    throughput(other) / throughput(rampart),
                    rtt(other) / rtt(rampart),
                    median(&other.cpu_per_gib) / median(&rampart.cpu_per_gib),
                    ms(other.first_byte)
                );
            }
        }
        let _ = writeln!(
            r,
            "| whole `rampart tunnel` start to first byte, p50 | {:.0} ms | |",
            tunnel_start.p50.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            r,
            "| `rampart ssh … -- true` (grant, tunnel, ssh) ÷ plain `ssh … true`, p50 | {:.0} ms ÷ {:.0} ms = {:.2}× | |",
            ssh_times.0.p50.as_secs_f64() * 1e3,
            ssh_times.1.p50.as_secs_f64() * 1e3,
            ssh_times.0.p50.as_secs_f64() / ssh_times.1.p50.as_secs_f64().max(1e-9)
        );
        let _ = writeln!(
            r,
            "| {} idle tunnelled connections: gateway RSS per connection | {:.1} KiB | ≤ 8 KiB |",
            idle.count,
            idle.gateway_bytes_per_conn / 1024.0
        );
        let _ = writeln!(
            r,
            "| same: tunnel client RSS per connection | {:.1} KiB | |",
            idle.tunnel_client_bytes_per_conn / 1024.0
        );
        let _ = writeln!(
            r,
            "| every idle connection still echoes afterwards | {} | yes |",
            if idle.all_echoed { "yes" } else { "NO" }
        );
    }
    let via = Summary::of(&echo.through_gateway);
    let direct = Summary::of(&echo.direct_ssh);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let _ = writeln!(
        r,
        "| browser terminal keystroke-to-echo through the gateway (TLS, WebSocket, SSH), p50 / p99, {} keys | {:.2} / {:.2} ms | ≤ 3 ms p50 |",
        echo.through_gateway.len(),
        ms(via.p50),
        ms(via.p99)
    );
    let _ = writeln!(
        r,
        "| same SSH client (russh) straight to sshd, p50 / p99 | {:.2} / {:.2} ms (gateway adds {:.2} ms p50) | |",
        ms(direct.p50),
        ms(direct.p99),
        ms(via.p50) - ms(direct.p50)
    );
    let _ = writeln!(
        r,
        "| browser desktop (RDP) at {}×{}, whole screen repainted {} times, pictures path (a harness client playing the browser): frames per second, gateway CPU | {:.1} fps ({:.1} MB/s of PNG), {:.2} cores | (≥ 30 fps: the H.264 path, `--desktop-only`) |",
        desktop.width,
        desktop.height,
        desktop.repaints,
        desktop.frames as f64 / desktop.seconds,
        desktop.bytes as f64 / desktop.seconds / 1e6,
        desktop.gateway_cores
    );
    r
}

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

/// Replaces the text between the markers in `file` (appending them if absent).
pub fn write_into(file: &FsPath, report: &str) -> Result<()> {
    let old = std::fs::read_to_string(file).unwrap_or_default();
    let block = format!("{START}\n{report}{END}");
    let new = match (old.find(START), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + END.len()..]),
        _ => format!("{old}\n{block}\n"),
    };
    std::fs::write(file, new)?;
    Ok(())
}
