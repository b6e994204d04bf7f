//! Child processes of the tests: their output collected by threads, killed when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A child process whose stdout lines are collected by a thread (so its pipe never fills).
/// Started with `spawn_quiet`, its stderr is collected as well (its last lines), shown when
/// the process fails to say what was awaited.
pub struct Process {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    name: String,
}

impl Process {
    /// Starts `cmd` with its stderr in a pipe of its own (never the test runner's, whose reader
    /// is not ours), its last lines kept for errors.
    pub fn spawn_quiet(mut cmd: Command, name: &str) -> Result<Process> {
        cmd.stderr(Stdio::piped());
        let mut process = Self::spawn(cmd, name)?;
        if let Some(stderr) = process.child.stderr.take() {
            let lines = process.stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let Ok(mut lines) = lines.lock() else { break };
                    if lines.len() == 50 {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            });
        }
        Ok(process)
    }

    pub fn spawn(mut cmd: Command, name: &str) -> Result<Process> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        Ok(Process { child, lines: rx, seen: Vec::new(), stderr, name: name.to_string() })
    }

    /// The last lines the process wrote to its stderr, when started with `spawn_quiet`.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    /// Waits for a stdout line containing `marker` and returns it.
    pub fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(marker) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    let stderr = self.stderr_tail();
                    let stderr =
                        if stderr.is_empty() { String::new() } else { format!("; on stderr: {stderr:?}") };
                    bail!(
                        "{} printed no line with '{marker}' within {timeout:?}; it printed: {:?}{stderr}; exited: {:?}",
                        self.name,
                        self.seen,
                        self.child.try_wait().ok().flatten()
                    )
                }
            }
        }
    }

    /// SIGTERM, then the exit status (SIGKILL after 10 s).
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        bail!("{} did not stop within 10 s of SIGTERM", self.name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}
