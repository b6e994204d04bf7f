//! Live join: an operator watches a running browser terminal (view) or types into it
//! (interact), or watches a running browser desktop. Each puts a join point here while it
//! runs: its output (terminal bytes, or the desktop's pictures) fanned out to joiners, a queue
//! for a joiner's typing, and notices for the user, who is told who joined and how. Joins are
//! audited and marked in the recording. A terminal is seen from the moment of the join; a
//! desktop from a whole picture of its screen, made for the joiner.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rampart_core::{AuditEvent, AuditResult, Scope};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::{PortalUser, error_page, render};
use crate::api::caller::Caller;
use crate::api::{ApiError, AppState};

/// Watching and typing into others' sessions.
pub(crate) const JOIN: &str = "Microsoft.Network/bastionHosts/joinSessions/action";

/// What a running terminal offers joiners.
#[derive(Clone)]
pub struct JoinPoint {
    pub bastion_id: String,
    pub user: String,
    pub output: broadcast::Sender<Bytes>,
    pub input: mpsc::Sender<Bytes>,
    pub notices: mpsc::UnboundedSender<String>,
    /// Set for a desktop: its size, and how to ask it for a whole picture of its screen.
    pub desktop: Option<DesktopView>,
}

#[derive(Clone)]
pub struct DesktopView {
    pub width: u16,
    pub height: u16,
    pub whole: std::sync::Arc<tokio::sync::Notify>,
    /// When the server's video is passed through: everything since its last key picture.
    pub(crate) since_key: super::video::SharedSinceKey,
}

impl DesktopView {
    /// A receiver of what the desktop sends from now on, and what brings a video watcher to
    /// now (taken together, so nothing is missed or seen twice); `None` for pictures, where
    /// the desktop is asked for a whole one instead.
    fn start_watching(
        &self,
        subscribe: impl FnOnce() -> broadcast::Receiver<Bytes>,
    ) -> (broadcast::Receiver<Bytes>, Option<Vec<Bytes>>) {
        let since = self.since_key.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = subscribe();
        (receiver, since.video.then(|| since.replay()))
    }
}

#[derive(Default)]
pub struct Joins {
    points: Mutex<HashMap<String, JoinPoint>>,
}

impl Joins {
    pub fn offer(&self, session: &str, point: JoinPoint) {
        if let Ok(mut p) = self.points.lock() {
            p.insert(session.to_string(), point);
        }
    }

    pub fn withdraw(&self, session: &str) {
        if let Ok(mut p) = self.points.lock() {
            p.remove(session);
        }
    }

    fn get(&self, session: &str) -> Option<JoinPoint> {
        self.points.lock().ok().and_then(|p| p.get(session).cloned())
    }
}

#[derive(Deserialize, Default)]
pub struct JoinQuery {
    mode: Option<String>,
}

fn interact(q: &JoinQuery) -> bool {
    q.mode.as_deref() == Some("interact")
}

/// The session's join point, if the operator may join it.
async fn allowed(gw: &AppState, caller: &Caller, session: &str) -> Result<JoinPoint, ApiError> {
    let point = gw.joins.get(session).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "SessionNotFound",
            "no browser terminal with this ID runs on this node (only browser terminals can be joined)",
        )
    })?;
    let bastion = point.bastion_id.parse().map_err(ApiError::internal)?;
    caller.require(gw, AuditEvent::SessionJoin, JOIN, &Scope::Resource(bastion)).await?;
    Ok(point)
}

pub async fn page(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(id): Path<String>,
    Query(q): Query<JoinQuery>,
) -> Response {
    match allowed(&gw, &user.caller, &id).await {
        Ok(point) if point.desktop.is_some() => render(&super::desktop::DesktopPage {
            title: format!("{}'s desktop (watching)", point.user),
            ws: format!("/portal/sessions/{id}/join/ws?mode=view"),
            watching: true,
        }),
        Ok(point) => {
            let mode = if interact(&q) { "interact" } else { "view" };
            let ws = format!("/portal/sessions/{id}/join/ws?mode={mode}");
            render(&super::terminal::TerminalPage {
                title: format!("{}'s session ({mode})", point.user),
                ws,
                files: false,
            })
        }
        Err(e) => error_page(&e, super::HOME),
    }
}

pub async fn websocket(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(id): Path<String>,
    Query(q): Query<JoinQuery>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    // As the terminal's own WebSocket: only pages of this gateway may open it.
    if let Err(refused) = super::same_origin(&headers, &uri) {
        return refused.into_response();
    }
    join(&gw, &user.caller, &id, interact(&q), upgrade).await
}

