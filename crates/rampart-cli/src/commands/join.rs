//! `network bastion session join`: the terminal of a running browser session, here. To type
//! into it the local terminal goes raw (every key sent as it is pressed, none echoed locally)
//! and is put back however the join ends.

use std::io::IsTerminal;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Result;
use rampart_client::ApiClient;
use rampart_client::join::{JoinEnd, join};

/// The local terminal's settings while raw; restored on drop.
struct RawTerminal {
    saved: String,
}

fn stty(args: &[&str]) -> Option<String> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = Command::new("stty").args(args).stdin(Stdio::from(tty)).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let saved = stty(&["-g"])?;
        stty(&["raw", "-echo"])?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = stty(&[self.saved.as_str()]);
    }
}

/// The local terminal's size (columns, rows), when there is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let size = stty(&["size"])?;
    let mut parts = size.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (rows, cols) = (parts.next()??, parts.next()??);
    Some((cols, rows))
}

/// Relays the terminal at `path` here until it ends or Ctrl-] is pressed; `banner` is said
/// first (on standard error).
pub async fn run(client: &ApiClient, path: &str, interact: bool, banner: &str) -> Result<ExitCode> {
    let raw = (interact && std::io::stdin().is_terminal()).then(RawTerminal::enter).flatten();
    eprint!("{banner}; Ctrl-] leaves{}", if raw.is_some() { "\r\n" } else { "\n" });
    let end = join(client, path, interact, tokio::io::stdin(), tokio::io::stdout()).await;
    drop(raw);
    match end? {
        JoinEnd::SessionEnded(reason) => eprintln!("\n[{reason}]"),
        JoinEnd::Left => eprintln!("\n[left the session]"),
        JoinEnd::Closed => eprintln!("\n[the gateway closed the join]"),
    }
    Ok(ExitCode::SUCCESS)
}
