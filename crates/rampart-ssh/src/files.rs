//! The browser terminal's file panel, over SFTP on the terminal's own SSH connection: list a
//! folder, read a file as a stream, write one from a stream. Paths are the target's; what a
//! user may reach is what their account on the target may.

use russh_sftp::client::SftpSession;
use russh_sftp::client::fs::File;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilesError(String);

impl From<russh_sftp::client::error::Error> for FilesError {
    fn from(e: russh_sftp::client::error::Error) -> Self {
        FilesError(e.to_string())
    }
}

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub name: String,
    pub dir: bool,
    /// A regular file (not a folder, link, device or socket): what may be downloaded.
    pub file: bool,
    pub size: u64,
    /// Seconds since the epoch, when the target says.
    pub modified: Option<u32>,
}

/// SFTP on a target.
pub struct RemoteFiles {
    sftp: SftpSession,
}

impl RemoteFiles {
    pub async fn over<S>(stream: S) -> Result<RemoteFiles, FilesError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Ok(RemoteFiles { sftp: SftpSession::new(stream).await? })
    }

    /// The absolute form of `path` (`.` is the user's home).
    pub async fn canonical(&self, path: &str) -> Result<String, FilesError> {
        Ok(self.sftp.canonicalize(path).await?)
    }

    /// A folder's entries, folders first, then by name (`.` and `..` left out).
    pub async fn list(&self, path: &str) -> Result<Vec<RemoteEntry>, FilesError> {
        let mut entries: Vec<RemoteEntry> = self
            .sftp
            .read_dir(path)
            .await?
            .filter(|e| e.file_name() != "." && e.file_name() != "..")
            .map(|e| {
                let m = e.metadata();
                RemoteEntry {
                    name: e.file_name(),
                    dir: m.is_dir(),
                    file: m.file_type().is_file(),
                    size: m.len(),
                    modified: m.mtime,
                }
            })
            .collect();
        entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
        Ok(entries)
    }

    /// What `path` is (links followed), as an entry named by its last part.
    pub async fn stat(&self, path: &str) -> Result<RemoteEntry, FilesError> {
        let m = self.sftp.metadata(path).await?;
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        Ok(RemoteEntry {
            name,
            dir: m.is_dir(),
            file: m.file_type().is_file(),
            size: m.len(),
            modified: m.mtime,
        })
    }

    /// A file to read.
    pub async fn open(&self, path: &str) -> Result<File, FilesError> {
        Ok(self.sftp.open(path).await?)
    }

    /// A file to write, made empty (created when missing).
    pub async fn create(&self, path: &str) -> Result<File, FilesError> {
        Ok(self.sftp.create(path).await?)
    }

    /// Renames a file (`to` must not exist: SFTP's rename does not replace).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), FilesError> {
        Ok(self.sftp.rename(from, to).await?)
    }

    /// Deletes a file (a partial upload that was refused or broke off).
    pub async fn remove(&self, path: &str) -> Result<(), FilesError> {
        Ok(self.sftp.remove_file(path).await?)
    }
}
