//! `--stores`: the same tunnel (protocol v3) through a gateway on SQLite and one on PostgreSQL,
//! side by side in one run: throughput, new-connection latency, and the session starts per
//! second one node sustains (every start is an admission and a durable open record, every end
//! a close record). PostgreSQL is a cluster of the harness's own (initdb in a temporary
//! directory, a free loopback port; `fsync` stays on here, unlike in the tests).

#[path = "../../rampart-store/tests/support/postgres.rs"]
#[allow(dead_code, clippy::all)]
mod pg;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rampart_e2e::Gateway;

use crate::stats::Summary;
use crate::target;

struct Row {
    name: &'static str,
    up: Vec<f64>,
    down: Vec<f64>,
    first: Vec<Duration>,
    starts_per_second: f64,
}

/// Connections opened and echoed, `workers` at a time, for `length`: completed per second.
async fn session_starts(addr: SocketAddr, workers: usize, length: Duration) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + length;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let done = done.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                target::first_byte(addr).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / length.as_secs_f64())
}

pub async fn run(smoke: bool) -> Result<()> {
    let (repeat, size, news, workers, length) = if smoke {
        (1, 8u64 << 20, 20, 4, Duration::from_secs(1))
    } else {
        (3, 512u64 << 20, 200, 16, Duration::from_secs(10))
    };
    let pattern = target::pattern();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target_port = listener.local_addr()?.port();
    tokio::spawn(target::serve(listener, pattern.clone()));

    let cluster = tokio::task::spawn_blocking(pg::PgCluster::start_durable).await?.map_err(|e| anyhow!(e))?;
    let url = cluster.create_database("bench").map_err(|e| anyhow!(e))?;
    let (sqlite, postgres) = tokio::task::block_in_place(|| {
        let sqlite = Gateway::start(&[("RAMPART_LOG", "error")])?;
        let postgres = Gateway::start(&[("RAMPART_LOG", "error"), ("RAMPART_STORE", url.as_str())])?;
        sqlite.allow_loopback()?;
        postgres.allow_loopback()?;
        anyhow::Ok((sqlite, postgres))
    })?;
    let tunnels = tokio::task::block_in_place(|| {
        anyhow::Ok((sqlite.tunnel("127.0.0.1", target_port)?, postgres.tunnel("127.0.0.1", target_port)?))
    })?;
    let addrs = [
        SocketAddr::from(([127, 0, 0, 1], tunnels.0.port)),
        SocketAddr::from(([127, 0, 0, 1], tunnels.1.port)),
    ];
    let mut rows = [
        Row { name: "SQLite (embedded)", up: vec![], down: vec![], first: vec![], starts_per_second: 0.0 },
        Row { name: "PostgreSQL", up: vec![], down: vec![], first: vec![], starts_per_second: 0.0 },
    ];
    for _ in 0..repeat {
        for (row, addr) in rows.iter_mut().zip(addrs) {
            let up = target::upload(addr, &pattern, size).await?;
            let down = target::download(addr, size).await?;
            row.up.push(size as f64 / up.as_secs_f64() / 1e6);
            row.down.push(size as f64 / down.as_secs_f64() / 1e6);
        }
    }
    for _ in 0..4 {
        for (row, addr) in rows.iter_mut().zip(addrs) {
            for _ in 0..news / 4 {
                row.first.push(target::first_byte(addr).await?);
            }
        }
    }
    for (row, addr) in rows.iter_mut().zip(addrs) {
        row.starts_per_second = session_starts(addr, workers, length).await?;
    }

    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    println!(
        "Stores, same run: {repeat} × {} MiB each way per store, {news} new connections, session starts with {workers} at a time for {} s.\n",
        size >> 20,
        length.as_secs()
    );
    println!(
        "| gateway store | upload MB/s | download MB/s | new connection p50 / p99 ms | session starts per second (one node) |"
    );
    println!("|---|---|---|---|---|");
    for row in &rows {
        let s = Summary::of(&row.first);
        println!(
            "| {} | {:.0} | {:.0} | {:.2} / {:.2} | {:.0} |",
            row.name,
            median(&row.up),
            median(&row.down),
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            row.starts_per_second
        );
    }
    let ratio = |f: &dyn Fn(&Row) -> f64| f(&rows[1]) / f(&rows[0]).max(f64::EPSILON);
    println!(
        "\nPostgreSQL ÷ SQLite: throughput {:.2}×, new connection p50 {:.2}×, session starts per second {:.2}×",
        ratio(&|r| median(&r.up) + median(&r.down)),
        ratio(&|r| Summary::of(&r.first).p50.as_secs_f64()),
        ratio(&|r| r.starts_per_second)
    );
    drop(tunnels);
    Ok(())
}