/// `rampart network bastion session join`: the same join over the API, for a signed-in
/// client. Only a session running on the node that answers can be joined.
pub async fn api_websocket(
    State(gw): State<AppState>,
    caller: Caller,
    Path((_sub, _group, _name, id)): Path<(String, String, String, String)>,
    Query(q): Query<JoinQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    join(&gw, &caller, &id, interact(&q), upgrade).await
}

/// Checks the join action, audits the join, tells the user and marks the recording, then
/// relays the terminal to the operator.
async fn join(
    gw: &AppState,
    caller: &Caller,
    id: &str,
    interact: bool,
    upgrade: WebSocketUpgrade,
) -> Response {
    let point = match allowed(gw, caller, id).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Desktops are watched, not controlled: one mouse and keyboard, the user's.
    let interact = interact && point.desktop.is_none();
    let operator = caller.name().to_string();
    let mode = if interact { "interact" } else { "view" };
    let mut e = caller.entry(AuditEvent::SessionJoin, AuditResult::Allowed);
    e.bastion_id = Some(point.bastion_id.clone());
    e.target_resource_id = Some(format!("sessions/{id}"));
    e.reason = Some(format!("{operator} joined {}'s session ({mode})", point.user));
    if let Err(err) = gw.store.append_audit(&e).await {
        return ApiError::from(err).into_response();
    }
    let how = if interact { "is watching and may type" } else { "is watching (view only)" };
    let _ = point.notices.send(format!("{operator} {how}"));
    gw.recorder.mark(id, format!("{operator} joined ({mode})"));
    let gw = gw.clone();
    let id = id.to_string();
    upgrade.on_upgrade(move |socket| async move {
        relay(socket, point, interact, &operator).await;
        gw.recorder.mark(&id, format!("{operator} left"));
    })
}

async fn relay(socket: WebSocket, point: JoinPoint, interact: bool, operator: &str) {
    let (mut to_operator, mut from_operator) = socket.split();
    // Only the terminal holds the sender: when it ends, this receiver closes.
    let JoinPoint { output: sender, input, notices, desktop, .. } = point;
    let (mut output, mut replay) = match &desktop {
        Some(d) => d.start_watching(|| sender.subscribe()),
        None => (sender.subscribe(), None),
    };
    drop(sender);
    let ready = match &desktop {
        Some(d) => {
            serde_json::json!({ "type": "ready", "width": d.width, "height": d.height, "clipboard": false })
        }
        None => serde_json::json!({ "type": "ready" }),
    };
    let _ = to_operator.send(Message::Text(ready.to_string().into())).await;
    // A desktop starts its watcher with a whole picture or the video since its last key
    // picture (again should the watcher fall behind).
    let whole = desktop.as_ref().map(|d| d.whole.clone());
    loop {
        match replay.take() {
            Some(messages) => {
                for bytes in messages {
                    if to_operator.send(Message::Binary(bytes)).await.is_err() {
                        break;
                    }
                }
            }
            None => {
                if let Some(whole) = &whole {
                    whole.notify_one();
                }
            }
        }
        if relay_until_behind(&mut output, &mut to_operator, &mut from_operator, (interact, &input)).await {
            break;
        }
        // Behind: start again from now.
        match &desktop {
            Some(d) => (output, replay) = d.start_watching(|| output.resubscribe()),
            None => replay = None,
        }
    }
    let _ = notices.send(format!("{operator} left"));
}

/// Forwards until the session or the operator ends (`true`) or the operator falls behind.
async fn relay_until_behind(
    output: &mut broadcast::Receiver<Bytes>,
    to_operator: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    from_operator: &mut futures_util::stream::SplitStream<WebSocket>,
    (interact, input): (bool, &mpsc::Sender<Bytes>),
) -> bool {
    loop {
        tokio::select! {
            out = output.recv() => match out {
                Ok(bytes) => {
                    if to_operator.send(Message::Binary(bytes)).await.is_err() {
                        return true;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return false,
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = to_operator.send(Message::Text(serde_json::json!({"type": "ended", "reason": "the session ended"}).to_string().into())).await;
                    return true;
                }
            },
            message = from_operator.next() => match message {
                Some(Ok(Message::Binary(data))) if interact => {
                    if input.send(data).await.is_err() {
                        return true;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            },
        }
    }
}
