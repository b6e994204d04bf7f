//! Session recording: an observer of the one session lifecycle. On a bastion whose
//! `session_recording` is on, a browser terminal is written as asciicast v2 ([`asciicast`];
//! what asciinema plays) and a browser desktop as its pictures and input ([`desktop`]), to
//! `DATA/recordings/ID.cast` (`.desktop`) or, with a storage URL, to chunk blobs in that
//! Azure Blob container. At its end the size and SHA-256 go to the store, to an audit record,
//! and into the session's close record. The observer's methods only queue: a task per
//! recording does the writing ([`writer`]). Old recordings are deleted by [`retention`].

pub(crate) mod asciicast;
mod blob;
pub(crate) mod desktop;
pub(crate) mod retention;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_core::{BastionSettings, Protocol, ResourceId, SecretUrl};
use rampart_store::{RecordingRecord, Store};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub use blob::{BlobError, Container, parse_sas_url};
use writer::{Event, Format, Job, Sink};

use crate::lifecycle::{Direction, Session, SessionObserver};

/// Why a recording's bytes cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the recording's file cannot be read: {0}")]
    File(#[from] std::io::Error),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("the recording is in a blob container, and its bastion has no recording storage URL now")]
    NoStorageUrl,
}

pub struct Recorder {
    store: Arc<dyn Store>,
    dir: PathBuf,
    live: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    /// A client per container URL (the same SAS URL serves every session).
    containers: Containers,
}

type Containers = Arc<Mutex<HashMap<String, Arc<Container>>>>;

/// The container of a SAS URL, made once.
fn container_in(known: &Containers, url: &SecretUrl) -> Result<Arc<Container>, BlobError> {
    let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = known.get(url.expose()) {
        return Ok(c.clone());
    }
    let made = Arc::new(Container::from_sas_url(url.expose())?);
    known.insert(url.expose().to_string(), made.clone());
    Ok(made)
}

/// Where a new recording of a session on a bastion with `settings` goes.
fn sink_for(
    dir: &Path,
    known: &Containers,
    id: &str,
    extension: &str,
    settings: &BastionSettings,
) -> Result<Sink, BlobError> {
    Ok(match &settings.recording_storage_url {
        Some(url) => {
            let container = container_in(known, url)?;
            Sink::Blob { location: container.location_of(id), container, unsent: Vec::new(), next: 0 }
        }
        None => Sink::File { path: dir.join(format!("{id}.{extension}")), file: None, dirty: false },
    })
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>, data_dir: &Path) -> Recorder {
        Recorder {
            store,
            dir: data_dir.join("recordings"),
            live: Mutex::default(),
            containers: Containers::default(),
        }
    }

    /// The container of a SAS URL, made once.
    pub fn container(&self, url: &SecretUrl) -> Result<Arc<Container>, BlobError> {
        container_in(&self.containers, url)
    }

    /// The container a recording's location is in, by its bastion's storage URL now.
    async fn container_of(&self, r: &RecordingRecord) -> Result<Arc<Container>, ReadError> {
        let id: ResourceId = r.bastion_id.parse().map_err(|_| ReadError::NoStorageUrl)?;
        let settings = self.store.bastion(&id).await.ok().flatten().map(|b| b.settings);
        let url = settings.and_then(|s| s.recording_storage_url).ok_or(ReadError::NoStorageUrl)?;
        Ok(self.container(&url)?)
    }

    /// A recording's bytes, wherever they are.
    pub async fn read(&self, r: &RecordingRecord) -> Result<Vec<u8>, ReadError> {
        if is_blob(&r.location) {
            Ok(self.container_of(r).await?.read(&r.location).await?)
        } else {
            Ok(tokio::fs::read(&r.location).await?)
        }
    }

    /// Deletes a recording's bytes (gone already is fine).
    pub async fn delete(&self, r: &RecordingRecord) -> Result<(), ReadError> {
        if is_blob(&r.location) {
            Ok(self.container_of(r).await?.delete(&r.location).await?)
        } else {
            match tokio::fs::remove_file(&r.location).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            }
        }
    }

    /// Puts a marker (an asciicast `m` event: who joined, who left) into a running recording.
    pub fn mark(&self, session: &str, text: String) {
        if let Some(tx) = self.live.lock().ok().and_then(|l| l.get(session).cloned()) {
            let _ = tx.send(Event::Marker(std::time::Instant::now(), text));
        }
    }

    /// Recomputes a recording's size and SHA-256 from its bytes.
    pub async fn digest(&self, r: &RecordingRecord) -> Result<(u64, String), ReadError> {
        let bytes = self.read(r).await?;
        Ok((bytes.len() as u64, hex::encode(Sha256::digest(&bytes))))
    }
}

