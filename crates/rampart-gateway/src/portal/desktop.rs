//! RDP in the browser: the desktop page's WebSocket bridged to an RDP session the gateway
//! signed in to (crate rampart-rdp). Changed parts of the desktop go to the browser as image
//! rectangles (8-byte header: x, y, width, height as little-endian u16, then a PNG, or a JPEG
//! for large photo-like parts; the browser tells them apart by their first bytes);
//! changes are merged and sent at most every [`FRAME_INTERVAL`], so a slow browser gets
//! coalesced frames, never a queue. When the browser decodes H.264 and the server speaks the
//! graphics pipeline, its updates are passed through in order instead (video.rs), a slow
//! browser slowing the server. Input comes back as JSON messages.

use std::time::Duration;

use askama::Template;
use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use rampart_core::{AuditEntry, EndReason};
use rampart_rdp::{Changes, InputEvent, RdpSession, Rect, scancode_for_code};
use serde::Deserialize;

use super::bridge::{self, Keepalive};
use super::shell::ended;
use super::video::{self, SharedSinceKey};
use crate::api::AppState;
use crate::lifecycle::Direction;

/// At most this often a frame goes to the browser (about 30 per second).
const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// A recorded desktop gets a picture of its whole screen this often (where seeking starts).
const KEYFRAME_EVERY: Duration = Duration::from_secs(10);

/// Signs in to the RDP server on `stream` (the connection the admission service dialled):
/// the certificate checked against the one pinned for the target (`named`) or pinned now,
/// copy and paste as the bastion's setting is now (turning it off also reaches live
/// sessions: see below), the graphics pipeline offered when the browser decodes `video`;
/// returns once the server has drawn, so a wrong password is reported on the form.
pub(crate) async fn sign_in(
    gw: &crate::server::Gateway,
    stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    (named, bastion): (&str, &rampart_core::ResourceId),
    creds: rampart_rdp::RdpCredentials,
    (size, video): ((u16, u16), bool),
) -> Result<RdpSession, crate::api::ApiError> {
    let pin_key = format!("rdp:{named}");
    let pinned = gw.store.pinned_host_key(&pin_key).await?;
    let clipboard = gw.store.bastion(bastion).await?.is_some_and(|b| !b.settings.disable_copy_paste);
    let connect = RdpSession::connect(stream, addr, pinned.clone(), creds, size, (clipboard, video));
    let timeout = || {
        let message = format!("RDP sign-in to {addr} did not finish within {} s", SIGN_IN_TIMEOUT.as_secs());
        crate::api::ApiError::new(axum::http::StatusCode::GATEWAY_TIMEOUT, "RdpTimeout", message)
    };
    let mut session = tokio::time::timeout(SIGN_IN_TIMEOUT, connect)
        .await
        .map_err(|_| timeout())?
        .map_err(|e| rdp_error(&e, addr))?;
    session.wait_for_desktop(FIRST_DRAWING).await.map_err(|e| rdp_error(&e, addr))?;
    if pinned.is_none() {
        let kept = gw.store.pin_host_key(&pin_key, session.certificate()).await?;
        if kept != session.certificate() {
            let offered = session.certificate().to_string();
            return Err(rdp_error(
                &rampart_rdp::RdpError::CertificateChanged { pinned: kept, offered },
                addr,
            ));
        }
    }
    Ok(session)
}

/// How long the RDP connection sequence (TLS, NLA, capabilities) may take.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to draw for the first time after the sign-in.
const FIRST_DRAWING: Duration = Duration::from_secs(8);

fn rdp_error(e: &rampart_rdp::RdpError, addr: std::net::SocketAddr) -> crate::api::ApiError {
    use rampart_rdp::RdpError;
    let (status, code) = match e {
        RdpError::CertificateChanged { .. } => (axum::http::StatusCode::BAD_GATEWAY, "HostKeyChanged"),
        RdpError::AuthenticationFailed(_) => {
            (axum::http::StatusCode::UNAUTHORIZED, "TargetAuthenticationFailed")
        }
        RdpError::Security(_) => (axum::http::StatusCode::BAD_GATEWAY, "RdpSecurityNotSupported"),
        _ => (axum::http::StatusCode::BAD_GATEWAY, "RdpFailed"),
    };
    crate::api::ApiError::new(status, code, format!("{addr}: {e}"))
}

