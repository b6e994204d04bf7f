//! Session recording: an observer of the one session lifecycle. A browser terminal on a
//! bastion whose `session_recording` is on is written as asciicast v2 (what asciinema plays)
//! to `DATA/recordings/ID.cast`, line by line as it happens (flushed to the disk at least once a
//! second, so a crash loses seconds, not the session), output as `o` events and what the user
//! typed as `i` events, except what follows a prompt for a secret; at its end the size and SHA-256 go to
//! the store and to an audit record linked by the session's ID. The observer's methods only
//! queue: a task per recording does the writing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, EndReason, Protocol, ResourceId};
use rampart_store::{RecordingRecord, Store};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::lifecycle::{Direction, Session, SessionObserver};

/// Terminal size written in the header (the browser's changes are not followed yet).
const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;
/// Written data reaches the disk at least this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

enum Event {
    Output(Instant, Vec<u8>),
    Input(Instant, Vec<u8>),
    End,
}

/// Whether the output so far ends at a prompt for a secret (`Password:`, `Enter passphrase
/// for key …:`, `PIN:`): what is typed next is not recorded, up to its Enter. The remote's
/// echo setting is not visible to the gateway; its prompt is.
fn asks_for_secret(output_tail: &str) -> bool {
    let line = output_tail.rsplit(['\n', '\r']).next().unwrap_or("").trim_end().to_lowercase();
    line.ends_with(':')
        && ["password", "passphrase", "pin", "passcode", "secret"].iter().any(|w| line.contains(w))
}

pub struct Recorder {
    store: Arc<dyn Store>,
    dir: PathBuf,
    live: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>, data_dir: &Path) -> Recorder {
        Recorder { store, dir: data_dir.join("recordings"), live: Mutex::default() }
    }

    /// Where a recording's bytes are.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.cast"))
    }
}

impl SessionObserver for Recorder {
    fn started(&self, session: &Session, _admitted_in: Option<Duration>) {
        if session.protocol != Protocol::Ssh {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut live) = self.live.lock() {
            live.insert(session.id.clone(), tx);
        }
        let job = Job {
            store: self.store.clone(),
            path: self.path(&session.id),
            id: session.id.clone(),
            bastion: session.bastion_id.clone(),
            user: session.user.clone(),
            target: session
                .target_resource_id
                .clone()
                .unwrap_or_else(|| format!("{}:{}", session.target_ip, session.target_port)),
            started: session.started,
        };
        tokio::spawn(job.run(rx));
    }

    fn data(&self, session: &Session, direction: Direction, bytes: &[u8]) {
        if let Some(tx) = self.live.lock().ok().and_then(|l| l.get(&session.id).cloned()) {
            let event = match direction {
                Direction::FromTarget => Event::Output(Instant::now(), bytes.to_vec()),
                Direction::ToTarget => Event::Input(Instant::now(), bytes.to_vec()),
            };
            let _ = tx.send(event);
        }
    }

    fn ended(&self, session: &Session, _end: &EndReason) {
        if let Some(tx) = self.live.lock().ok().and_then(|mut l| l.remove(&session.id)) {
            let _ = tx.send(Event::End);
        }
    }
}

struct Job {
    store: Arc<dyn Store>,
    path: PathBuf,
    id: String,
    bastion: String,
    user: String,
    target: String,
    started: Instant,
}

/// Text from terminal output, keeping an incomplete UTF-8 sequence for the next chunk.
fn take_text(pending: &mut Vec<u8>) -> String {
    match std::str::from_utf8(pending) {
        Ok(text) => {
            let text = text.to_string();
            pending.clear();
            text
        }
        Err(e) if e.error_len().is_none() && pending.len() - e.valid_up_to() < 4 => {
            let tail = pending.split_off(e.valid_up_to());
            let text = String::from_utf8_lossy(pending).into_owned();
            *pending = tail;
            text
        }
        Err(_) => {
            let text = String::from_utf8_lossy(pending).into_owned();
            pending.clear();
            text
        }
    }
}

impl Job {
    async fn records(&self) -> bool {
        let Ok(id) = self.bastion.parse::<ResourceId>() else { return false };
        matches!(self.store.bastion(&id).await, Ok(Some(b)) if b.settings.session_recording)
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<Event>) {
        if !self.records().await {
            while let Some(event) = rx.recv().await {
                if matches!(event, Event::End) {
                    return;
                }
            }
            return;
        }
        if let Err(e) = self.record(&mut rx).await {
            tracing::error!(session = %self.id, error = %e, "the session's recording failed");
            while rx.recv().await.is_some() {}
        }
    }

