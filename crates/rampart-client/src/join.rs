//! Live join from the command line: a WebSocket to a running browser terminal's join point
//! (`…/sessions/ID/join?mode=view|interact`), its output written to a local stream and, when
//! interacting, local input sent to the terminal. `Ctrl-]` leaves, as in telnet.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rampart_tunnel::tokio_tungstenite::tungstenite::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::api::ApiClient;
use crate::tunnel::{Connector, TunnelError};

/// The byte that leaves a join (`Ctrl-]`).
pub const ESCAPE: u8 = 0x1d;

/// How a join ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinEnd {
    /// The session ended, for this reason.
    SessionEnded(String),
    /// The operator left (`Ctrl-]`, or the end of their input when only watching).
    Left,
    /// The gateway closed the connection.
    Closed,
}

/// Joins the session at `path` (the API path of `…/sessions/ID/join?mode=…`) and relays
/// until it or the operator ends: output to `output`, and from `input`, when `interact`,
/// keystrokes to the terminal (up to `Ctrl-]`, which leaves).
pub async fn join(
    api: &ApiClient,
    path: &str,
    interact: bool,
    mut input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> Result<JoinEnd, TunnelError> {
    let token = api.access_token().await?;
    let connector = Connector::new(api.server(), api.trust())?;
    let ws = connector.open_websocket(path, &token, None).await?;
    let (mut to_gateway, mut from_gateway) = ws.split();
    let mut buf = vec![0u8; 4096];
    let mut input_open = true;
    let broken = |e: std::io::Error| TunnelError::WebSocket(e.to_string());
    loop {
        tokio::select! {
            message = from_gateway.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    output.write_all(&bytes).await.map_err(broken)?;
                    output.flush().await.map_err(broken)?;
                }
                Some(Ok(Message::Text(text))) => {
                    let said: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    if said["type"] == "ended" {
                        let reason = said["reason"].as_str().unwrap_or("the session ended").to_string();
                        return Ok(JoinEnd::SessionEnded(reason));
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(JoinEnd::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(TunnelError::WebSocket(e.to_string())),
            },
            read = input.read(&mut buf), if input_open => {
                let n = read.map_err(broken)?;
                let typed = &buf[..n];
                let escape = typed.iter().position(|b| *b == ESCAPE);
                let sent = &typed[..escape.unwrap_or(n)];
                if interact && !sent.is_empty() {
                    let _ = to_gateway.send(Message::Binary(Bytes::copy_from_slice(sent))).await;
                }
                if escape.is_some() || (n == 0 && interact) {
                    let _ = to_gateway.send(Message::Close(None)).await;
                    return Ok(JoinEnd::Left);
                }
                // A watcher's input ending (`< /dev/null`) does not end the watch.
                input_open = n > 0;
            }
        }
    }
}
