//! The browser terminal's file panel: browse the target over SFTP on the terminal's own SSH
//! connection, upload files (streamed to the target, never held whole), download them.
//!
//! Each transfer is allowed by the bastion's `--file-transfer` setting for its direction (and
//! its size limit), and by the role action for that direction at the bastion
//! (`bastionHosts/fileUpload/action`, `…/fileDownload/action`: Owner and Contributor have
//! them, Reader does not). Every transfer is audited (`file-transfer`) with its path, size and
//! SHA-256; every refusal with its reason. Only the user whose terminal it is may use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use chrono::Utc;
use futures_util::StreamExt;
use rampart_core::files::check_transfer;
use rampart_core::{AuditEntry, AuditEvent, AuditResult, ResourceId, Scope, TransferDirection};
use rampart_ssh::files::RemoteFiles;
use rampart_ssh::terminal::ShellInput;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{PortalUser, same_origin};

mod archive;
use crate::api::{ApiError, AppState};
use crate::server::Gateway;

pub(crate) const UPLOAD: &str = "Microsoft.Network/bastionHosts/fileUpload/action";
pub(crate) const DOWNLOAD: &str = "Microsoft.Network/bastionHosts/fileDownload/action";
/// Read from the target this much at a time.
const CHUNK: usize = 256 * 1024;

/// A live browser terminal's files, offered while it runs.
#[derive(Clone)]
pub struct FilePoint {
    /// The portal user whose terminal it is.
    pub owner: String,
    pub bastion_id: String,
    /// The session's open record: who, where to (copied into each transfer's record).
    pub entry: AuditEntry,
    pub shell: Arc<ShellInput>,
    /// Turns true when the terminal ends: transfers under way stop with it.
    ended: watch::Receiver<bool>,
    sftp: Arc<tokio::sync::OnceCell<Arc<RemoteFiles>>>,
}

impl FilePoint {
    pub fn new(
        owner: String,
        bastion_id: String,
        entry: AuditEntry,
        shell: Arc<ShellInput>,
        ended: watch::Receiver<bool>,
    ) -> FilePoint {
        FilePoint { owner, bastion_id, entry, shell, ended, sftp: Default::default() }
    }

    /// SFTP on the terminal's connection, opened on first use.
    async fn sftp(&self) -> Result<Arc<RemoteFiles>, ApiError> {
        self.sftp
            .get_or_try_init(|| async { self.shell.files().await.map(Arc::new) })
            .await
            .cloned()
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "SftpFailed", e.to_string()))
    }
}

#[derive(Default)]
pub struct FilePoints {
    points: Mutex<HashMap<String, FilePoint>>,
}

impl FilePoints {
    pub fn offer(&self, session: &str, point: FilePoint) {
        self.points.lock().unwrap_or_else(|p| p.into_inner()).insert(session.to_string(), point);
    }

    pub fn withdraw(&self, session: &str) {
        self.points.lock().unwrap_or_else(|p| p.into_inner()).remove(session);
    }

    fn get(&self, session: &str) -> Option<FilePoint> {
        self.points.lock().unwrap_or_else(|p| p.into_inner()).get(session).cloned()
    }
}

/// The terminal `session` of `user` on this node, with its bastion's current settings.
async fn point(
    gw: &Gateway,
    user: &PortalUser,
    session: &str,
) -> Result<(FilePoint, rampart_core::Bastion), ApiError> {
    let gone = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "SessionNotFound",
            "this terminal has ended (or is not yours); open the panel from a running terminal",
        )
    };
    let p = gw.files.get(session).filter(|p| p.owner == user.caller.user.claims.sub).ok_or_else(gone)?;
    let id: ResourceId = p.bastion_id.parse().map_err(|_| gone())?;
    let bastion = gw.store.bastion(&id).await?.ok_or_else(gone)?;
    Ok((p, bastion))
}

/// A transfer's record: the session's who and where, this transfer's what.
fn record(p: &FilePoint, user: &PortalUser, result: AuditResult) -> AuditEntry {
    let mut e = AuditEntry::new(Utc::now(), AuditEvent::FileTransfer, result);
    e.user = Some(user.name().to_string());
    e.client_address = Some(user.caller.user.client.to_string());
    e.user_agent = user.caller.user.user_agent.clone();
    e.bastion_id = Some(p.bastion_id.clone());
    e.target_ip = p.entry.target_ip.clone();
    e.target_port = p.entry.target_port;
    e.target_resource_id = p.entry.target_resource_id.clone();
    e.connection_id = p.entry.connection_id.clone();
    e.protocol = Some("sftp".into());
    e
}