    async fn record(&self, rx: &mut mpsc::UnboundedReceiver<Event>) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::File::create(&self.path).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let header = serde_json::json!({
            "version": 2, "width": WIDTH, "height": HEIGHT, "timestamp": Utc::now().timestamp(),
            "title": format!("{} → {}", self.user, self.target), "env": { "TERM": "xterm-256color" },
        });
        let started_at = Utc::now();
        let record = RecordingRecord {
            id: self.id.clone(),
            bastion_id: self.bastion.clone(),
            username: self.user.clone(),
            target: self.target.clone(),
            protocol: "ssh".into(),
            format: "asciicast-v2".into(),
            location: self.path.display().to_string(),
            started_at,
            ended_at: None,
            size_bytes: None,
            sha256: None,
        };
        if let Err(e) = self.store.create_recording(&record).await {
            tracing::error!(session = %self.id, error = %e, "cannot list the session's recording");
        }
        let mut write = async |file: &mut tokio::fs::File, line: String| -> std::io::Result<()> {
            let bytes = format!("{line}\n").into_bytes();
            hasher.update(&bytes);
            size += bytes.len() as u64;
            file.write_all(&bytes).await
        };
        write(&mut file, header.to_string()).await?;
        let mut pending = Vec::new();
        let mut synced = Instant::now();
        // The end of the output so far (to see a secret's prompt), and whether the input is a
        // secret being typed (until its Enter).
        let mut tail = String::new();
        let mut secret = false;
        while let Some(event) = rx.recv().await {
            match event {
                Event::Output(at, bytes) => {
                    pending.extend_from_slice(&bytes);
                    let text = take_text(&mut pending);
                    if text.is_empty() {
                        continue;
                    }
                    tail.push_str(&text);
                    if tail.len() > 256 {
                        let cut = tail.len() - 256;
                        let cut = (cut..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(0);
                        tail.drain(..cut);
                    }
                    let t = at.saturating_duration_since(self.started).as_secs_f64();
                    let line = serde_json::to_string(&(t, "o", text)).unwrap_or_default();
                    write(&mut file, line).await?;
                    if synced.elapsed() >= SYNC_EVERY {
                        file.sync_data().await?;
                        synced = Instant::now();
                    }
                }
                Event::Input(at, bytes) => {
                    if !secret && asks_for_secret(&tail) {
                        secret = true;
                    }
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let recorded = if secret {
                        // Nothing of the secret; its Enter ends it.
                        match text.find(['\r', '\n']) {
                            Some(end) => {
                                secret = false;
                                tail.clear();
                                text[end..].to_string()
                            }
                            None => continue,
                        }
                    } else {
                        text
                    };
                    let t = at.saturating_duration_since(self.started).as_secs_f64();
                    let line = serde_json::to_string(&(t, "i", recorded)).unwrap_or_default();
                    write(&mut file, line).await?;
                }
                Event::End => break,
            }
        }
        file.flush().await?;
        file.sync_all().await?;
        let digest = hex::encode(hasher.finalize());
        let ended = Utc::now();
        if let Err(e) = self.store.finish_recording(&self.id, ended, size, &digest).await {
            tracing::error!(session = %self.id, error = %e, "cannot record the recording's digest");
        }
        let mut e = AuditEntry::new(ended, AuditEvent::Recording, AuditResult::Allowed);
        e.user = Some(self.user.clone());
        e.bastion_id = Some(self.bastion.clone());
        e.target_resource_id = Some(format!("recordings/{}", self.id));
        e.reason = Some(format!("recorded session {}: {size} bytes, sha256 {digest}", self.id));
        if let Err(err) = self.store.append_audit(&e).await {
            tracing::error!(session = %self.id, error = %err, "cannot audit the recording");
        }
        Ok(())
    }
}

/// Recomputes a recording's size and SHA-256 from its bytes.
pub async fn digest_of(path: &Path) -> std::io::Result<(u64, String)> {
    let bytes = tokio::fs::read(path).await?;
    Ok((bytes.len() as u64, hex::encode(Sha256::digest(&bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_prompt_is_recognised() {
        for prompt in
            ["Password: ", "[sudo] password for alice:", "Enter passphrase for key '/k':", "\r\nPIN:"]
        {
            assert!(asks_for_secret(prompt), "{prompt}");
        }
        for other in ["alice@host:~$ ", "password changed\r\n$ ", "", "Name:"] {
            assert!(!asks_for_secret(other), "{other}");
        }
    }

    #[test]
    fn split_utf8_waits_for_the_rest_of_a_character() {
        let mut pending = "hé".as_bytes().to_vec();
        pending.truncate(2);
        assert_eq!(take_text(&mut pending), "h");
        pending.extend_from_slice(&"é".as_bytes()[1..]);
        assert_eq!(take_text(&mut pending), "é");
        let mut junk = vec![0xff, b'a'];
        assert_eq!(take_text(&mut junk), "\u{fffd}a");
    }
}
