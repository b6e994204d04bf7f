//! A browser terminal's session, once signed in: the page's WebSocket relayed to a shell on a
//! PTY, through the one session lifecycle (open and close records, observers such as the
//! recorder), with its join point for operators (`portal::join`) and the bastion's copy and
//! paste setting followed while it runs (`portal::paste`).

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use rampart_core::{AuditEntry, AuditResult, EndReason};
use rampart_ssh::terminal::{ShellEvent, SshTerminal};
use serde::Deserialize;

use super::bridge::{self, Keepalive};
use crate::admission::Request;
use crate::api::AppState;
use crate::lifecycle::Direction;

/// A control message from the browser.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Resize { cols: u16, rows: u16 },
}

pub(crate) fn ended(reason: &str) -> Message {
    Message::Text(serde_json::json!({ "type": "ended", "reason": reason }).to_string().into())
}

pub(crate) async fn run_terminal(
    gw: AppState,
    terminal: SshTerminal,
    mut entry: AuditEntry,
    request: (Request, u64),
    socket: WebSocket,
    cols: u16,
    rows: u16,
) {
    let (mut to_browser, mut from_browser) = socket.split();
    let (mut output, input) = match terminal.open_shell(cols, rows).await {
        Ok(shell) => shell,
        Err(e) => {
            let _ = to_browser.send(ended(&e.to_string())).await;
            entry.result = AuditResult::Failed;
            entry.reason_code = Some("SshFailed".into());
            entry.reason = Some(e.to_string());
            if let Err(e) = gw.store.append_audit(&entry).await {
                tracing::error!(error = %e, "cannot record a failed browser SSH session");
            }
            return;
        }
    };
    let input = std::sync::Arc::new(input);
    let opened = entry.clone();
    let mut live = match bridge::start(&gw, entry, request).await {
        Ok(live) => live,
        Err(reason) => {
            let _ = to_browser.send(ended(&reason)).await;
            input.close().await;
            return;
        }
    };
    // Copy and paste as the bastion says, followed while the session runs.
    if let Ok(id) = live.session.bastion_id.parse::<rampart_core::ResourceId>()
        && let Ok(Some(bastion)) = gw.store.bastion(&id).await
    {
        live.session.copy_paste.send_replace(!bastion.settings.disable_copy_paste);
    }
    let mut copy_paste = live.session.copy_paste.subscribe();
    let mut pastes = super::paste::PasteFilter::default();
    // The file panel of the user's own portal terminal (never a link's: no portal user).
    let session_id = live.session.id.clone();
    let (terminal_ended, ended_rx) = tokio::sync::watch::channel(false);
    let identity = &live.session.request.identity;
    if identity.kind == rampart_core::IdentityKind::User {
        let point = crate::portal::FilePoint::new(
            identity.id.clone(),
            live.session.bastion_id.clone(),
            opened,
            input.clone(),
            ended_rx,
        );
        gw.files.offer(&session_id, point);
    }
    let ready = serde_json::json!({
        "type": "ready",
        "clipboard": *copy_paste.borrow_and_update(),
        "session": session_id,
    });
    let _ = to_browser.send(Message::Text(ready.to_string().into())).await;
    // What operators who join see and type (portal::join).
    let (joined_output, _) = tokio::sync::broadcast::channel::<bytes::Bytes>(256);
    let (joined_input, mut joiners_typing) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    let (notices, mut notices_for_user) = tokio::sync::mpsc::unbounded_channel::<String>();
    gw.joins.offer(
        &session_id,
        crate::portal::JoinPoint {
            bastion_id: live.session.bastion_id.clone(),
            user: live.session.user.clone(),
            output: joined_output.clone(),
            input: joined_input,
            notices,
            desktop: None,
        },
    );
    let mut keepalive = Keepalive::new(gw.config.keepalive);
    let gone = |detail: &str| EndReason::ClientClosed { detail: detail.to_string() };
    let failed = |detail: String| EndReason::Failed { detail };
    let end = loop {
        tokio::select! {
            event = output.next() => match event {
                ShellEvent::Output(data) => {
                    live.data(Direction::FromTarget, &data);
                    let _ = joined_output.send(data.clone());
                    if to_browser.send(Message::Binary(data)).await.is_err() {
                        break gone("the browser went away");
                    }
                }
                ShellEvent::Ended { exit_status } => {
                    let status = exit_status.map(|s| format!(" with status {s}")).unwrap_or_default();
                    break EndReason::TargetClosed { detail: format!("the shell on the target exited{status}") };
                }
            },
            message = from_browser.next() => {
                keepalive.heard();
                match message {
                    Some(Ok(Message::Binary(data))) => {
                        let data = if *copy_paste.borrow() { data } else { pastes.filter(&data).0.into() };
                        live.data(Direction::ToTarget, &data);
                        if let Err(e) = input.send(data).await {
                            break failed(e.to_string());
                        }
                    }
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<Control>(&text) {
                        Ok(Control::Resize { cols, rows }) => {
                            let _ = input.resize(cols.clamp(10, 1000), rows.clamp(2, 500)).await;
                        }
                        Err(_) => tracing::debug!("ignoring an unknown control message from the browser"),
                    },
                    Some(Ok(Message::Close(_))) | None => break gone("the browser closed the terminal"),
                    Some(Err(e)) => break failed(format!("the browser connection failed: {e}")),
                    Some(Ok(_)) => {}
                }
            }
            Some(data) = joiners_typing.recv() => {
                live.data(Direction::ToTarget, &data);
                if let Err(e) = input.send(data).await {
                    break failed(e.to_string());
                }
            }
            Some(notice) = notices_for_user.recv() => {
                let text = serde_json::json!({ "type": "notice", "text": notice }).to_string();
                if to_browser.send(Message::Text(text.into())).await.is_err() {
                    break gone("the browser went away");
                }
            }
            Ok(()) = copy_paste.changed() => {
                let on = *copy_paste.borrow_and_update();
                let text = serde_json::json!({ "type": "clipboard-state", "on": on }).to_string();
                if to_browser.send(Message::Text(text.into())).await.is_err() {
                    break gone("the browser went away");
                }
            }
            _ = live.stop.changed() => break live.stop_reason(),
            _ = keepalive.ping.tick() => {
                if let Err(reason) = keepalive.check() {
                    break failed(reason);
                }
                if to_browser.send(Message::Ping(Default::default())).await.is_err() {
                    break failed("the browser went away".to_string());
                }
            }
        }
    };
    gw.joins.withdraw(&session_id);
    gw.files.withdraw(&session_id);
    terminal_ended.send_replace(true);
    drop(joined_output);
    let _ = to_browser.send(ended(&end.to_string())).await;
    let _ = to_browser.send(Message::Close(None)).await;
    input.close().await;
    live.finish(end).await;
}
