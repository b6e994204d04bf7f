//! A folder of the target as one tar stream (astral-tokio-tar, `tokio_tar`): what is under it is listed
//! first (bounded, links and anything but files and folders left out), then each file is read
//! from the target into the archive as the browser reads the response.

use std::collections::VecDeque;
use std::sync::Arc;

use rampart_ssh::files::RemoteFiles;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tar::{Builder, EntryType, Header};

/// At most this many entries in one archive.
pub(super) const MAX_ENTRIES: usize = 10_000;
/// Folders deeper than this are left out.
const MAX_DEPTH: usize = 32;

/// One entry of the archive, by its path under the folder.
pub(super) struct Item {
    rel: String,
    dir: bool,
    size: u64,
    modified: Option<u32>,
}

/// Everything under `root`, each folder before what it holds; and the files' total size.
pub(super) async fn walk(sftp: &RemoteFiles, root: &str) -> Result<(Vec<Item>, u64), String> {
    let (mut items, mut total) = (Vec::new(), 0u64);
    let mut folders = VecDeque::from([(String::new(), 0usize)]);
    while let Some((rel, depth)) = folders.pop_front() {
        let here = if rel.is_empty() { root.to_string() } else { format!("{root}/{rel}") };
        for e in sftp.list(&here).await.map_err(|e| format!("{here}: {e}"))? {
            if !e.dir && !e.file {
                continue;
            }
            if items.len() >= MAX_ENTRIES {
                return Err(format!(
                    "{root} holds more than {MAX_ENTRIES} entries: download a folder inside it"
                ));
            }
            let child = if rel.is_empty() { e.name.clone() } else { format!("{rel}/{}", e.name) };
            if e.dir && depth + 1 < MAX_DEPTH {
                folders.push_back((child.clone(), depth + 1));
            }
            total += if e.file { e.size } else { 0 };
            items.push(Item { rel: child, dir: e.dir, size: e.size, modified: e.modified });
        }
    }
    Ok((items, total))
}

/// Writes the archive of `items` (under `root` on the target) to `out`, then ends it.
pub(super) async fn write<W: AsyncWrite + Unpin + Send + Sync + 'static>(
    sftp: Arc<RemoteFiles>,
    root: &str,
    items: Vec<Item>,
    out: W,
) -> Result<(), String> {
    let mut tar = Builder::new(out);
    for item in items {
        let mut header = Header::new_gnu();
        header.set_mtime(item.modified.map(u64::from).unwrap_or(0));
        if item.dir {
            header.set_entry_type(EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, &item.rel, tokio::io::empty()).await.map_err(|e| e.to_string())?;
        } else {
            let path = format!("{root}/{}", item.rel);
            let file = sftp.open(&path).await.map_err(|e| format!("{path}: {e}"))?;
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(item.size);
            // A file that grew since it was listed is cut at its listed size; one that shrank
            // fails the archive rather than leave a wrong entry.
            let file = Exactly { inner: tokio::io::AsyncReadExt::take(file, item.size), left: item.size };
            tar.append_data(&mut header, &item.rel, file).await.map_err(|e| format!("{path}: {e}"))?;
        }
    }
    let mut out = tar.into_inner().await.map_err(|e| e.to_string())?;
    out.shutdown().await.map_err(|e| e.to_string())
}

/// Reads exactly `left` bytes: ending sooner is an error (a tar entry's size is in its header).
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Exactly<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = polled {
            let read = (buf.filled().len() - before) as u64;
            if read == 0 && self.left > 0 && buf.remaining() > 0 {
                let short = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was archived",
                );
                return std::task::Poll::Ready(Err(short));
            }
            self.left = self.left.saturating_sub(read);
        }
        polled
    }
}
