//! One recording being written: a task per session turns its events into asciicast v2 lines
//! and hands them to a [`Sink`], a file under the data directory or chunk blobs in a
//! container. Both reach durable storage at least once a second (a file is synced; a
//! container is sent the chunk), so a crash loses a second or so of the session, not all of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult};
use rampart_store::{RecordingRecord, Store};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::asciicast::Cast;
use super::blob::Container;
use super::desktop;

/// Written data reaches durable storage at least this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// A file's write buffer.
const WRITE_BUFFER: usize = 64 << 10;
/// A chunk is sent to a container before it grows past this.
const CHUNK_MAX: usize = 4 << 20;
/// Unsent bytes kept while a container refuses, before the recording gives up.
const UNSENT_MAX: usize = 64 << 20;

pub(super) enum Event {
    Output(Instant, Vec<u8>),
    Input(Instant, Vec<u8>),
    /// A picture of (part of) a desktop the gateway sent the browser; `true`: the whole screen.
    Frame(Instant, Vec<u8>, bool),
    /// A marker: an operator joined or left.
    Marker(Instant, String),
    /// The session ended: finish, and say the recording's size and digest on the sender.
    End(Option<oneshot::Sender<String>>),
}

/// Where a recording's bytes go.
pub(super) enum Sink {
    /// Buffered: a busy terminal's many small events become few writes (each write of a
    /// tokio file is a trip to a blocking thread); flushed and synced each second.
    File {
        path: PathBuf,
        file: Option<tokio::io::BufWriter<tokio::fs::File>>,
        dirty: bool,
    },
    Blob {
        container: Arc<Container>,
        location: String,
        unsent: Vec<u8>,
        next: u32,
    },
}

impl Sink {
    pub(super) fn location(&self) -> String {
        match self {
            Sink::File { path, .. } => path.display().to_string(),
            Sink::Blob { location, .. } => location.clone(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File { path, file, dirty } => {
                if file.is_none() {
                    if let Some(dir) = path.parent() {
                        tokio::fs::create_dir_all(dir).await?;
                    }
                    let created = tokio::fs::File::create(&*path).await?;
                    *file = Some(tokio::io::BufWriter::with_capacity(WRITE_BUFFER, created));
                }
                if let Some(f) = file {
                    f.write_all(bytes).await?;
                    *dirty = true;
                }
                Ok(())
            }
            Sink::Blob { unsent, .. } => {
                unsent.extend_from_slice(bytes);
                if unsent.len() >= CHUNK_MAX {
                    self.flush(false).await?;
                }
                Ok(())
            }
        }
    }

    /// Makes what was written durable: a file is synced, a container is sent the chunk. A
    /// container's refusal keeps the bytes for the next try, up to [`UNSENT_MAX`], unless this
    /// is the `last` try.
    async fn flush(&mut self, last: bool) -> std::io::Result<()> {
        match self {
            Sink::File { file: Some(f), dirty, .. } if *dirty => {
                f.flush().await?;
                f.get_ref().sync_data().await?;
                *dirty = false;
                Ok(())
            }
            Sink::File { .. } => Ok(()),
            Sink::Blob { unsent, .. } if unsent.is_empty() => Ok(()),
            Sink::Blob { container, location, unsent, next } => {
                let chunk = bytes::Bytes::copy_from_slice(unsent);
                match container.put_chunk(location, *next, chunk).await {
                    Ok(()) => {
                        unsent.clear();
                        *next += 1;
                        Ok(())
                    }
                    Err(e) if !last && unsent.len() < UNSENT_MAX => {
                        tracing::warn!(error = %e, "a recording's chunk was not stored; trying again");
                        Ok(())
                    }
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                }
            }
        }
    }
}

/// How a recording's events become bytes, by the session's protocol.
pub(super) enum Format {
    Terminal(Cast),
    Desktop,
}

impl Format {
    fn name(&self) -> &'static str {
        match self {
            Format::Terminal(_) => super::asciicast::FORMAT,
            Format::Desktop => desktop::FORMAT,
        }
    }

    pub(super) fn extension(&self) -> &'static str {
        match self {
            Format::Terminal(_) => "cast",
            Format::Desktop => "desktop",
        }
    }

    fn protocol(&self) -> &'static str {
        match self {
            Format::Terminal(_) => "ssh",
            Format::Desktop => "rdp",
        }
    }

    fn header(&self, title: &str) -> Vec<u8> {
        match self {
            Format::Terminal(_) => Cast::header(title),
            Format::Desktop => desktop::header(title),
        }
    }

    /// The bytes an event adds (`None`: nothing, as a secret being typed).
    fn encode(&mut self, t: f64, event: &Event) -> Option<Vec<u8>> {
        match (self, event) {
            (Format::Terminal(cast), Event::Output(_, bytes)) => cast.output(t, bytes),
            (Format::Terminal(cast), Event::Input(_, bytes)) => cast.input(t, bytes),
            (Format::Terminal(_), Event::Marker(_, text)) => Some(Cast::marker(t, text)),
            (Format::Desktop, Event::Frame(_, image, whole)) => {
                let kind = if *whole { desktop::Kind::Keyframe } else { desktop::Kind::Frame };
                Some(desktop::record(kind, t, image))
            }
            (Format::Desktop, Event::Input(_, bytes)) => {
                Some(desktop::record(desktop::Kind::Input, t, bytes))
            }
            (Format::Desktop, Event::Marker(_, text)) => {
                Some(desktop::record(desktop::Kind::Marker, t, text.as_bytes()))
            }
            // A desktop's raw RDP traffic is not kept: its pictures are.
            _ => None,
        }
    }
}

