//! The SSH client behind the browser terminal: the gateway dials the target, checks its host
//! key against the one pinned for that target, authenticates with the password or private
//! key the user typed (kept in memory only for this call), and opens a shell on a PTY.
//!
//! The caller owns the TCP connection (it was dialled after the policy allowed it) and the
//! pinning store; this module owns the SSH protocol, through russh.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use russh::ChannelMsg;
use russh::client::{self, AuthResult, Handle, Msg};
use russh::keys::ssh_key::{HashAlg, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key};
use tokio::net::TcpStream;

/// How the user proves who they are on the target.
pub enum TerminalAuth {
    Password(String),
    /// An OpenSSH, PEM or PuTTY private key, with its passphrase when it is encrypted.
    PrivateKey {
        key: String,
        passphrase: Option<String>,
    },
    /// A key made for this sign-in and its certificate from the gateway's SSH CA (OpenSSH
    /// form): identity sign-in, where the target trusts the CA.
    Certificate {
        key: String,
        certificate: String,
    },
}

impl std::fmt::Debug for TerminalAuth {
    // Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TerminalAuth::Password(_) => f.write_str("Password(…)"),
            TerminalAuth::PrivateKey { .. } => f.write_str("PrivateKey(…)"),
            TerminalAuth::Certificate { .. } => f.write_str("Certificate(…)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error(
        "the target's host key has changed: pinned {pinned}, offered {offered}. This may be an attack; \
         an operator who knows the key was changed can forget the pinned key \
         (`rampart network bastion host-key forget`)"
    )]
    HostKeyChanged { pinned: String, offered: String },
    #[error("authentication failed for '{username}' (the target accepts: {accepted})")]
    AuthenticationFailed { username: String, accepted: String },
    #[error("the private key is encrypted: give its passphrase")]
    KeyNeedsPassphrase,
    #[error("the private key cannot be read (wrong passphrase, or not an OpenSSH, PEM or PuTTY key): {0}")]
    BadPrivateKey(String),
    #[error("SSH with the target failed: {0}")]
    Protocol(String),
    #[error("the target refused to open a shell: {0}")]
    Shell(String),
}

/// What the target said about its key, kept by the handler so a refusal can be explained.
#[derive(Default)]
struct SeenKey {
    offered: Option<String>,
}

struct PinningHandler {
    pinned: Option<String>,
    seen: Arc<Mutex<SeenKey>>,
}

impl client::Handler for PinningHandler {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let data = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data().clone(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key().clone(),
        };
        let offered = host_key_line(&PublicKey::new(data, ""));
        let accept = self.pinned.as_deref().is_none_or(|pinned| pinned == offered);
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).offered = Some(offered);
        Ok(accept)
    }
}

