//! The RDP servers the end-to-end tests talk to: FreeRDP's shadow server on an Xvfb display,
//! and xrdp with its session manager serving a whole Xorg session of a local user.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::{Process, free_port, wait_for_port};

/// A virtual X display `:n` (Xvfb, 1024×768), ready when this returns (`xset q` answers);
/// killed on drop.
pub fn xvfb(n: u32) -> Result<Process> {
    xvfb_sized(n, 1024, 768)
}

/// [`xvfb`] with a screen of `width`×`height`.
pub fn xvfb_sized(n: u32, width: u32, height: u32) -> Result<Process> {
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
    let mut cmd = Command::new("Xvfb");
    // -noreset: otherwise the server resets when its last client (the readiness probe) leaves,
    // and a client connecting during the reset fails.
    cmd.arg(format!(":{n}"))
        .args(["-screen", "0", &format!("{width}x{height}x24"), "-nolisten", "tcp", "-noreset"])
        .stderr(Stdio::null());
    let process = Process::spawn(cmd, "Xvfb")?;
    // Ready when a client can talk to it (its socket exists a little before that).
    let t = Instant::now();
    let answers = || {
        Command::new("xset")
            .args(["-display", &format!(":{n}"), "q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    while !(socket.exists() && answers()) {
        ensure!(t.elapsed() < Duration::from_secs(20), "Xvfb :{n} did not come up within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(process)
}

/// FreeRDP's shadow server on display `:n`, TLS, on a free loopback port; `auth` makes it
/// check passwords (PAM). It now and then fails to come up under load, so it gets a second try.
pub fn shadow_server(n: u32, auth: bool) -> Result<(Process, u16)> {
    shadow_server_at(n, [127, 0, 0, 1].into(), None, auth)
}

/// [`shadow_server`] with variables added to its environment (the benchmark's choice of the
/// server's H.264 encoder preset).
pub fn shadow_server_with_env(n: u32, env: &[(String, String)]) -> Result<(Process, u16)> {
    shadow_server_inner(n, [127, 0, 0, 1].into(), None, false, env)
}

/// [`shadow_server`] bound to `ip`, on `port` (a free one if `None`).
pub fn shadow_server_at(
    n: u32,
    ip: std::net::IpAddr,
    port: Option<u16>,
    auth: bool,
) -> Result<(Process, u16)> {
    shadow_server_inner(n, ip, port, auth, &[])
}

fn shadow_server_inner(
    n: u32,
    ip: std::net::IpAddr,
    port: Option<u16>,
    auth: bool,
    env: &[(String, String)],
) -> Result<(Process, u16)> {
    let log = std::env::temp_dir().join(format!("rampart-shadow-{n}.log"));
    for attempt in 0..2 {
        let port = port.unwrap_or_else(free_port);
        let mut cmd = Command::new("freerdp-shadow-cli");
        cmd.env("DISPLAY", format!(":{n}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg(format!("/bind-address:{ip}"))
            .arg(format!("/port:{port}"))
            .arg(if auth { "+auth" } else { "-auth" })
            .arg("/sec:tls")
            .stderr(Stdio::from(std::fs::File::create(&log)?));
        let process = Process::spawn(cmd, "freerdp-shadow-cli")?;
        match wait_for_port((ip, port).into(), Duration::from_secs(15)) {
            Ok(()) => return Ok((process, port)),
            Err(e) if attempt == 1 => {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(e.context(format!("freerdp-shadow-cli on :{n} said:\n{said}")));
            }
            Err(_) => drop(process),
        }
    }
    bail!("freerdp-shadow-cli did not start")
}

/// xrdp with its session manager and xorgxrdp: full Xorg desktops for local users (PAM), on a
/// free loopback port, TLS. Root only: the session manager starts sessions as the user. It
/// listens on its fixed port 3350, where xrdp finds it (xrdp reads /etc/xrdp/sesman.ini).
/// Dropping it ends the user's session (every process of the user) and both servers.
pub struct XrdpServer {
    pub port: u16,
    /// The X display the user's session gets (":N").
    pub display: String,
    user: String,
    dir: tempfile::TempDir,
    _sesman: Process,
    _xrdp: Process,
}

impl XrdpServer {
    /// Starts both servers; `user` signs in, its `~/.xsession` is what the desktop runs, on
    /// display `:n` (which must be free).
    pub fn start(user: &str, n: u32) -> Result<XrdpServer> {
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
        let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
        ensure!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], 3350).into(), Duration::from_millis(200)).is_err()
                && TcpStream::connect_timeout(&"[::1]:3350".parse()?, Duration::from_millis(200)).is_err(),
            "port 3350 (xrdp-sesman) is taken: another xrdp runs on this machine"
        );
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config");
        ensure!(
            Command::new("cp").args(["-r", "/etc/xrdp"]).arg(&config).status()?.success(),
            "cannot copy /etc/xrdp"
        );
        let port = free_port();
        let d = dir.path().display();
        let edit = |file: &str, from: &str, to: &str| -> Result<()> {
            let path = config.join(file);
            let text = std::fs::read_to_string(&path)?;
            ensure!(text.contains(from), "{file} has no '{from}'");
            std::fs::write(&path, text.replacen(from, to, 1))?;
            Ok(())
        };
        edit("xrdp.ini", "\nport=3389", &format!("\nport=tcp://127.0.0.1:{port}"))?;
        edit("xrdp.ini", "\nfork=true", "\nfork=false")?;
        edit("xrdp.ini", "\nLogFile=xrdp.log", &format!("\nLogFile={d}/xrdp.log"))?;
        edit("sesman.ini", "\nLogFile=xrdp-sesman.log", &format!("\nLogFile={d}/sesman.log"))?;
        edit("sesman.ini", "\nX11DisplayOffset=10", &format!("\nX11DisplayOffset={n}"))?;
        std::fs::create_dir_all("/run/xrdp/sockdir")?;
        ensure!(Command::new("chmod").args(["1777", "/run/xrdp/sockdir"]).status()?.success());
        let mut sesman = Command::new("xrdp-sesman");
        sesman.arg("--nodaemon").arg("--config").arg(config.join("sesman.ini")).stderr(Stdio::null());
        let sesman = Process::spawn(sesman, "xrdp-sesman")?;
        let mut xrdp = Command::new("xrdp");
        xrdp.arg("--nodaemon").arg("--config").arg(config.join("xrdp.ini")).stderr(Stdio::null());
        let xrdp = Process::spawn(xrdp, "xrdp")?;
        let server = XrdpServer {
            port,
            display: format!(":{n}"),
            user: user.to_string(),
            dir,
            _sesman: sesman,
            _xrdp: xrdp,
        };
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(15))
            .with_context(|| format!("xrdp said:\n{}", server.log()))?;
        Ok(server)
    }

    /// Where xrdp and its session manager log (`xrdp.log`, `sesman.log`).
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What xrdp and its session manager logged.
    pub fn log(&self) -> String {
        ["xrdp.log", "sesman.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for XrdpServer {
    fn drop(&mut self) {
        // The session (Xorg, the window manager, the clipboard server) runs as the user.
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.user]).status();
        // Its X server cannot remove its socket after a KILL; the display may be one past
        // the one asked for (sesman skips a display whose probe port is taken).
        let log = self.log();
        let chosen = log.split("on display ").skip(1).filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        });
        let asked = self.display.trim_start_matches(':').to_string();
        for n in std::iter::once(asked).chain(chosen) {
            let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
            let _ = std::fs::remove_file(format!("/tmp/.X{n}-lock"));
        }
    }
}
