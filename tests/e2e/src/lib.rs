//! End-to-end harness: runs the real `rampart` binary (gateway, CLI, tunnels) against a
//! real OpenSSH `sshd`, all on loopback. Every child process is killed when its handle drops.
//!
//! The binary is `$RAMPART_BIN`, or `target/debug/rampart` next to this test's executable;
//! the README's test command builds it first.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub mod az;
pub mod azurite;
pub mod idp;
pub mod pebble;
mod process;
mod rdp;
mod sshd;
pub use process::Process;
pub use rdp::{XrdpServer, shadow_server, shadow_server_at, shadow_server_with_env, xvfb, xvfb_sized};
pub use sshd::{LocalUser, Sshd, SshdOptions};

/// The `rampart` binary under test: `$RAMPART_BIN`, or `rampart` beside the running
/// executable (a benchmark in `target/release/`) or one level up (a test in `target/debug/deps/`).
pub fn rampart_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RAMPART_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable directory");
    let candidates = [dir.join("rampart"), dir.parent().unwrap_or(dir).join("rampart")];
    let found = candidates.iter().find(|c| c.exists());
    found.cloned().unwrap_or_else(|| {
        panic!(
            "{} is missing: build it first with `cargo build -p rampart-cli` (the README's test command does)",
            candidates[1].display()
        )
    })
}

/// Debian's stunnel binary (`stunnel4`, or `stunnel` on newer releases).
pub fn stunnel_program() -> Result<&'static str> {
    ["/usr/bin/stunnel4", "/usr/bin/stunnel"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("stunnel4 is not installed (apt-get install stunnel4; scripts/test.sh does)")
}

/// A free loopback port (bound and released; a race with another process is unlikely).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on {addr} after {timeout:?}")
}

pub const ADMIN_PASSWORD: &str = "e2e-admin-Passw0rd";

/// A running gateway, with the admin's signed-in CLI session (`Deref`s to it).
pub struct Gateway {
    pub process: Process,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub admin: Session,
    _dirs: Vec<tempfile::TempDir>,
}

/// With `RAMPART_E2E_LOG_DIR` set (the test script sets it), every gateway's log is kept
/// there, so the script can check the whole suite's logs for panics.
impl Drop for Gateway {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("RAMPART_E2E_LOG_DIR") else { return };
        let dir = PathBuf::from(dir);
        if std::fs::create_dir_all(&dir).is_ok() {
            let name = format!("gateway-{}-{}.log", std::process::id(), self.addr.port());
            let _ = std::fs::copy(self.data_dir.join("gateway.log"), dir.join(name));
        }
    }
}

impl std::ops::Deref for Gateway {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.admin
    }
}

/// One user's CLI profile for a gateway: `rampart` commands run as that user.
pub struct Session {
    pub url: String,
    pub fingerprint: String,
    pub config_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts a gateway on a fresh data directory and signs in as admin.
    pub fn start(env: &[(&str, &str)]) -> Result<Gateway> {
        let data = tempfile::tempdir()?;
        let config = tempfile::tempdir()?;
        let data_dir = data.path().to_path_buf();
        let config_dir = config.path().to_path_buf();
        let mut gw = Self::start_in(&data_dir, &config_dir, env)?;
        gw._dirs = vec![data, config];
        gw.login()?;
        Ok(gw)
    }

    /// Starts a gateway on an existing data directory (not signed in).
    pub fn start_in(data_dir: &Path, config_dir: &Path, env: &[(&str, &str)]) -> Result<Gateway> {
        let mut cmd = Command::new(rampart_bin());
        cmd.arg("serve");
        if !env.iter().any(|(k, _)| *k == "RAMPART_LISTEN") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .env("RAMPART_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RAMPART_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The gateway's log goes to a file beside its data, for tests that read it.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("gateway.log"))?;
        cmd.stderr(Stdio::from(log));
        let mut process = Process::spawn(cmd, "rampart serve")?;
        let fingerprint = process
            .wait_for_line("TLS fingerprint:", Duration::from_secs(60))?
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        let listening = process.wait_for_line("listening on https://", Duration::from_secs(30))?;
        let addr: SocketAddr =
            listening.trim_start_matches("listening on https://").trim().parse().context("listen address")?;
        // A gateway listening on every address is reached over loopback.
        let addr =
            if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        let admin = Session {
            url: format!("https://{addr}"),
            fingerprint,
            config_dir: config_dir.to_path_buf(),
            _dir: None,
        };
        Ok(Gateway { process, addr, data_dir: data_dir.to_path_buf(), admin, _dirs: vec![] })
    }

    /// Everything this data directory's gateways have logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("gateway.log")).unwrap_or_default()
    }

