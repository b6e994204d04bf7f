//! Soak: many concurrent tunnelled connections moving checksummed data both ways for a
//! while; every byte must come back intact, and afterwards the gateway must be back to its
//! baseline (open file descriptors, live sessions).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{Setup, target};

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

pub async fn run(duration: Duration, connections: usize) -> Result<()> {
    crate::raise_fd_limit();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let target_port = listener.local_addr()?.port();
    tokio::spawn(target::serve(listener, target::pattern()));
    let setup = tokio::task::block_in_place(|| Setup::start(target_port))?;
    let gateway = setup.gateway_pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = open_fds(gateway);
    let addr = SocketAddr::from(([127, 0, 0, 1], setup.tunnel.port));
    eprintln!("soak: {connections} connections for {duration:?}; gateway fds at start: {baseline}");

    let deadline = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..connections {
        tasks.spawn(async move {
            // Stagger the opening so the soak measures steady traffic, not a connect storm.
            tokio::time::sleep(Duration::from_millis((i % 100) as u64 * 5)).await;
            let mut s = target::echo_connection(addr).await?;
            let (mut sent, mut bad) = (0u64, 0u64);
            let mut out = vec![0u8; 16 * 1024];
            let mut back = vec![0u8; 16 * 1024];
            while Instant::now() < deadline {
                rand::rng().fill_bytes(&mut out);
                s.write_all(&out).await?;
                s.read_exact(&mut back).await?;
                if back != out {
                    bad += 1;
                }
                sent += out.len() as u64;
            }
            anyhow::Ok((sent, bad))
        });
    }
    // Mid-soak, every connection is open: the gateway holds two descriptors for each.
    tokio::time::sleep((duration / 2).min(Duration::from_secs(10))).await;
    let peak_fds = open_fds(gateway);
    let (mut total, mut corrupted, mut failed) = (0u64, 0u64, 0usize);
    while let Some(done) = tasks.join_next().await {
        match done? {
            Ok((sent, bad)) => {
                total += sent;
                corrupted += bad;
            }
            Err(e) => {
                failed += 1;
                eprintln!("soak connection failed: {e:#}");
            }
        }
    }
    // Give the gateway a moment to close everything, then compare with the start.
    let settle = Instant::now();
    let mut after = open_fds(gateway);
    while after > baseline + 5 && settle.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = open_fds(gateway);
    }
    let sessions =
        setup.gateway.ok(&["network", "bastion", "session", "list", "-n", "default", "-g", "default"])?;
    let live = serde_json::from_str::<Vec<serde_json::Value>>(&sessions)?.len();
    println!(
        "soak: {connections} connections, {:.0} s, {:.1} GiB echoed both ways, {corrupted} corrupted chunks, \
         {failed} failed connections; gateway fds {baseline} at start, {peak_fds} at peak, {after} after; \
         live sessions after: {live}",
        duration.as_secs_f64(),
        total as f64 / f64::from(1u32 << 30),
    );
    ensure!(corrupted == 0 && failed == 0, "the soak lost or corrupted data");
    ensure!(after <= baseline + 5, "the gateway kept {} file descriptors", after - baseline);
    ensure!(live == 0, "{live} sessions are still listed");
    Ok(())
}