pub(super) struct Job {
    pub(super) store: Arc<dyn Store>,
    pub(super) sink: Sink,
    pub(super) format: Format,
    pub(super) id: String,
    pub(super) bastion: String,
    pub(super) user: String,
    pub(super) target: String,
    pub(super) started: Instant,
}

/// Counts and hashes what goes to the sink.
struct Digesting {
    hasher: Sha256,
    size: u64,
}

impl Job {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut digest = Digesting { hasher: Sha256::new(), size: 0 };
        let (done, note) = match self.record(&mut rx, &mut digest).await {
            Ok(done) => (done, self.finish(digest).await),
            Err(e) => {
                // Not vouched for: listed as incomplete, and the audit log says why.
                tracing::error!(session = %self.id, error = %e, "the session's recording failed");
                let mut entry = AuditEntry::new(Utc::now(), AuditEvent::Recording, AuditResult::Failed);
                entry.user = Some(self.user.clone());
                entry.bastion_id = Some(self.bastion.clone());
                entry.target_resource_id = Some(format!("recordings/{}", self.id));
                entry.reason = Some(format!("the recording of session {} failed: {e}", self.id));
                if let Err(err) = self.store.append_audit(&entry).await {
                    tracing::error!(session = %self.id, error = %err, "cannot audit the recording");
                }
                let done = loop {
                    match rx.recv().await {
                        Some(Event::End(done)) => break done,
                        Some(_) => {}
                        None => break None,
                    }
                };
                (done, format!("recording failed: {e}"))
            }
        };
        if let Some(done) = done {
            let _ = done.send(note);
        }
    }

    async fn write(&mut self, digest: &mut Digesting, bytes: &[u8]) -> std::io::Result<()> {
        digest.hasher.update(bytes);
        digest.size += bytes.len() as u64;
        self.sink.write(bytes).await
    }

    /// Writes events until the session ends; `Ok` with whom to tell.
    async fn record(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        digest: &mut Digesting,
    ) -> std::io::Result<Option<oneshot::Sender<String>>> {
        let header = self.format.header(&format!("{} → {}", self.user, self.target));
        let record = RecordingRecord {
            id: self.id.clone(),
            bastion_id: self.bastion.clone(),
            username: self.user.clone(),
            target: self.target.clone(),
            protocol: self.format.protocol().into(),
            format: self.format.name().into(),
            location: self.sink.location(),
            started_at: Utc::now(),
            ended_at: None,
            size_bytes: None,
            sha256: None,
        };
        if let Err(e) = self.store.create_recording(&record).await {
            tracing::error!(session = %self.id, error = %e, "cannot list the session's recording");
        }
        self.write(digest, &header).await?;
        self.sink.flush(false).await?;
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = tick.tick() => {
                    self.sink.flush(false).await?;
                    continue;
                }
            };
            match event {
                Some(
                    ref event @ (Event::Output(at, _)
                    | Event::Input(at, _)
                    | Event::Frame(at, _, _)
                    | Event::Marker(at, _)),
                ) => {
                    let t = at.saturating_duration_since(self.started).as_secs_f64();
                    if let Some(bytes) = self.format.encode(t, event) {
                        self.write(digest, &bytes).await?;
                    }
                }
                Some(Event::End(done)) => {
                    self.sink.flush(true).await?;
                    return Ok(done);
                }
                None => {
                    self.sink.flush(true).await?;
                    return Ok(None);
                }
            }
        }
    }

    /// Records the end, size and digest in the store and the audit log; the close record's note.
    async fn finish(&mut self, digest: Digesting) -> String {
        let size = digest.size;
        let sha = hex::encode(digest.hasher.finalize());
        let ended = Utc::now();
        if let Err(e) = self.store.finish_recording(&self.id, ended, size, &sha).await {
            tracing::error!(session = %self.id, error = %e, "cannot record the recording's digest");
        }
        let mut e = AuditEntry::new(ended, AuditEvent::Recording, AuditResult::Allowed);
        e.user = Some(self.user.clone());
        e.bastion_id = Some(self.bastion.clone());
        e.target_resource_id = Some(format!("recordings/{}", self.id));
        e.reason = Some(format!("recorded session {}: {size} bytes, sha256 {sha}", self.id));
        if let Err(err) = self.store.append_audit(&e).await {
            tracing::error!(session = %self.id, error = %err, "cannot audit the recording");
        }
        format!("recording {size} bytes, sha256 {sha}")
    }
}
