//! The baselines (OpenSSH `ssh -L`, a stunnel4 client/server pair) and the CPU and memory
//! readings of the processes each path runs through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use rampart_e2e::{Process, Sshd, free_port, wait_for_port};

/// `ssh -N -L` forwarding a local port to `target` through `sshd`, with `cipher` if given.
pub fn ssh_forward(sshd: &Sshd, target: u16, cipher: Option<&str>) -> Result<(Process, u16)> {
    let local = free_port();
    let mut cmd = sshd.client("ssh", sshd.port);
    cmd.args([
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &format!("127.0.0.1:{local}:127.0.0.1:{target}"),
    ]);
    if let Some(c) = cipher {
        cmd.args(["-c", c]);
    }
    cmd.arg(format!("{}@127.0.0.1", sshd.user));
    let process = Process::spawn(cmd, "ssh -L")?;
    wait_for_port(SocketAddr::from(([127, 0, 0, 1], local)), Duration::from_secs(20))?;
    Ok((process, local))
}

/// A stunnel4 server (TLS in front of `target`) and client (plain in, TLS out).
pub fn stunnel_pair(dir: &Path, cert: &Path, key: &Path, target: u16) -> Result<(Process, Process, u16)> {
    let program = rampart_e2e::stunnel_program()?;
    let (tls_port, plain_port) = (free_port(), free_port());
    let server = format!(
        "foreground = yes\npid =\ndebug = 3\n[srv]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{target}\ncert = {}\nkey = {}\n",
        cert.display(),
        key.display()
    );
    let client = format!(
        "foreground = yes\npid =\ndebug = 3\n[cli]\nclient = yes\naccept = 127.0.0.1:{plain_port}\nconnect = 127.0.0.1:{tls_port}\nverifyPeer = yes\nCAfile = {}\ncheckHost = localhost\n",
        cert.display()
    );
    std::fs::write(dir.join("stunnel-server.conf"), server)?;
    std::fs::write(dir.join("stunnel-client.conf"), client)?;
    let mut s = Command::new(program);
    s.arg(dir.join("stunnel-server.conf"));
    let server = Process::spawn(s, "stunnel server")?;
    let mut c = Command::new(program);
    c.arg(dir.join("stunnel-client.conf"));
    let client = Process::spawn(c, "stunnel client")?;
    wait_for_port(SocketAddr::from(([127, 0, 0, 1], tls_port)), Duration::from_secs(10))?;
    wait_for_port(SocketAddr::from(([127, 0, 0, 1], plain_port)), Duration::from_secs(10))?;
    Ok((server, client, plain_port))
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (pid, parent pid, CPU seconds) of every process.
fn all_processes() -> Vec<(u32, u32, f64)> {
    let tick = ticks_per_second();
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name, which may hold spaces, closed by the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 13 {
            continue;
        }
        let ppid = f[1].parse().unwrap_or(0);
        let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
        out.push((pid, ppid, ticks / tick));
    }
    out
}

/// CPU seconds used so far by `roots` and all their descendants.
pub fn cpu_seconds(roots: &[u32]) -> f64 {
    let procs = all_processes();
    let parent: HashMap<u32, u32> = procs.iter().map(|(p, pp, _)| (*p, *pp)).collect();
    procs
        .iter()
        .filter(|(pid, _, _)| {
            let mut p = *pid;
            for _ in 0..64 {
                if roots.contains(&p) {
                    return true;
                }
                match parent.get(&p) {
                    Some(&pp) if pp != 0 && pp != p => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .map(|(_, _, cpu)| cpu)
        .sum()
}

/// Resident memory of a process, bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kib: u64 = v.trim().trim_end_matches("kB").trim().parse()?;
            return Ok(kib * 1024);
        }
    }
    bail!("no VmRSS for {pid}")
}
