//! The session lifecycle through the in-process harness: every way a session ends, with its
//! reason and close record, observers, and limits applied with a moved clock.

mod harness;

use std::time::{Duration, Instant};

use harness::{Scene, Seen, echo_target};
use rampart_core::{AuditEntry, AuditEvent, AuditResult, EndReason};
use rampart_gateway::lifecycle::{Direction, LiveSession};

async fn admitted(scene: &Scene, n: u32) -> LiveSession {
    let mut entry = AuditEntry::new(chrono::Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Refused);
    entry.connection_id = Some(format!("session-{n}"));
    let target = echo_target().await;
    let admission = scene.admission.admit(scene.request(&scene.alice, target), entry, Instant::now()).await;
    admission.expect("admitted").session
}

/// The close record of a session.
async fn close_record(scene: &Scene, id: &str) -> AuditEntry {
    scene
        .audit()
        .await
        .into_iter()
        .find(|e| e.event == AuditEvent::ConnectionClose && e.connection_id.as_deref() == Some(id))
        .expect("a close record")
}

#[tokio::test]
async fn a_session_ends_with_its_reason_bytes_and_close_record_and_leaves_the_list() {
    let scene = Scene::new().await;
    let live = admitted(&scene, 1).await;
    let id = live.session.id.clone();
    live.data(Direction::ToTarget, b"ls\n");
    live.data(Direction::FromTarget, b"file-a file-b\n");
    live.finish(EndReason::ClientClosed { detail: "the browser closed the terminal".into() }).await;
    assert!(scene.sessions.get(&id).is_none(), "still listed");
    let close = close_record(&scene, &id).await;
    assert_eq!(close.result, AuditResult::Closed);
    assert_eq!(close.reason_code.as_deref(), Some("ClientClosed"));
    assert_eq!(close.reason.as_deref(), Some("the browser closed the terminal"));
    assert_eq!((close.bytes_to_target, close.bytes_from_target), (Some(3), Some(14)));
    assert!(close.duration_ms.is_some());
    // The observer saw the start, both directions' bytes, and the end, in order.
    let seen = scene.recorder.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        seen[1],
        Seen::Data { session: id.clone(), direction: Direction::ToTarget, bytes: b"ls\n".to_vec() }
    );
    assert!(matches!(&seen[3], Seen::Ended { reason: EndReason::ClientClosed { .. }, .. }));
}

#[tokio::test]
async fn a_disconnect_stops_the_session_with_who_did_it_once() {
    let scene = Scene::new().await;
    let mut live = admitted(&scene, 2).await;
    let session = scene.sessions.get(&live.session.id).expect("listed");
    assert!(session.stop(EndReason::DisconnectedBy { by: "admin".into() }));
    assert!(!session.stop(EndReason::Drained), "a second stop changes nothing");
    live.stop.changed().await.expect("told");
    assert_eq!(live.stop.borrow().as_deref(), Some("disconnected by admin"));
    let reason = live.stop_reason();
    let id = live.session.id.clone();
    live.finish(reason).await;
    let close = close_record(&scene, &id).await;
    assert_eq!(close.reason_code.as_deref(), Some("Disconnected"));
    assert_eq!(close.reason.as_deref(), Some("disconnected by admin"));
    assert_eq!(close.result, AuditResult::Closed);
}

#[tokio::test]
async fn idle_timeout_and_maximum_duration_apply_as_the_clock_moves() {
    let scene = Scene::new().await;
    scene.set(|s| s.idle_timeout_secs = Some(60)).await;
    let idle = admitted(&scene, 3).await;
    let now_ms = rampart_tunnel::now_ms();
    scene.sessions.sweep_at(now_ms + 59_000, Instant::now()).await;
    assert!(idle.session.end_reason().is_none(), "stopped before its idle timeout");
    scene.sessions.sweep_at(now_ms + 61_000, Instant::now()).await;
    assert_eq!(idle.session.end_reason(), Some(EndReason::IdleTimeout { limit_secs: 60 }));

    scene
        .set(|s| {
            s.idle_timeout_secs = None;
            s.max_session_secs = Some(3600);
        })
        .await;
    let long = admitted(&scene, 4).await;
    scene.sessions.sweep_at(now_ms, Instant::now() + Duration::from_secs(3599)).await;
    assert!(long.session.end_reason().is_none());
    scene.sessions.sweep_at(now_ms, Instant::now() + Duration::from_secs(3601)).await;
    assert_eq!(long.session.end_reason(), Some(EndReason::MaxDuration { limit_secs: 3600 }));
    let id = long.session.id.clone();
    let reason = long.stop_reason();
    long.finish(reason).await;
    let close = close_record(&scene, &id).await;
    assert_eq!(close.reason_code.as_deref(), Some("MaxSessionDuration"));
    assert!(close.reason.as_deref().is_some_and(|r| r.contains("maximum session duration of 3600 s")));
}

#[tokio::test]
async fn a_drain_ends_every_session_as_drained() {
    let scene = Scene::new().await;
    let a = admitted(&scene, 5).await;
    let b = admitted(&scene, 6).await;
    assert_eq!(scene.sessions.count(), 2);
    scene.sessions.stop_all(&EndReason::Drained);
    for live in [a, b] {
        assert_eq!(live.stop_reason(), EndReason::Drained);
        let id = live.session.id.clone();
        live.finish(EndReason::Drained).await;
        assert_eq!(close_record(&scene, &id).await.reason_code.as_deref(), Some("Drained"));
    }
    assert_eq!(scene.sessions.count(), 0);
}

#[tokio::test]
async fn a_relay_that_failed_is_recorded_as_failed() {
    let scene = Scene::new().await;
    let live = admitted(&scene, 7).await;
    let id = live.session.id.clone();
    live.finish_relay(Err("WebSocket upgrade failed: gone".into())).await;
    let close = close_record(&scene, &id).await;
    assert_eq!((close.result, close.reason_code.as_deref()), (AuditResult::Failed, Some("Failed")));
    assert_eq!(close.reason.as_deref(), Some("WebSocket upgrade failed: gone"));
}
