//! A real OpenSSH server for the tests, and throwaway local users to sign in to it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::{Process, free_port, is_root, wait_until};

/// A real OpenSSH server on a loopback port, accepting one key for the current user.
pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub user: String,
    pub process: Process,
}

/// How a test's sshd differs from the default (keys only, for the current user).
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// A CA public key line for `TrustedUserCAKeys` (identity sign-in).
    pub trusted_ca: Option<String>,
    /// Allow password sign-in (for a throwaway local user).
    pub password_auth: bool,
    /// Listen here instead of 127.0.0.1 on a free port (e.g. 127.0.0.77:22).
    pub listen: Option<(std::net::Ipv4Addr, u16)>,
}

impl Sshd {
    pub fn start() -> Result<Sshd> {
        Self::start_with(SshdOptions::default())
    }

    pub fn start_with(options: SshdOptions) -> Result<Sshd> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            bail!("/usr/sbin/sshd is missing: the README's test command installs openssh-server");
        }
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        for key in ["hostkey", "userkey"] {
            keygen(&d.join(key))?;
        }
        std::fs::copy(d.join("userkey.pub"), d.join("authorized_keys"))?;
        std::fs::create_dir_all("/run/sshd").ok();
        // A free port may be taken by someone else before sshd binds it: then another port.
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::spawn_on(&options, dir.path()) {
                Ok((port, process)) => {
                    let user =
                        String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?.trim().to_string();
                    return Ok(Sshd { port, dir, user, process });
                }
                Err(e) if tries < 3 && options.listen.is_none() => {
                    eprintln!("sshd did not start, again: {e:#}")
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn_on(options: &SshdOptions, d: &Path) -> Result<(u16, Process)> {
        let (ip, port) = options.listen.unwrap_or((std::net::Ipv4Addr::LOCALHOST, free_port()));
        let mut config = format!(
            "Port {port}\nListenAddress {ip}\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\n\
             PasswordAuthentication {pw}\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             MaxStartups 100\nSubsystem sftp internal-sftp\n",
            d = d.display(),
            pw = if options.password_auth { "yes" } else { "no" },
        );
        if let Some(ca) = &options.trusted_ca {
            std::fs::write(d.join("ca.pub"), ca)?;
            config.push_str(&format!("TrustedUserCAKeys {}/ca.pub\n", d.display()));
        }
        std::fs::write(d.join("sshd_config"), config)?;
        Ok((port, spawn_sshd(d, SocketAddr::from((ip, port)))?))
    }

    /// Restarts sshd on the same port with a new host key (a changed or impostor server).
    pub fn restart_with_new_host_key(&mut self) -> Result<()> {
        self.process.child.kill().ok();
        self.process.child.wait().ok();
        let key = self.dir.path().join("hostkey");
        std::fs::remove_file(&key).ok();
        std::fs::remove_file(key.with_extension("pub")).ok();
        keygen(&key)?;
        self.process = spawn_sshd(self.dir.path(), SocketAddr::from(([127, 0, 0, 1], self.port)))?;
        Ok(())
    }

    /// An `ssh`/`scp` command with this server's key and no host-key prompts.
    pub fn client(&self, program: &str, local_port: u16) -> Command {
        let mut cmd = Command::new(program);
        let port_flag = if program == "scp" { "-P" } else { "-p" };
        cmd.arg(port_flag)
            .arg(local_port.to_string())
            .arg("-i")
            .arg(self.dir.path().join("userkey"))
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a remote command over ssh through `local_port`; returns its stdout.
    pub fn ssh(&self, local_port: u16, remote: &str) -> Result<String> {
        let out =
            self.client("ssh", local_port).arg(format!("{}@127.0.0.1", self.user)).arg(remote).output()?;
        if !out.status.success() {
            bail!("ssh failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn keygen(path: &Path) -> Result<()> {
    let status =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status()?;
    if !status.success() {
        bail!("ssh-keygen failed");
    }
    Ok(())
}

fn spawn_sshd(dir: &Path, addr: SocketAddr) -> Result<Process> {
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-D").arg("-f").arg(dir.join("sshd_config")).arg("-E").arg(dir.join("sshd.log"));
    // Its own word that it listens (not merely something answering on a port it lost), in its
    // log, which a restart appends to.
    let listening = format!("Server listening on {} port {}", addr.ip(), addr.port());
    let said = || std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
    let before = said().matches(&listening).count();
    let mut process = Process::spawn(cmd, "sshd")?;
    wait_until(Duration::from_secs(10), || {
        if said().matches(&listening).count() > before {
            return Ok(Some(()));
        }
        if let Some(status) = process.child.try_wait()? {
            bail!("it exited ({status})");
        }
        Ok(None)
    })
    .with_context(|| format!("sshd did not listen on {addr}: {}", said()))?;
    Ok(process)
}

/// A throwaway local user with a password (for password sign-in to sshd), removed when dropped.
pub struct LocalUser {
    pub name: String,
    pub password: String,
}

impl LocalUser {
    /// Creates the user; `None` when not root (the caller prints why it skips).
    pub fn create(prefix: &str) -> Result<Option<LocalUser>> {
        if !is_root() {
            return Ok(None);
        }
        // The process ID and a counter: tests of one binary run in parallel and may share a
        // prefix; one must never delete the other's user.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}{}x{n}", std::process::id() % 1_000_000);
        let _ = Command::new("userdel").args(["-r", &name]).stderr(Stdio::null()).status();
        // bash, so tests may use $RANDOM and the like.
        ensure!(
            Command::new("useradd").args(["-m", "-s", "/bin/bash", &name]).status()?.success(),
            "useradd failed"
        );
        let user = LocalUser { name, password: "Throwaway-Passw0rd".to_string() };
        let mut chpasswd = Command::new("chpasswd").stdin(Stdio::piped()).spawn()?;
        if let Some(mut s) = chpasswd.stdin.take() {
            writeln!(s, "{}:{}", user.name, user.password)?;
        }
        ensure!(chpasswd.wait()?.success(), "chpasswd failed");
        Ok(Some(user))
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", &self.name]).stderr(Stdio::null()).status();
    }
}
