//! A PostgreSQL cluster of the test's own: `initdb` in a temporary directory, the server on a
//! free loopback port by `pg_ctl` (as the `postgres` user when the test runs as root, since
//! `initdb` refuses root), stopped and removed when the test process ends, even if it is
//! killed: a watchdog shell waits for the test's process to go. `stop` and `start_server`
//! make an outage.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    durable: bool,
}

/// The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/N/bin).
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL is not installed (no /usr/lib/postgresql); ./scripts/test.sh installs it".to_string()
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).ok_or_else(|| "no PostgreSQL server binaries (initdb) found".to_string())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// `program args…` as the user that owns the cluster.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl PgCluster {
    /// A cluster for tests: `fsync` off (nothing here survives the test anyway).
    pub fn start() -> Result<PgCluster, String> {
        Self::start_with(false)
    }

    /// A cluster that syncs its writes as a production one does (for benchmarks).
    pub fn start_durable() -> Result<PgCluster, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<PgCluster, String> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("rampart-pg-").tempdir().map_err(|e| e.to_string())?.keep();
        let run = |c: &mut Command, what: &str| -> Result<(), String> {
            let out = c.output().map_err(|e| format!("{what}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{what} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        run(Command::new("chmod").arg("755").arg(&dir), "chmod")?;
        if is_root() {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir), "chown")?;
        }
        let data = dir.join("data");
        run(
            as_owner(&bin.join("initdb")).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "rampart",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        )?;
        let port = free_port()?;
        let cluster = PgCluster { port, dir: dir.clone(), bin: bin.clone(), durable };
        cluster.start_server()?;
        // The watchdog: once this test process is gone, the server is stopped and its
        // directory removed (a stop and start in between, as a test of an outage, is fine).
        let script = format!(
            "while kill -0 {test} 2>/dev/null; do sleep 0.5; done; \
             {owner}{pg_ctl} -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
            owner = if is_root() { "setpriv --reuid=postgres --regid=postgres --init-groups " } else { "" },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
            test = std::process::id(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the watchdog: {e}"))?;
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Starts (again) the server, in the background.
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            self.port,
            self.dir.display(),
            if self.durable { "on" } else { "off" }
        );
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-o", &options, "start", "-w", "-t", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
            return Err(format!("pg_ctl start failed: {}{log}", String::from_utf8_lossy(&out.stderr)));
        }
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let t = Instant::now();
        while t.elapsed() < limit {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        Err(format!("postgres did not start within {limit:?}: {log}"))
    }

    /// The URL of a new, empty database.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "rampart", name])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("createdb {name}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(format!("postgres://rampart@127.0.0.1:{}/{name}", self.port))
    }

    /// Stops the server (fast shutdown), as a database outage.
    pub fn stop(&self) -> Result<(), String> {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "fast", "-w"])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    }
}