/// Whether a recording of this format is a terminal's (text to search, xterm.js to play).
pub fn is_terminal(format: &str) -> bool {
    format == asciicast::FORMAT
}

/// The media type a recording's bytes are served with.
pub fn content_type(format: &str) -> &'static str {
    if is_terminal(format) { "application/x-asciicast" } else { "application/octet-stream" }
}

/// Locations in a container are URLs; files are paths.
fn is_blob(location: &str) -> bool {
    location.starts_with("https://") || location.starts_with("http://")
}

impl SessionObserver for Recorder {
    fn started(&self, session: &Session, _admitted_in: Option<Duration>) {
        // A native client's bytes are its own end-to-end encryption (an RD Gateway channel
        // is TLS between client and target): nothing the gateway could replay.
        if session.request.client_kind == rampart_core::ClientKind::Native {
            return;
        }
        let format = match session.protocol {
            Protocol::Ssh => Format::Terminal(asciicast::Cast::default()),
            Protocol::Rdp => Format::Desktop,
            Protocol::TcpTunnel => return,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut live) = self.live.lock() {
            live.insert(session.id.clone(), tx);
        }
        let store = self.store.clone();
        let id = session.id.clone();
        let bastion = session.bastion_id.clone();
        let user = session.user.clone();
        let target = session
            .target_resource_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", session.target_ip, session.target_port));
        let started = session.started;
        // The sink is chosen by the settings read from the store, on the recorder's own task.
        let (dir, known) = (self.dir.clone(), self.containers.clone());
        tokio::spawn(async move {
            let settings = match bastion.parse::<ResourceId>() {
                Ok(b) => store.bastion(&b).await.ok().flatten().map(|b| b.settings),
                Err(_) => None,
            };
            let Some(settings) = settings.filter(|s| s.session_recording) else {
                return drain(rx).await;
            };
            match sink_for(&dir, &known, &id, format.extension(), &settings) {
                Ok(sink) => Job { store, sink, format, id, bastion, user, target, started }.run(rx).await,
                Err(e) => {
                    tracing::error!(session = %id, error = %e, "the session cannot be recorded");
                    drain(rx).await
                }
            }
        });
    }

    fn data(&self, session: &Session, direction: Direction, bytes: &[u8]) {
        if let Some(tx) = self.live.lock().ok().and_then(|l| l.get(&session.id).cloned()) {
            let now = std::time::Instant::now();
            let event = match direction {
                Direction::FromTarget => Event::Output(now, bytes.to_vec()),
                Direction::ToTarget => Event::Input(now, bytes.to_vec()),
            };
            let _ = tx.send(event);
        }
    }

    fn frame(&self, session: &Session, image: &[u8], whole: bool) {
        if let Some(tx) = self.live.lock().ok().and_then(|l| l.get(&session.id).cloned()) {
            let _ = tx.send(Event::Frame(std::time::Instant::now(), image.to_vec(), whole));
        }
    }

    fn closing(&self, session: &Session) -> Option<oneshot::Receiver<String>> {
        let tx = self.live.lock().ok().and_then(|mut l| l.remove(&session.id))?;
        let (done, note) = oneshot::channel();
        tx.send(Event::End(Some(done))).ok()?;
        Some(note)
    }

    fn ended(&self, session: &Session, _end: &rampart_core::EndReason) {
        if let Some(tx) = self.live.lock().ok().and_then(|mut l| l.remove(&session.id)) {
            let _ = tx.send(Event::End(None));
        }
    }
}

/// Until the session ends, for a session that is not recorded.
async fn drain(mut rx: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = rx.recv().await {
        // Dropping `End`'s sender adds no note to the close record.
        if matches!(event, Event::End(_)) {
            return;
        }
    }
}