/// A key as one OpenSSH line without comment: what is pinned and compared.
fn host_key_line(key: &PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

/// The SHA-256 fingerprint of a pinned key line, as `ssh-keygen -l` prints it.
pub fn fingerprint(host_key_line: &str) -> String {
    match PublicKey::from_openssh(host_key_line) {
        Ok(k) => k.fingerprint(HashAlg::Sha256).to_string(),
        Err(_) => "an unreadable key".to_string(),
    }
}

/// An authenticated SSH connection to a target.
pub struct SshTerminal {
    handle: Handle<PinningHandler>,
    host_key: String,
}

impl SshTerminal {
    /// Runs the SSH handshake on `stream`, checks the host key against `pinned` (any key is
    /// accepted and reported when nothing is pinned yet), then authenticates `username`.
    pub async fn connect(
        stream: TcpStream,
        pinned: Option<String>,
        username: &str,
        auth: TerminalAuth,
    ) -> Result<SshTerminal, TerminalError> {
        // Decode the key first: a bad key or passphrase is the user's to fix, before any
        // packet goes to the target.
        let key = match &auth {
            TerminalAuth::PrivateKey { key, passphrase } => Some(Arc::new(
                decode_secret_key(key, passphrase.as_deref().filter(|p| !p.is_empty())).map_err(
                    |e| match e {
                        russh::keys::Error::KeyIsEncrypted => TerminalError::KeyNeedsPassphrase,
                        other => TerminalError::BadPrivateKey(other.to_string()),
                    },
                )?,
            )),
            TerminalAuth::Certificate { key, .. } => Some(Arc::new(
                decode_secret_key(key, None).map_err(|e| TerminalError::BadPrivateKey(e.to_string()))?,
            )),
            TerminalAuth::Password(_) => None,
        };
        let _ = stream.set_nodelay(true);
        let config = Arc::new(client::Config {
            // The gateway's own keep-alive toward the target; the browser side has its own.
            keepalive_interval: Some(std::time::Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..client::Config::default()
        });
        let seen = Arc::new(Mutex::new(SeenKey::default()));
        let handler = PinningHandler { pinned: pinned.clone(), seen: seen.clone() };
        let mut handle = match client::connect_stream(config, stream, handler).await {
            Ok(h) => h,
            Err(e) => {
                let offered = seen.lock().unwrap_or_else(|p| p.into_inner()).offered.clone();
                return Err(match (pinned, offered) {
                    (Some(pinned), Some(offered)) if pinned != offered => TerminalError::HostKeyChanged {
                        pinned: fingerprint(&pinned),
                        offered: fingerprint(&offered),
                    },
                    _ => TerminalError::Protocol(e.to_string()),
                });
            }
        };
        let host_key = seen.lock().unwrap_or_else(|p| p.into_inner()).offered.clone().unwrap_or_default();
        let protocol = |e: russh::Error| TerminalError::Protocol(e.to_string());
        let result = match (auth, key) {
            (TerminalAuth::Password(password), _) => {
                handle.authenticate_password(username, password).await.map_err(protocol)?
            }
            (TerminalAuth::PrivateKey { .. }, Some(key)) => {
                let hash = handle.best_supported_rsa_hash().await.map_err(protocol)?.flatten();
                handle
                    .authenticate_publickey(username, PrivateKeyWithHashAlg::new(key, hash))
                    .await
                    .map_err(protocol)?
            }
            (TerminalAuth::Certificate { certificate, .. }, Some(key)) => {
                let certificate = russh::keys::Certificate::from_openssh(certificate.trim())
                    .map_err(|e| TerminalError::BadPrivateKey(format!("the certificate: {e}")))?;
                handle.authenticate_openssh_cert(username, key, certificate).await.map_err(protocol)?
            }
            (TerminalAuth::PrivateKey { .. } | TerminalAuth::Certificate { .. }, None) => {
                return Err(TerminalError::BadPrivateKey("no key".into()));
            }
        };
        match result {
            AuthResult::Success => Ok(SshTerminal { handle, host_key }),
            AuthResult::Failure { remaining_methods, .. } => {
                let accepted: Vec<&str> = remaining_methods.iter().map(<&str>::from).collect();
                Err(TerminalError::AuthenticationFailed {
                    username: username.to_string(),
                    accepted: if accepted.is_empty() { "nothing more".into() } else { accepted.join(", ") },
                })
            }
        }
    }

    /// The target's host key as one OpenSSH line (to pin on first use).
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// Opens a login shell on a `xterm-256color` PTY of the given size.
    pub async fn open_shell(self, cols: u16, rows: u16) -> Result<(ShellOutput, ShellInput), TerminalError> {
        let shell = |e: russh::Error| TerminalError::Shell(e.to_string());
        let channel = self.handle.channel_open_session().await.map_err(shell)?;
        channel
            .request_pty(true, "xterm-256color", cols.into(), rows.into(), 0, 0, &[])
            .await
            .map_err(shell)?;
        channel.request_shell(true).await.map_err(shell)?;
        let (read, write) = channel.split();
        Ok((ShellOutput { read, exit_status: None }, ShellInput { write, handle: Arc::new(self.handle) }))
    }
}

/// What the shell sends.
#[derive(Debug)]
pub enum ShellEvent {
    Output(Bytes),
    /// The shell ended (with its exit status when the target sent one).
    Ended {
        exit_status: Option<u32>,
    },
}

pub struct ShellOutput {
    read: russh::ChannelReadHalf,
    exit_status: Option<u32>,
}

impl ShellOutput {
    /// The next output of the shell (stdout and stderr alike, as a terminal shows them).
    pub async fn next(&mut self) -> ShellEvent {
        loop {
            match self.read.wait().await {
                Some(ChannelMsg::Data { data }) => return ShellEvent::Output(data),
                Some(ChannelMsg::ExtendedData { data, .. }) => return ShellEvent::Output(data),
                Some(ChannelMsg::ExitStatus { exit_status }) => self.exit_status = Some(exit_status),
                Some(ChannelMsg::Eof) => {}
                Some(ChannelMsg::Close) | None => return ShellEvent::Ended { exit_status: self.exit_status },
                Some(_) => {}
            }
        }
    }
}

pub struct ShellInput {
    write: russh::ChannelWriteHalf<Msg>,
    // Keeps the SSH connection open as long as someone can type into it (and opens SFTP on it).
    handle: Arc<Handle<PinningHandler>>,
}

impl ShellInput {
    pub async fn send(&self, data: Bytes) -> Result<(), TerminalError> {
        self.write.data_bytes(data).await.map_err(|e| TerminalError::Shell(e.to_string()))
    }

    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), TerminalError> {
        self.write
            .window_change(cols.into(), rows.into(), 0, 0)
            .await
            .map_err(|e| TerminalError::Shell(e.to_string()))
    }

    /// Opens SFTP on the same SSH connection (a channel of its own), for the file panel.
    pub async fn files(&self) -> Result<crate::files::RemoteFiles, TerminalError> {
        let failed = |e: String| TerminalError::Shell(format!("SFTP: {e}"));
        let channel = self.handle.channel_open_session().await.map_err(|e| failed(e.to_string()))?;
        channel.request_subsystem(true, "sftp").await.map_err(|e| failed(e.to_string()))?;
        crate::files::RemoteFiles::over(channel.into_stream()).await.map_err(|e| failed(e.to_string()))
    }

    /// Ends the session from our side.
    pub async fn close(&self) {
        let _ = self.write.eof().await;
        let _ = self.write.close().await;
    }
}
