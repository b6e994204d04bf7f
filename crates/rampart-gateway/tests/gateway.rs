//! A whole gateway in this process (the harness): every tunnel protocol version admitted
//! through the admission service and ended by the lifecycle with the right reason and close
//! record; refusals over HTTP; a drain.

mod harness;

use std::time::Duration;

use harness::echo_target;
use harness::gateway::{TestGateway, closed, connect_through, echo};
use rampart_client::tunnel::TunnelProtocol;
use rampart_proto::tunnel::TunnelRequest;

/// The one live session's id, once it is listed.
async fn only_session(gw: &TestGateway) -> rampart_proto::api::Session {
    for _ in 0..100 {
        if let [one] = gw.sessions().await.as_slice() {
            return one.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not exactly one live session: {:?}", gw.sessions().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tunnel_version_ends_with_the_right_reason_and_close_record() {
    let gw = TestGateway::start(|_| {}).await;
    let target = echo_target().await;
    for protocol in [TunnelProtocol::WebSocket, TunnelProtocol::Streams, TunnelProtocol::Mux] {
        // The client closes: a clean end.
        let tunnel = gw.tunnel(target, protocol).await;
        let (mut user, relay) = connect_through(&tunnel).await;
        echo(&mut user, b"hello through the gateway").await;
        let live = only_session(&gw).await;
        assert_eq!(live.protocol, "tcptunnel", "{protocol:?}");
        drop(user);
        let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
        let close = gw.close_record(&live.session_id).await;
        assert_eq!(close.result, "closed", "{protocol:?}: {close:?}");
        assert_eq!(close.reason_code.as_deref(), Some("ClientClosed"), "{protocol:?}: {close:?}");
        assert_eq!(close.bytes_to_target, Some(25), "{protocol:?}");

        // An operator disconnects: the reason names who.
        let (mut user, _relay) = connect_through(&tunnel).await;
        echo(&mut user, b"x").await;
        let live = only_session(&gw).await;
        gw.disconnect(&live.session_id).await;
        closed(&mut user).await;
        let close = gw.close_record(&live.session_id).await;
        assert_eq!(close.reason_code.as_deref(), Some("Disconnected"), "{protocol:?}: {close:?}");
        assert_eq!(close.reason.as_deref(), Some("disconnected by admin"), "{protocol:?}");
        for _ in 0..100 {
            if gw.sessions().await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gw.sessions().await.is_empty(), "{protocol:?}: still listed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_http_name_their_reason_and_are_audited() {
    let gw = TestGateway::start(|_| {}).await;
    let target = echo_target().await;
    // No access token: 401 before any policy is read.
    let anonymous = gw.anonymous();
    let request = TunnelRequest {
        bastion_id: gw.bastion_id(),
        target_ip_address: Some(target.ip().to_string()),
        target_resource_id: None,
        resource_port: target.port(),
    };
    let err = anonymous.grant_tunnel_with_token(&request, None).await.expect_err("refused without a token");
    assert_eq!(err.code(), Some("Unauthenticated"), "{err}");
    assert!(err.to_string().contains("access token"), "{err}");
    // A port the bastion does not reach: a grant naming the network.
    let outside = TunnelRequest { target_ip_address: Some("10.1.2.3".into()), ..request.clone() };
    let err = gw.admin.grant_tunnel(&outside).await.expect_err("refused outside the networks");
    assert_eq!(err.code(), Some("OutsideReachableNetworks"), "{err}");
    let audit = gw.audit().await;
    assert!(audit.iter().any(|r| r.event == "tunnel-request"
        && r.result == "refused"
        && r.reason_code.as_deref() == Some("OutsideReachableNetworks")));
    assert!(
        audit
            .iter()
            .any(|r| r.event == "tunnel-request" && r.reason_code.as_deref() == Some("Unauthenticated"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refuses_new_connections_and_ends_live_ones_as_drained() {
    let mut gw = TestGateway::start(|c| c.drain_timeout = Duration::from_secs(2)).await;
    let target = echo_target().await;
    let tunnel = gw.tunnel(target, TunnelProtocol::Mux).await;
    let (mut user, _relay) = connect_through(&tunnel).await;
    echo(&mut user, b"before the drain").await;
    let live = only_session(&gw).await;
    gw.begin_shutdown();
    // Draining: /readyz says so, and a new connection of the open tunnel is refused.
    let mut draining = false;
    for _ in 0..100 {
        if let Err(e) = gw.admin.request_text("/readyz").await {
            draining = e.to_string().contains("503") || e.code() == Some("Http503");
            if draining {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(draining, "/readyz never said 503");
    let (mut refused, _) = connect_through(&tunnel).await;
    closed(&mut refused).await;
    // The live session went on during the drain, then ended when its time was up.
    echo(&mut user, b"during the drain").await;
    closed(&mut user).await;
    gw.shut_down().await;
    let audit = gw.stored_audit().await;
    let close = audit
        .iter()
        .find(|e| {
            e.event == rampart_core::AuditEvent::ConnectionClose
                && e.connection_id.as_deref() == Some(&live.session_id)
        })
        .expect("a close record");
    assert_eq!(close.reason_code.as_deref(), Some("Drained"), "{close:?}");
    assert!(close.reason.as_deref().is_some_and(|r| r.contains("shutting down")));
    assert!(
        audit.iter().any(|e| e.event == rampart_core::AuditEvent::ConnectionOpen
            && e.reason_code.as_deref() == Some("ShuttingDown")),
        "no refusal recorded during the drain"
    );
}

/// A bastion setting changed through the API ends the live tunnel connection it no longer
/// allows, within a second, with `AccessRevoked` in its close record; the tunnel's next
/// connection is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_setting_ends_the_live_sessions_it_no_longer_allows() {
    let gw = TestGateway::start(|_| {}).await;
    let target = echo_target().await;
    let tunnel = gw.tunnel(target, TunnelProtocol::Mux).await;
    let (mut user, _relay) = connect_through(&tunnel).await;
    echo(&mut user, b"before").await;
    let live = only_session(&gw).await;
    let change = rampart_proto::api::BastionChange {
        reachable_networks: Some(vec!["10.0.0.0/8".into()]),
        ..Default::default()
    };
    let began = std::time::Instant::now();
    gw.admin.update_bastion(&gw.subscription, "default", "default", &change).await.expect("changed");
    closed(&mut user).await;
    let took = began.elapsed();
    assert!(took < Duration::from_secs(1), "ended {took:?} after the change");
    let close = gw.close_record(&live.session_id).await;
    assert_eq!(close.reason_code.as_deref(), Some("AccessRevoked"), "{close:?}");
    assert!(close.reason.as_deref().unwrap_or_default().contains("reachable networks"), "{close:?}");
}