/// Allows a transfer (role action, then the bastion's setting), or records the refusal.
async fn allow(
    gw: &Gateway,
    user: &PortalUser,
    (p, bastion): (&FilePoint, &rampart_core::Bastion),
    direction: TransferDirection,
    size: Option<u64>,
    path: &str,
) -> Result<(), ApiError> {
    let action = if direction == TransferDirection::Upload { UPLOAD } else { DOWNLOAD };
    user.caller.require(gw, AuditEvent::FileTransfer, action, &Scope::Resource(bastion.id.clone())).await?;
    if let Err(refusal) = check_transfer(&bastion.settings, direction, size) {
        let mut e = record(p, user, AuditResult::Refused);
        e.reason_code = Some(refusal.code());
        e.reason = Some(format!("{} of {path} refused: {refusal}", direction.as_str()));
        gw.store.append_audit(&e).await?;
        let too_large =
            refusal.reasons().iter().all(|r| matches!(r, rampart_core::RefusalReason::FileTooLarge { .. }));
        return Err(if too_large {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, refusal.code(), format!("refused: {refusal}"))
        } else {
            ApiError::refused(&refusal)
        });
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct PathQuery {
    path: Option<String>,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    dir: bool,
    /// A regular file (downloadable; links and devices are listed but not offered).
    file: bool,
    size: u64,
    modified: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    path: String,
    entries: Vec<Entry>,
    /// What the panel offers, and why not.
    upload: Option<String>,
    download: Option<String>,
}

fn target_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "TargetFileError", format!("the target says: {e}"))
}

/// `GET /portal/files/{session}?path=P`: a folder of the target (`.`: the user's home).
pub async fn list(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(session): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let (p, bastion) = point(&gw, &user, &session).await?;
    let why_not = |d: TransferDirection, action: &str| {
        if !user.caller.may(action, &Scope::Resource(bastion.id.clone())) {
            Some(format!("your roles do not allow file {} here ({action})", d.as_str()))
        } else {
            check_transfer(&bastion.settings, d, None).err().map(|r| r.to_string())
        }
    };
    let (upload, download) =
        (why_not(TransferDirection::Upload, UPLOAD), why_not(TransferDirection::Download, DOWNLOAD));
    if upload.is_some() && download.is_some() {
        // Nothing to offer: the panel says why, and the target is not asked.
        return Ok(
            Json(Listing { path: String::new(), entries: Vec::new(), upload, download }).into_response()
        );
    }
    let sftp = p.sftp().await?;
    let path = sftp
        .canonical(q.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("."))
        .await
        .map_err(target_error)?;
    let entries = sftp
        .list(&path)
        .await
        .map_err(target_error)?
        .into_iter()
        .map(|e| Entry { name: e.name, dir: e.dir, file: e.file, size: e.size, modified: e.modified })
        .collect();
    Ok(Json(Listing { path, entries, upload, download }).into_response())
}

#[derive(Deserialize)]
pub struct UploadQuery {
    dir: String,
    name: String,
}

#[derive(Serialize)]
struct Uploaded {
    path: String,
    size: u64,
    sha256: String,
}

/// `POST /portal/files/{session}/upload?dir=D&name=N`: the body, streamed to `D/N` on the
/// target (replacing a file of that name), hashed on the way.
pub async fn upload(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(session): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    if let Err(refused) = same_origin(&headers, &uri) {
        return Ok(refused.into_response());
    }
    let name = q.name.trim();
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request("InvalidFileName", format!("'{name}' is not a file name")));
    }
    let path = format!("{}/{name}", q.dir.trim_end_matches('/'));
    let (p, bastion) = point(&gw, &user, &session).await?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    allow(&gw, &user, (&p, &bastion), TransferDirection::Upload, declared, &path).await?;
    let sftp = p.sftp().await?;
    let receiving = Receiving {
        gw: gw.clone(),
        sftp,
        path,
        limit: bastion.settings.file_transfer_max_bytes,
        entry: record(&p, &user, AuditResult::Allowed),
        ended: p.ended.clone(),
    };
    // A task of its own: if the browser goes away mid-upload, the request's handler is dropped,
    // and the partial file is still removed and the upload still recorded.
    tokio::spawn(receiving.run(body)).await.map_err(ApiError::internal)?
}

