//! What one node holds: browser terminals opened as a browser opens them (the Connect form,
//! then the terminal page's WebSocket) against a real sshd, more and more of them, each typing
//! a key every few seconds and reading its echo as xterm.js does. At each step: the sessions
//! held, the gateway's resident memory and CPU per session, and keystroke echo p50/p99.
//! Opening stops at the first session that fails, and that failure is reported as the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use rampart_e2e::{Gateway, Sshd};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::peers::{cpu_seconds, rss_bytes};
use crate::stats::Summary;
use crate::terminal::{Portal, key_fields, until_ready};

/// Each terminal types one key this often (a person reading more than typing).
const TYPING_EVERY: Duration = Duration::from_secs(5);
/// Sessions being opened at once (sshd's MaxStartups is 100).
const OPENING_AT_ONCE: usize = 8;

/// One step of the table.
struct Step {
    sessions: usize,
    rss_mib: f64,
    rss_per_session_kib: f64,
    cores: f64,
    cpu_ms_per_session_s: f64,
    echo: Option<Summary>,
}

/// Echo times of every terminal, gathered for the step being measured.
#[derive(Default)]
struct Echoes {
    samples: Mutex<Vec<Duration>>,
    failed: AtomicUsize,
}

/// One terminal's life: a key every [`TYPING_EVERY`] (starting at a random offset), its echo
/// timed; output read as it comes, as xterm.js reads it.
async fn type_and_read(
    mut ws: crate::terminal::PortalSocket,
    echoes: Arc<Echoes>,
    stop: Arc<AtomicBool>,
    offset: Duration,
) {
    tokio::time::sleep(offset).await;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key: &[u8] = if i.is_multiple_of(2) { b"x" } else { b"\x7f" };
        i += 1;
        let t = Instant::now();
        if ws.send(Message::Binary(key.to_vec().into())).await.is_err() {
            echoes.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let echoed = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Binary(_)))) => break true,
                Ok(Some(Ok(Message::Text(t)))) if t.contains("ended") => break false,
                Ok(Some(Ok(_))) => {}
                _ => break false,
            }
        };
        if !echoed {
            echoes.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        echoes.samples.lock().await.push(t.elapsed());
        // The rest of the echo, and anything else, until the next key.
        let next = t + TYPING_EVERY;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(next.into(), ws.next()).await {}
    }
    let _ = ws.close(None).await;
}

pub async fn run(smoke: bool, sizes: &[usize]) -> Result<()> {
    let fd_limit = crate::raise_fd_limit();
    let sizes: Vec<usize> = if smoke { vec![5] } else { sizes.to_vec() };
    let window = if smoke { Duration::from_secs(6) } else { Duration::from_secs(20) };
    let gateway = tokio::task::block_in_place(|| Gateway::start(&[("RAMPART_LOG", "error")]))?;
    gateway.allow_loopback()?;
    let sshd = tokio::task::block_in_place(Sshd::start)?;
    let pid = gateway.process.child.id();
    let key = std::fs::read_to_string(sshd.dir.path().join("userkey"))?;
    let port = sshd.port.to_string();
    let portal = Arc::new(Portal::sign_in(&gateway).await?);
    let echoes = Arc::new(Echoes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let base_rss = rss_bytes(pid)? as f64;
    eprintln!(
        "capacity: open-file limit {fd_limit}; gateway at {:.1} MiB before any session",
        base_rss / 1048576.0
    );
    let (mut opened, mut steps, mut limit) = (0usize, Vec::new(), None::<String>);
    for &target in &sizes {
        let started = Instant::now();
        while opened < target && limit.is_none() {
            let batch = OPENING_AT_ONCE.min(target - opened);
            let opening = (0..batch).map(|_| {
                let (portal, fields) =
                    (portal.clone(), key_fields(&sshd, &port, &key).map(|(k, v)| (k, v.to_string())));
                async move {
                    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let mut ws = portal.open(&fields).await?;
                    until_ready(&mut ws).await?;
                    anyhow::Ok(ws)
                }
            });
            for result in futures_util::future::join_all(opening).await {
                match result {
                    Ok(ws) => {
                        let offset = TYPING_EVERY.mul_f64((opened % 97) as f64 / 97.0);
                        tokio::spawn(type_and_read(ws, echoes.clone(), stop.clone(), offset));
                        opened += 1;
                    }
                    Err(e) => limit = Some(format!("session {} could not open: {e:#}", opened + 1)),
                }
            }
        }
        eprintln!(
            "capacity: {opened} terminals open ({:.1} s to open this step)",
            started.elapsed().as_secs_f64()
        );
        // Settle, then measure over the window.
        tokio::time::sleep(TYPING_EVERY).await;
        echoes.samples.lock().await.clear();
        let cpu0 = cpu_seconds(&[pid]);
        tokio::time::sleep(window).await;
        let cores = (cpu_seconds(&[pid]) - cpu0) / window.as_secs_f64();
        let samples = std::mem::take(&mut *echoes.samples.lock().await);
        let rss = rss_bytes(pid)? as f64;
        let held = opened - echoes.failed.load(Ordering::Relaxed);
        steps.push(Step {
            sessions: held,
            rss_mib: rss / 1048576.0,
            rss_per_session_kib: (rss - base_rss) / 1024.0 / held.max(1) as f64,
            cores,
            cpu_ms_per_session_s: cores * 1000.0 / held.max(1) as f64,
            echo: (!samples.is_empty()).then(|| Summary::of(&samples)),
        });
        if limit.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    println!(
        "browser terminals on one node (each types a key every {} s and reads its echo):",
        TYPING_EVERY.as_secs()
    );
    println!(
        "| terminals held | gateway RSS | RSS per terminal | gateway CPU | CPU per terminal | echo p50 | echo p99 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for s in &steps {
        let (p50, p99) = s
            .echo
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |e| (e.p50.as_secs_f64() * 1e3, e.p99.as_secs_f64() * 1e3));
        // A few terminals can leave the gateway smaller than at the start (its allocator gave
        // back what start-up used): no per-terminal figure then.
        let per_terminal = if s.rss_per_session_kib > 0.0 {
            format!("{:.0} KiB", s.rss_per_session_kib)
        } else {
            "below start-up's".to_string()
        };
        println!(
            "| {} | {:.0} MiB | {per_terminal} | {:.2} cores | {:.3} ms/s | {p50:.1} ms | {p99:.1} ms |",
            s.sessions, s.rss_mib, s.cores, s.cpu_ms_per_session_s
        );
    }
    if let Some(limit) = limit {
        println!("limit: {limit}");
    }
    anyhow::ensure!(steps.iter().all(|s| s.echo.is_some()), "a step measured no echo at all");
    Ok(())
}