    /// The admin signed in through another address of this gateway (a proxy in front of it
    /// that presents the gateway's own certificate), in a profile of its own.
    pub fn admin_via(&self, url: &str) -> Result<Session> {
        let dir = tempfile::tempdir()?;
        let session = Session {
            url: url.to_string(),
            fingerprint: self.fingerprint.clone(),
            config_dir: dir.path().to_path_buf(),
            _dir: Some(dir),
        };
        let out = session.login_with("admin", ADMIN_PASSWORD)?;
        if !out.status.success() {
            bail!("admin cannot sign in through {url}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(session)
    }

    /// A user made by [`Gateway::new_user`], signed in through another address of this gateway
    /// (a balancer in front of it presenting the same certificate), in a profile of its own.
    pub fn user_via(&self, upn: &str, url: &str) -> Result<Session> {
        let dir = tempfile::tempdir()?;
        let session = Session {
            url: url.to_string(),
            fingerprint: self.fingerprint.clone(),
            config_dir: dir.path().to_path_buf(),
            _dir: Some(dir),
        };
        let out = session.login_with(upn, &format!("{upn}-Passw0rd-long"))?;
        if !out.status.success() {
            bail!("{upn} cannot sign in through {url}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(session)
    }

    /// A client profile of its own, signed in as nobody yet (for `rampart login` variants).
    pub fn signed_out(&self) -> Result<Session> {
        let dir = tempfile::tempdir()?;
        Ok(Session {
            url: self.url.clone(),
            fingerprint: self.fingerprint.clone(),
            config_dir: dir.path().to_path_buf(),
            _dir: Some(dir),
        })
    }

    /// Creates a user (as admin) and returns their signed-in session.
    pub fn new_user(&self, upn: &str) -> Result<Session> {
        let password = format!("{upn}-Passw0rd-long");
        let mut child = self
            .cli()
            .args(["ad", "user", "create", "--user-principal-name", upn, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}")?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("creating user {upn} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let dir = tempfile::tempdir()?;
        let session = Session {
            url: self.url.clone(),
            fingerprint: self.fingerprint.clone(),
            config_dir: dir.path().to_path_buf(),
            _dir: Some(dir),
        };
        let out = session.login_with(upn, &password)?;
        if !out.status.success() {
            bail!("{upn} cannot sign in: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(session)
    }

    /// A new user (as [`Gateway::new_user`]) with Reader on bastion `default`'s subscription.
    pub fn reader(&self, upn: &str) -> Result<Session> {
        let session = self.new_user(upn)?;
        let scope = self.subscription_scope()?;
        self.ok(&["role", "assignment", "create", "--assignee", upn, "--role", "Reader", "--scope", &scope])?;
        Ok(session)
    }
}

impl Session {
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A `rampart` command using this gateway's client profile.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(rampart_bin());
        cmd.env("RAMPART_CONFIG_DIR", &self.config_dir);
        cmd
    }

    /// Runs `rampart ARGS` to completion (killed after two minutes, so a command that
    /// wrongly succeeds and keeps running, like an opened tunnel, fails the test).
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let child = self
            .cli()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("rampart {args:?}"))?;
        output_within(child, Duration::from_secs(120))
    }

    /// Runs `rampart ARGS`, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!("rampart {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `rampart ARGS`, which must fail; returns its stderr.
    pub fn refused(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if out.status.success() {
            bail!(
                "rampart {args:?} succeeded but should have been refused: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn login_with(&self, username: &str, password: &str) -> Result<Output> {
        let mut child = self
            .cli()
            .args(["login", "--server", &self.url(), "--username", username])
            .args(["--password-stdin", "--fingerprint", &self.fingerprint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}")?;
        }
        Ok(child.wait_with_output()?)
    }

    pub fn login(&self) -> Result<()> {
        let out = self.login_with("admin", ADMIN_PASSWORD)?;
        if !out.status.success() {
            bail!("login failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// The live sessions of bastion `default` (`network bastion session list`).
    pub fn sessions(&self) -> Result<Vec<serde_json::Value>> {
        let out = self.ok(&["network", "bastion", "session", "list", "-n", "default", "-g", "default"])?;
        Ok(serde_json::from_str(&out)?)
    }

    /// The audit log as JSON records, newest first.
    pub fn audit(&self) -> Result<Vec<serde_json::Value>> {
        let out = self.ok(&["audit", "list", "--limit", "10000", "--output", "json"])?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Lets bastion `default` reach loopback, with IP-based connection on (the usual test scene).
    pub fn allow_loopback(&self) -> Result<()> {
        self.update_bastion(
            "default",
            &["--enable-ip-connect", "true", "--reachable-networks", "127.0.0.0/8"],
        )?;
        Ok(())
    }

    /// Bastion `default`'s resource ID, as the gateway shows it.
    pub fn bastion_id(&self) -> Result<String> {
        let shown: serde_json::Value = serde_json::from_str(
            &self.ok(&["network", "bastion", "show", "-n", "default", "-g", "default"])?,
        )?;
        Ok(shown["id"].as_str().context("bastion id")?.to_string())
    }

    /// The scope of bastion `default`'s subscription (`/subscriptions/ID`).
    pub fn subscription_scope(&self) -> Result<String> {
        let bastion = self.bastion_id()?;
        Ok(bastion.split("/resourceGroups/").next().context("subscription scope")?.to_string())
    }

    /// `network bastion recording list` of bastion `default` with `extra` flags, as JSON.
    pub fn recordings(&self, extra: &[&str]) -> Result<Vec<serde_json::Value>> {
        let mut args = vec!["network", "bastion", "recording", "list", "-n", "default", "-g", "default"];
        args.extend_from_slice(extra);
        Ok(serde_json::from_str(&self.ok(&args)?)?)
    }

    /// `network bastion recording export` of recording `id` into `file`.
    pub fn export_recording(&self, id: &str, file: &Path) -> Result<()> {
        let file = file.to_str().context("a file name in UTF-8")?;
        let args = ["network", "bastion", "recording", "export", "-n", "default", "-g", "default"];
        self.ok(&[&args[..], &["--ids", id, "--output-file", file]].concat())?;
        Ok(())
    }

    /// `network bastion recording verify` of recording `id`: whether it passed, and its output.
    pub fn verify_recording(&self, id: &str) -> Result<(bool, String)> {
        let args =
            ["network", "bastion", "recording", "verify", "-n", "default", "-g", "default", "--ids", id];
        let out = self.run(&args)?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// `rampart network bastion update` of bastion `name` in resource group `default` with
    /// these settings (flags and values); its output.
    pub fn update_bastion(&self, name: &str, settings: &[&str]) -> Result<String> {
        let mut args = vec!["network", "bastion", "update", "--name", name, "--resource-group", "default"];
        args.extend_from_slice(settings);
        self.ok(&args)
    }

    /// Opens `rampart tunnel` to `ip:port` through bastion `default`; returns it once ready.
    pub fn tunnel(&self, ip: &str, port: u16) -> Result<Tunnel> {
        self.tunnel_via("default", ip, port)
    }

    pub fn tunnel_via(&self, bastion: &str, ip: &str, port: u16) -> Result<Tunnel> {
        self.tunnel_with(&[
            "--name",
            bastion,
            "--resource-group",
            "default",
            "--target-ip-address",
            ip,
            "--resource-port",
            &port.to_string(),
        ])
    }

    /// Opens `rampart tunnel ARGS --port 0`; returns it once ready.
    pub fn tunnel_with(&self, args: &[&str]) -> Result<Tunnel> {
        self.tunnel_with_env(&[], args)
    }

    /// The same, with extra environment (e.g. `RAMPART_TUNNEL_PROTOCOL=v1`).
    pub fn tunnel_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Result<Tunnel> {
        let mut cmd = self.cli();
        cmd.envs(env.iter().copied());
        cmd.arg("tunnel").args(args).args(["--port", "0"]).stderr(Stdio::piped());
        let mut process = Process::spawn(cmd, "rampart tunnel")?;
        let stderr = process.child.stderr.take();
        let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = stderr {
            let errors = errors.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut e) = errors.lock() {
                        e.push_str(&line);
                        e.push('\n');
                    }
                }
            });
        }
        let line = match process.wait_for_line("Opening tunnel on port:", Duration::from_secs(30)) {
            Ok(l) => l,
            Err(e) => {
                std::thread::sleep(Duration::from_millis(200));
                let text = errors.lock().map(|e| e.clone()).unwrap_or_default();
                bail!("{e}; stderr: {text}");
            }
        };
        let local_port: u16 = line.rsplit(' ').next().unwrap_or_default().trim().parse()?;
        Ok(Tunnel { process, port: local_port, errors })
    }
}

/// A running `rampart tunnel`.
pub struct Tunnel {
    pub process: Process,
    pub port: u16,
    errors: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Tunnel {
    /// What the tunnel printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Waits (up to 10 s) until the tunnel has printed `needle` on stderr; returns all it said.
    pub fn said(&self, needle: &str) -> Result<String> {
        wait_until(Duration::from_secs(10), || Ok(Some(self.stderr()).filter(|text| text.contains(needle))))
            .with_context(|| format!("the tunnel did not say '{needle}'; it said: {}", self.stderr()))
    }
}

/// A child's output once it exits; it is killed after `limit`.
pub fn output_within(child: std::process::Child, limit: Duration) -> Result<Output> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output()?;
    let _ = tx.send(());
    Ok(out)
}

/// Finds audit records with `event` and `result` (and optionally a reason code fragment).
pub fn audit_has(records: &[serde_json::Value], event: &str, result: &str, code: Option<&str>) -> bool {
    records.iter().any(|r| {
        r["event"] == event
            && r["result"] == result
            && code.is_none_or(|c| r["reasonCode"].as_str().is_some_and(|rc| rc.contains(c)))
    })
}

/// Calls `f` every 100 ms until it gives a value; fails after `limit`.
pub fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        ensure!(std::time::Instant::now() < deadline, "gave up after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the tests run as root (needed to create local users and network namespaces).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

/// Percent-encodes everything but unreserved characters (form bodies, query values).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An `application/x-www-form-urlencoded` body, as a browser posts a form.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect::<Vec<_>>().join("&")
}

/// The repository's root (for `web/` and `target/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh directory for a test's screenshots and files, kept after the run
/// (`target/e2e-artifacts/NAME`).
pub fn artifacts(name: &str) -> Result<PathBuf> {
    let out = repo_root().join("target/e2e-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    Ok(out)
}

/// Starts a Playwright script from `web/tests` with `node`, its output captured. Checks
/// first that Chromium and the npm packages are there (the test command installs them).
pub fn spawn_browser_script(script: &str, env: &[(&str, String)]) -> Result<Child> {
    ensure!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: the README's test command installs Debian's chromium"
    );
    let web = repo_root().join("web");
    ensure!(
        web.join("node_modules/playwright-core").exists(),
        "web/node_modules is missing: the README's test command runs `npm ci` in web/"
    );
    let mut cmd = Command::new("node");
    cmd.arg(web.join("tests").join(script)).current_dir(&web).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().context("node (the test command installs nodejs)")
}

/// Waits until a browser script writes `flag` (its signal to the Rust side), at most `limit`;
/// if the script stops or the time runs out first, the error carries the script's output.
pub fn wait_for_flag(flag: &Path, script: Child, limit: Duration) -> Result<Child> {
    let mut script = script;
    let t = Instant::now();
    while !flag.exists() {
        if script.try_wait()?.is_some() || t.elapsed() > limit {
            let text = finish_browser_script(script, Duration::from_secs(1));
            bail!("the browser script did not reach {} in {limit:?}: {text:?}", flag.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(script)
}

/// Waits for a browser script at most `limit` (killed when over); returns its stdout and
/// stderr together, or an error with them when it failed.
pub fn finish_browser_script(mut child: Child, limit: Duration) -> Result<String> {
    let t = Instant::now();
    while child.try_wait()?.is_none() {
        if t.elapsed() > limit {
            child.kill().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output()?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{text}");
    ensure!(t.elapsed() <= limit, "the browser script ran longer than {} s:\n{text}", limit.as_secs());
    ensure!(output.status.success(), "the browser script failed ({}):\n{text}", output.status);
    Ok(text)
}