/// One upload: streamed into a temporary file beside its destination, which takes its name
/// only when every byte has arrived (a file it replaces is never left half-written).
struct Receiving {
    gw: AppState,
    sftp: Arc<RemoteFiles>,
    path: String,
    limit: Option<u64>,
    entry: AuditEntry,
    ended: watch::Receiver<bool>,
}

impl Receiving {
    async fn run(mut self, body: Body) -> Result<Response, ApiError> {
        let (dir, name) = self.path.rsplit_once('/').unwrap_or(("", &self.path));
        let temp = format!("{dir}/.{name}.rampart-upload-{}", uuid::Uuid::new_v4().simple());
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let outcome = self.receive(body, &temp, &mut hasher, &mut size).await;
        let sha256 = hex::encode(hasher.finalize());
        let path = self.path.clone();
        let mut e = self.entry.clone();
        e.bytes_to_target = Some(size);
        let outcome = match outcome {
            // The destination is replaced: SFTP's rename does not overwrite.
            Ok(()) => {
                let _ = self.sftp.remove(&path).await;
                self.sftp.rename(&temp, &path).await.map_err(target_error)
            }
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => {
                e.reason = Some(format!("uploaded {path}: {size} bytes, sha256 {sha256}"));
                self.gw.store.append_audit(&e).await?;
                Ok(Json(Uploaded { path, size, sha256 }).into_response())
            }
            Err(err) => {
                // No partial file is left behind.
                let _ = self.sftp.remove(&temp).await;
                e.result = if matches!(err.status, StatusCode::FORBIDDEN | StatusCode::PAYLOAD_TOO_LARGE) {
                    AuditResult::Refused
                } else {
                    AuditResult::Failed
                };
                e.reason_code = Some(err.code.clone());
                e.reason = Some(format!("upload of {path} stopped after {size} bytes: {}", err.message));
                self.gw.store.append_audit(&e).await?;
                Err(err)
            }
        }
    }

    async fn receive(
        &mut self,
        body: Body,
        temp: &str,
        hasher: &mut Sha256,
        size: &mut u64,
    ) -> Result<(), ApiError> {
        let mut file = self.sftp.create(temp).await.map_err(target_error)?;
        let mut stream = body.into_data_stream();
        loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                _ = self.ended.wait_for(|ended| *ended) => {
                    return Err(ApiError::new(StatusCode::CONFLICT, "SessionEnded", "the terminal ended during the upload"));
                }
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk
                .map_err(|e| ApiError::bad_request("UploadBrokeOff", format!("the upload broke off: {e}")))?;
            *size += chunk.len() as u64;
            if let Some(limit) = self.limit
                && *size > limit
            {
                let reason = rampart_core::RefusalReason::FileTooLarge { size: *size, limit };
                let refusal = rampart_core::Refusal::new(reason);
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    refusal.code(),
                    format!("refused: {refusal}"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(target_error)?;
        }
        file.shutdown().await.map_err(target_error)
    }
}

/// The record of a download, written when its stream ends, or (as broken off) when the
/// browser stops reading before the end.
struct DownloadRecord {
    gw: AppState,
    entry: Option<AuditEntry>,
    path: String,
    hasher: Sha256,
    size: u64,
}

impl DownloadRecord {
    fn new(gw: &AppState, entry: AuditEntry, path: String) -> DownloadRecord {
        DownloadRecord { gw: gw.clone(), entry: Some(entry), path, hasher: Sha256::new(), size: 0 }
    }