#[derive(Template)]
#[template(path = "desktop.html")]
pub(crate) struct DesktopPage {
    pub title: String,
    /// The WebSocket the page opens.
    pub ws: String,
    /// An operator watching someone's desktop: nothing is sent, no input tools.
    pub watching: bool,
}

impl DesktopPage {
    /// The user's own desktop, whose WebSocket is `ws`.
    pub(crate) fn own(title: String, ws: &str) -> DesktopPage {
        DesktopPage { title, ws: ws.to_string(), watching: false }
    }
}

/// Input from the desktop page.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum BrowserInput {
    Mouse {
        x: u16,
        y: u16,
    },
    Button {
        button: u8,
        down: bool,
    },
    Wheel {
        delta: i16,
    },
    Key {
        code: String,
        down: bool,
    },
    /// The Ctrl+Alt+Del button.
    Cad,
    /// The page lost focus: let go of every key.
    Release,
    /// The browser's clipboard text, to offer to the remote machine.
    Clipboard {
        text: String,
    },
}

fn to_events(input: BrowserInput) -> Vec<InputEvent> {
    match input {
        BrowserInput::Mouse { x, y } => vec![InputEvent::MouseMove { x, y }],
        BrowserInput::Button { button, down } => vec![InputEvent::MouseButton { button, down }],
        // Browsers give about 100 per notch downward; RDP counts 120 per notch upward.
        BrowserInput::Wheel { delta } => {
            vec![InputEvent::Wheel { vertical: true, units: delta.saturating_neg().clamp(-255, 255) }]
        }
        BrowserInput::Key { code, down } => match scancode_for_code(&code) {
            Some(scancode) => vec![InputEvent::Key { scancode, down }],
            None => vec![],
        },
        BrowserInput::Cad => {
            let keys = [0x1D, 0x38, 0xE053];
            let press = keys.iter().map(|&scancode| InputEvent::Key { scancode, down: true });
            let release = keys.iter().rev().map(|&scancode| InputEvent::Key { scancode, down: false });
            press.chain(release).collect()
        }
        BrowserInput::Release | BrowserInput::Clipboard { .. } => vec![],
    }
}

/// The replay, even if a thread panicked while holding it (it holds only byte buffers).
fn lock(since_key: &SharedSinceKey) -> std::sync::MutexGuard<'_, video::SinceKey> {
    since_key.lock().unwrap_or_else(|p| p.into_inner())
}

/// A part of the desktop as the browser (and a recording) takes it: its rectangle, then the image.
fn frame_bytes(session: &RdpSession, rect: Rect) -> Option<bytes::Bytes> {
    let (_, image) = session.image(rect).ok()?;
    let mut bytes = Vec::with_capacity(8 + image.len());
    for v in [rect.x, rect.y, rect.width, rect.height] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&image);
    Some(bytes.into())
}

/// Brings the session in line with the bastion's copy-and-paste setting as it is now, and
/// tells the browser when that changed (its clipboard panel goes away or comes back).
async fn follow_copy_paste(
    session: &mut RdpSession,
    allowed: bool,
    to_browser: &mut SplitSink<WebSocket, Message>,
) -> Result<(), String> {
    // A session opened with copy and paste off has no clipboard channel to turn on.
    if !session.clipboard() || session.clipboard_allowed() == allowed {
        return Ok(());
    }
    session.allow_clipboard(allowed).await.map_err(|e| e.to_string())?;
    let message =
        serde_json::json!({ "type": "clipboard-state", "on": session.clipboard_allowed() }).to_string();
    to_browser.send(Message::Text(message.into())).await.map_err(|_| "the browser went away".to_string())
}

