//! The benchmark's target server and the client side of each measurement. One port serves
//! every mode; the first byte of a connection picks it:
//!
//! - `U`: upload. The client sends bytes, then shuts down its sending side; the server
//!   answers the XXH3 of everything it read (so TCP half-close must be carried through).
//! - `D` + u64 length: download. The server sends that many bytes, then their XXH3.
//! - `E`: echo, for round trips, new connections and idle connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xxhash_rust::xxh3::Xxh3;

/// 1 MiB of random bytes, sent over and over.
pub fn pattern() -> Arc<Vec<u8>> {
    let mut block = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut block);
    Arc::new(block)
}

const CHUNK: usize = 256 * 1024;

pub async fn serve(listener: TcpListener, pattern: Arc<Vec<u8>>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let pattern = pattern.clone();
        tokio::spawn(async move {
            let _ = handle(socket, pattern).await;
        });
    }
}

async fn handle(mut s: TcpStream, pattern: Arc<Vec<u8>>) -> Result<()> {
    s.set_nodelay(true)?;
    match s.read_u8().await? {
        b'U' => {
            let mut hasher = Xxh3::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            s.write_u64(hasher.digest()).await?;
            s.shutdown().await?;
        }
        // An upload of a stated length, answered without waiting for a half-close (az's
        // tunnel closes both ways when its client shuts down writing).
        b'L' => {
            let mut left = s.read_u64().await?;
            let mut hasher = Xxh3::new();
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                let want = (buf.len() as u64).min(left) as usize;
                let n = s.read(&mut buf[..want]).await?;
                ensure!(n > 0, "upload ended early: {left} bytes missing");
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
            s.write_u64(hasher.digest()).await?;
            s.shutdown().await?;
        }
        b'D' => {
            let len = s.read_u64().await?;
            let hash = send_pattern(&mut s, &pattern, len).await?;
            s.write_u64(hash).await?;
            s.shutdown().await?;
        }
        b'E' => {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await?;
            }
        }
        other => bail!("unknown mode {other}"),
    }
    Ok(())
}

async fn send_pattern(s: &mut TcpStream, pattern: &[u8], len: u64) -> Result<u64> {
    let mut hasher = Xxh3::new();
    let mut left = len;
    let mut offset = 0usize;
    while left > 0 {
        let take = (CHUNK as u64).min(left).min((pattern.len() - offset) as u64) as usize;
        let chunk = &pattern[offset..offset + take];
        s.write_all(chunk).await?;
        hasher.update(chunk);
        left -= take as u64;
        offset = (offset + take) % pattern.len();
    }
    Ok(hasher.digest())
}

async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Uploads `len` bytes and checks the server's checksum; returns the elapsed time.
pub async fn upload(addr: SocketAddr, pattern: &[u8], len: u64) -> Result<Duration> {
    let started = Instant::now();
    let mut s = connect(addr).await?;
    s.write_u8(b'U').await?;
    let sent = send_pattern(&mut s, pattern, len).await?;
    s.shutdown().await?;
    let received = s.read_u64().await.context("no checksum after half-close: the tunnel lost the reply")?;
    ensure!(sent == received, "upload corrupted: checksum {sent:x} sent, {received:x} received");
    Ok(started.elapsed())
}

/// Uploads `len` bytes, stated first, and checks the server's checksum, with no half-close.
pub async fn upload_stated(addr: SocketAddr, pattern: &[u8], len: u64) -> Result<Duration> {
    let started = Instant::now();
    let mut s = connect(addr).await?;
    s.write_u8(b'L').await?;
    s.write_u64(len).await?;
    let sent = send_pattern(&mut s, pattern, len).await?;
    let received = s.read_u64().await.context("no checksum: the tunnel lost the reply")?;
    ensure!(sent == received, "upload corrupted: checksum {sent:x} sent, {received:x} received");
    Ok(started.elapsed())
}

/// Downloads `len` bytes and checks them against the server's checksum.
pub async fn download(addr: SocketAddr, len: u64) -> Result<Duration> {
    let started = Instant::now();
    let mut s = connect(addr).await?;
    s.write_u8(b'D').await?;
    s.write_u64(len).await?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = s.read(&mut buf[..want]).await?;
        ensure!(n > 0, "download ended early: {left} bytes missing");
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let expected = s.read_u64().await?;
    ensure!(expected == hasher.digest(), "download corrupted");
    Ok(started.elapsed())
}

/// Opens an echo connection and checks one round trip.
pub async fn echo_connection(addr: SocketAddr) -> Result<TcpStream> {
    let mut s = connect(addr).await?;
    s.write_all(b"E!").await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    ensure!(&b == b"!", "echo answered {b:?}");
    Ok(s)
}

/// Time to the first echoed byte of a brand-new connection.
pub async fn first_byte(addr: SocketAddr) -> Result<Duration> {
    let started = Instant::now();
    let _s = echo_connection(addr).await?;
    Ok(started.elapsed())
}

/// Round trips of 64 bytes on one connection; returns each one's duration.
pub async fn round_trips(addr: SocketAddr, count: usize, limit: Duration) -> Result<Vec<Duration>> {
    let mut s = echo_connection(addr).await?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut out = Vec::with_capacity(count);
    let deadline = Instant::now() + limit;
    for _ in 0..count {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        out.push(t.elapsed());
        if Instant::now() > deadline {
            break;
        }
    }
    Ok(out)
}