    fn finish(&mut self, complete: bool) {
        let Some(mut e) = self.entry.take() else { return };
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        e.bytes_from_target = Some(self.size);
        if complete {
            e.reason = Some(format!("downloaded {}: {} bytes, sha256 {sha256}", self.path, self.size));
        } else {
            e.result = AuditResult::Failed;
            e.reason_code = Some("DownloadBrokeOff".into());
            e.reason = Some(format!("download of {} broke off after {} bytes", self.path, self.size));
        }
        let gw = self.gw.clone();
        tokio::spawn(async move {
            if let Err(err) = gw.store.append_audit(&e).await {
                tracing::error!(error = %err, "cannot record a file download");
            }
        });
    }
}

impl Drop for DownloadRecord {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// `GET /portal/files/{session}/download?path=P`: a file of the target, streamed; a folder as
/// one tar archive of what it holds.
pub async fn download(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(session): Path<String>,
    Query(q): Query<PathQuery>,
    method: axum::http::Method,
) -> Result<Response, ApiError> {
    let path = q.path.unwrap_or_default();
    let (p, bastion) = point(&gw, &user, &session).await?;
    allow(&gw, &user, (&p, &bastion), TransferDirection::Download, None, &path).await?;
    let sftp = p.sftp().await?;
    let found = sftp.stat(&path).await.map_err(target_error)?;
    let name = if found.name.is_empty() { "files".to_string() } else { found.name.clone() };
    if method == axum::http::Method::HEAD {
        // What a download would be, without reading (or recording) it.
        let (name, kind, size) = if found.dir {
            (format!("{name}.tar"), "application/x-tar", None)
        } else {
            (name, "application/octet-stream", Some(found.size))
        };
        return Ok(attachment(Body::empty(), &name, kind, size));
    }
    if found.dir {
        let (items, total) = archive::walk(&sftp, &path).await.map_err(target_error)?;
        allow(&gw, &user, (&p, &bastion), TransferDirection::Download, Some(total), &path).await?;
        let count = items.len();
        let (writer, reader) = tokio::io::duplex(CHUNK);
        let (done, written) = tokio::sync::oneshot::channel();
        let root = path.clone();
        tokio::spawn(async move {
            let _ = done.send(archive::write(sftp, &root, items, writer).await);
        });
        let what = format!("{path} (a tar archive of {count} entries)");
        let record = DownloadRecord::new(&gw, record(&p, &user, AuditResult::Allowed), what);
        let body = stream_out(reader, record, Some(written), p.ended.clone());
        return Ok(attachment(body, &format!("{name}.tar"), "application/x-tar", None));
    }
    if !found.file {
        return Err(ApiError::bad_request("NotAFile", format!("{path} is not a regular file")));
    }
    allow(&gw, &user, (&p, &bastion), TransferDirection::Download, Some(found.size), &path).await?;
    // At most the size checked (and announced), should the file grow meanwhile.
    let file = sftp.open(&path).await.map_err(target_error)?.take(found.size);
    let record = DownloadRecord::new(&gw, record(&p, &user, AuditResult::Allowed), path);
    let body = stream_out(file, record, None, p.ended.clone());
    Ok(attachment(body, &name, "application/octet-stream", Some(found.size)))
}

/// The bytes of `from` as a response body, hashed and counted for the record, which is written
/// at the end (and says "broke off" if the browser stops reading, or `written` reports that
/// the archive could not be finished).
fn stream_out<R>(
    from: R,
    record: DownloadRecord,
    written: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
    ended: watch::Receiver<bool>,
) -> Body
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let stream = futures_util::stream::unfold(Some((from, record, written, ended)), |state| async move {
        let (mut from, mut record, written, ended) = state?;
        // The terminal ended: the download stops with it (and is recorded as broken off).
        if *ended.borrow() {
            return Some((Err(std::io::Error::other("the terminal ended")), None));
        }
        let mut buf = BytesMut::zeroed(CHUNK);
        match from.read(&mut buf).await {
            Ok(0) => {
                let outcome = match written {
                    Some(rx) => rx.await.unwrap_or_else(|_| Err("the archive's writer stopped".into())),
                    None => Ok(()),
                };
                match outcome {
                    Ok(()) => {
                        record.finish(true);
                        None
                    }
                    // The response fails (no truncated archive passes for a whole one).
                    Err(e) => Some((Err(std::io::Error::other(e)), None)),
                }
            }
            Ok(n) => {
                buf.truncate(n);
                record.hasher.update(&buf);
                record.size += n as u64;
                Some((Ok(buf.freeze()), Some((from, record, written, ended))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

/// A download's response: its type, its length when known, and the name to save it under.
fn attachment(body: Body, name: &str, kind: &'static str, size: Option<u64>) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(size) = size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let disposition =
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", super::url_encode(name));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