pub(crate) async fn run_desktop(
    gw: AppState,
    mut session: RdpSession,
    entry: AuditEntry,
    request: (crate::admission::Request, u64),
    socket: WebSocket,
) {
    let (mut to_browser, mut from_browser) = socket.split();
    let mut live = match bridge::start(&gw, entry, request).await {
        Ok(live) => live,
        Err(reason) => {
            let _ = to_browser.send(ended(&reason)).await;
            return;
        }
    };
    live.session.copy_paste.send_replace(session.clipboard());
    let mut copy_paste = live.session.copy_paste.subscribe();
    // A change made between the sign-in and the registration above reached no live session:
    // read the setting once more, now that later changes are seen.
    let mut recorded = false;
    if let Ok(id) = live.session.bastion_id.parse::<rampart_core::ResourceId>()
        && let Ok(Some(bastion)) = gw.store.bastion(&id).await
    {
        if bastion.settings.disable_copy_paste {
            live.session.copy_paste.send_replace(false);
        }
        recorded = bastion.settings.session_recording;
    }
    // The first frame is the whole screen: the recording's first keyframe.
    let mut keyframe_at = tokio::time::Instant::now();
    let mut first = true;
    let (width, height) = session.size();
    // The server's video passed through: no pictures made from the image here, which the
    // pipeline does not draw into. (A server may draw bitmaps before it confirms the
    // pipeline: looked at again after each frame.)
    let mut video = session.video();
    let since_key = SharedSinceKey::default();
    lock(&since_key).video = video;
    let first_gfx = session.take_first_gfx();
    let ready =
        serde_json::json!({ "type": "ready", "width": width, "height": height, "clipboard": session.clipboard() })
            .to_string();
    let _ = to_browser.send(Message::Text(ready.into())).await;
    let mut dirty = (!video).then_some(Rect { x: 0, y: 0, width, height });
    // What operators who watch see (portal::join): the pictures, from a whole one made for
    // them, or the video since its last key picture (`since_key`).
    let (watched, _) = tokio::sync::broadcast::channel::<bytes::Bytes>(64);
    let (unused_input, _) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    let (notices, mut notices_for_user) = tokio::sync::mpsc::unbounded_channel::<String>();
    let whole = std::sync::Arc::new(tokio::sync::Notify::new());
    let session_id = live.session.id.clone();
    gw.joins.offer(
        &session_id,
        crate::portal::JoinPoint {
            bastion_id: live.session.bastion_id.clone(),
            user: live.session.user.clone(),
            output: watched.clone(),
            input: unused_input,
            notices,
            desktop: Some(crate::portal::DesktopView {
                width,
                height,
                whole: whole.clone(),
                since_key: since_key.clone(),
            }),
        },
    );
    let mut frames = tokio::time::interval(FRAME_INTERVAL);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut keepalive = Keepalive::new(gw.config.keepalive);
    let gone = |detail: &str| EndReason::ClientClosed { detail: detail.to_string() };
    let failed = |detail: String| EndReason::Failed { detail };
    // Sends the pipeline's updates in order: to the browser, the watchers, the recording.
    macro_rules! pass_through {
        ($updates:expr) => {{
            let mut result = Ok(());
            for update in $updates {
                let reset = matches!(update, rampart_rdp::GfxUpdate::Reset { .. });
                let (bytes, key) = video::message(&update);
                if recorded {
                    live.frame(&bytes, key);
                }
                {
                    let mut since = lock(&since_key);
                    since.push(&bytes, key, reset);
                    let _ = watched.send(bytes.clone());
                }
                if to_browser.send(Message::Binary(bytes)).await.is_err() {
                    result = Err(gone("the browser went away"));
                    break;
                }
            }
            result
        }};
    }
    if let Err(end) = pass_through!(first_gfx) {
        gw.joins.withdraw(&session_id);
        live.finish(end).await;
        return;
    }
    let end = loop {
        tokio::select! {
            frame = session.read_frame() => match frame {
                Ok(frame) => {
                    live.data(Direction::FromTarget, frame.as_bytes());
                    match session.process(frame).await {
                        Ok(changes) => {
                            for r in changes.rects {
                                dirty = Some(dirty.map_or(r, |d| d.union(r)));
                            }
                            if !video && session.video() {
                                // From now on the pipeline draws; the image is no longer the screen.
                                video = true;
                                dirty = None;
                                lock(&since_key).video = true;
                            }
                            if let Err(end) = pass_through!(changes.gfx) {
                                break end;
                            }
                            if let Some(text) = changes.clipboard {
                                let message = serde_json::json!({ "type": "clipboard", "text": text }).to_string();
                                if to_browser.send(Message::Text(message.into())).await.is_err() {
                                    break gone("the browser went away");
                                }
                            }
                        }
                        Err(e @ rampart_rdp::RdpError::Ended(_)) => {
                            break EndReason::TargetClosed { detail: e.to_string() };
                        }
                        Err(e) => break failed(e.to_string()),
                    }
                }
                Err(e) => break EndReason::TargetClosed { detail: e.to_string() },
            },
            _ = frames.tick(), if dirty.is_some() => {
                if let Some(bytes) = dirty.take().and_then(|r| frame_bytes(&session, r)) {
                    if recorded {
                        live.frame(&bytes, first);
                        first = false;
                        // A whole screen for seeking, made for the recording alone.
                        if !video && keyframe_at.elapsed() >= KEYFRAME_EVERY {
                            keyframe_at = tokio::time::Instant::now();
                            if let Some(whole) = frame_bytes(&session, Rect { x: 0, y: 0, width, height }) {
                                live.frame(&whole, true);
                            }
                        }
                    }
                    {
                        // Bitmaps drawn besides the video belong to its replay too.
                        let mut since = lock(&since_key);
                        if video {
                            since.push(&bytes, false, false);
                        }
                        let _ = watched.send(bytes.clone());
                    }
                    if to_browser.send(Message::Binary(bytes)).await.is_err() {
                        break gone("the browser went away");
                    }
                }
            }
            // A watcher of pictures joined or fell behind (one of video replays by itself).
            () = whole.notified(), if !video => dirty = Some(Rect { x: 0, y: 0, width, height }),
            Some(notice) = notices_for_user.recv() => {
                let text = serde_json::json!({ "type": "notice", "text": notice }).to_string();
                if to_browser.send(Message::Text(text.into())).await.is_err() {
                    break gone("the browser went away");
                }
            }
            message = from_browser.next() => {
                keepalive.heard();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        live.data(Direction::ToTarget, text.as_bytes());
                        let result = match serde_json::from_str::<BrowserInput>(&text) {
                            Ok(BrowserInput::Release) => session.release_all().await.map(|()| Changes::default()),
                            Ok(BrowserInput::Clipboard { text }) => {
                                session.set_clipboard(&text).await.map(|()| Changes::default())
                            }
                            Ok(input) => session.input(&to_events(input)).await,
                            Err(_) => Ok(Changes::default()),
                        };
                        match result {
                            Ok(changes) => {
                                for r in changes.rects {
                                    dirty = Some(dirty.map_or(r, |d| d.union(r)));
                                }
                            }
                            Err(e) => break failed(e.to_string()),
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break gone("the browser closed the desktop"),
                    Some(Err(e)) => break failed(format!("the browser connection failed: {e}")),
                    Some(Ok(_)) => {}
                }
            }
            Ok(()) = copy_paste.changed() => {
                let allowed = *copy_paste.borrow_and_update();
                if let Err(e) = follow_copy_paste(&mut session, allowed, &mut to_browser).await {
                    break failed(e);
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
    drop(watched);
    let _ = to_browser.send(ended(&end.to_string())).await;
    let _ = to_browser.send(Message::Close(None)).await;
    // Dropping the session closes the RDP connection.
    drop(session);
    live.finish(end).await;
}
