//! Several gateway nodes on one PostgreSQL (in this process, each with its own data directory
//! and certificate): a token from one works on another, every node's sessions are listed and
//! disconnected from any node, a setting changed through one applies on another within a
//! second, and a node gone silent has its sessions ended as "node lost".

mod harness;

#[path = "../../rampart-store/tests/support/postgres.rs"]
mod pg;

use std::time::{Duration, Instant};

use harness::echo_target;
use harness::gateway::{TestGateway, closed, connect_through, echo};
use rampart_client::api::ApiClient;
use rampart_client::trust::Trust;
use rampart_client::tunnel::TunnelProtocol;
use rampart_gateway::config::{Secret, StoreLocation};
use rampart_proto::api::{BastionChange, Node, Session};
use rampart_store::prelude::*;

async fn node(url: &str, name: &str) -> TestGateway {
    let (url, name) = (url.to_string(), name.to_string());
    TestGateway::start(move |c| {
        c.store = StoreLocation::Postgres(Secret(url));
        c.node_name = name;
    })
    .await
}

async fn sessions_seen_by(gw: &TestGateway) -> Vec<Session> {
    gw.sessions().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_tokens_sessions_settings_and_end_a_lost_nodes_sessions() {
    let cluster =
        tokio::task::spawn_blocking(pg::PgCluster::start).await.expect("ran").expect("postgres starts");
    let url = cluster.create_database("nodes").expect("database");
    let one = node(&url, "node-1").await;
    let two = node(&url, "node-2").await;

    // A token node 1 issued is valid on node 2 (the signing key is shared).
    let via_two = ApiClient::new(&two.server, Trust::Fingerprint(two.fingerprint.clone()))
        .expect("client")
        .with_session(one.admin.session());
    let nodes: Vec<Node> = via_two
        .request::<(), _>(http::Method::GET, "/api/nodes", None)
        .await
        .expect("node list")
        .unwrap_or_default();
    let names: Vec<(&str, &str)> = nodes.iter().map(|n| (n.name.as_str(), n.state.as_str())).collect();
    assert_eq!(names, [("node-1", "active"), ("node-2", "active")]);

    // A session held by node 1 is listed by node 2 (with its node) within a heartbeat.
    let target = echo_target().await;
    let tunnel = one.tunnel(target, TunnelProtocol::Mux).await;
    let (mut user, _relay) = connect_through(&tunnel).await;
    echo(&mut user, b"through node one").await;
    let t = Instant::now();
    let seen = loop {
        if let Some(s) =
            sessions_seen_by(&two).await.into_iter().find(|s| s.node_name.as_deref() == Some("node-1"))
        {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "node 2 does not list node 1's session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen.target_port, target.port());
    // Disconnected through node 2, it ends on node 1 within a second.
    let t = Instant::now();
    two.disconnect(&seen.session_id).await;
    closed(&mut user).await;
    assert!(t.elapsed() < Duration::from_secs(1), "ended after {:?}", t.elapsed());
    let close = one.close_record(&seen.session_id).await;
    assert_eq!(close.reason.as_deref(), Some("disconnected by admin"), "{close:?}");

    // A setting changed through node 1 refuses the next connection through node 2 at once.
    let through_two = two.tunnel(target, TunnelProtocol::Mux).await;
    let (mut ok, _r) = connect_through(&through_two).await;
    echo(&mut ok, b"allowed").await;
    let change = BastionChange { enable_ip_connect: Some(false), ..BastionChange::default() };
    one.admin
        .update_bastion(&one.subscription, "default", "default", &change)
        .await
        .expect("setting changed");
    let t = Instant::now();
    let (mut refused, _r) = connect_through(&through_two).await;
    closed(&mut refused).await;
    assert!(t.elapsed() < Duration::from_secs(1));
    let refusals = two.audit().await;
    assert!(
        refusals
            .iter()
            .any(|r| r.event == "connection-open" && r.reason_code.as_deref() == Some("IpConnectDisabled")),
        "node 2 refused with the setting node 1 changed"
    );
    // And the session node 2 was carrying, which the setting no longer allows, ended there.
    closed(&mut ok).await;
    assert!(t.elapsed() < Duration::from_secs(1), "ended after {:?}", t.elapsed());
    // (The close record is written as the relay ends: wait for it.)
    let mut ended = None;
    for _ in 0..100 {
        ended = two
            .audit()
            .await
            .into_iter()
            .find(|r| r.event == "connection-close" && r.reason_code.as_deref() == Some("AccessRevoked"));
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = ended.expect("a close record naming the revocation");
    assert!(ended.reason.as_deref().unwrap_or_default().contains("--enable-ip-connect"), "{ended:?}");

    // A node that stops heartbeating (here one that never runs) is lost: a live node ends its
    // sessions as "node lost" within the bound, once.
    let store = rampart_store::PostgresStore::connect(&url).await.expect("store");
    store
        .register_node("ghost", "127.0.0.1:9", "ghost-1", Duration::from_secs(5))
        .await
        .expect("ghost registers");
    let ghost_session = rampart_store::LiveSessionRecord {
        id: "ghost-session".into(),
        node: "ghost".into(),
        user: "admin".into(),
        client: "127.0.0.1:1".into(),
        bastion_id: two.bastion_id(),
        protocol: "tcptunnel".into(),
        target_ip: target.ip().to_string(),
        target_port: target.port(),
        target_resource_id: None,
        started_at: chrono::Utc::now(),
        bytes_to_target: 5,
        bytes_from_target: 7,
    };
    store
        .heartbeat("ghost", "ghost-1", rampart_store::NodeState::Active, std::slice::from_ref(&ghost_session))
        .await
        .expect("beat");
    // A connection the ghost opened but had not reported yet: its open record is in the
    // ghost's audit chain, and it is closed too.
    store.set_audit_chain("ghost");
    let mut unreported = rampart_core::AuditEntry::new(
        chrono::Utc::now(),
        rampart_core::AuditEvent::ConnectionOpen,
        rampart_core::AuditResult::Allowed,
    );
    unreported.connection_id = Some("ghost-unreported".into());
    store.append_audit(&unreported).await.expect("open record");
    let t = Instant::now();
    let close = two.close_record("ghost-session").await;
    assert!(t.elapsed() < rampart_gateway::node::LOST_AFTER + Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(close.reason_code.as_deref(), Some("NodeLost"), "{close:?}");
    assert_eq!(close.result, "failed");
    let nodes: Vec<Node> = via_two
        .request::<(), _>(http::Method::GET, "/api/nodes", None)
        .await
        .expect("node list")
        .unwrap_or_default();
    assert!(nodes.iter().any(|n| n.name == "ghost" && n.state == "lost"), "{nodes:?}");
    let closes =
        two.audit().await.into_iter().filter(|r| r.connection_id.as_deref() == Some("ghost-session")).count();
    assert_eq!(closes, 1, "one close record for the lost session, whichever node wrote it");
    let close = two.close_record("ghost-unreported").await;
    assert_eq!(close.reason_code.as_deref(), Some("NodeLost"), "{close:?}");

    // Each node appended to its own audit chain; every chain verifies.
    let verified: rampart_proto::api::AuditVerification = via_two
        .request::<(), _>(http::Method::GET, "/api/audit/verify", None)
        .await
        .expect("verified")
        .expect("an answer");
    let chains: Vec<Option<&str>> = verified.chains.iter().map(|c| c.node.as_deref()).collect();
    assert_eq!(chains, [Some("ghost"), Some("node-1"), Some("node-2")], "{verified:?}");
    assert_eq!(verified.chains.iter().map(|c| c.records).sum::<u64>(), verified.verified_records);
    store.close().await;
    drop(cluster);
}

/// Three nodes started at the same moment on an empty database: every one starts (none fails
/// on what another created a moment before), and the store holds one bootstrap admin and one
/// default subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_together_on_an_empty_database_all_start() {
    let cluster =
        tokio::task::spawn_blocking(pg::PgCluster::start).await.expect("ran").expect("postgres starts");
    let url = cluster.create_database("together").expect("database");
    let (a, b, c) = tokio::join!(node(&url, "a"), node(&url, "b"), node(&url, "c"));
    for gw in [&a, &b, &c] {
        let subscriptions = gw.admin.subscriptions().await.expect("subscriptions");
        assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    }
    let store = rampart_store::PostgresStore::connect(&url).await.expect("store");
    assert_eq!(store.user_count().await.expect("users"), 1);
    store.close().await;
    drop(cluster);
}

/// Just-in-time access across nodes: an activation granted through one node admits a tunnel
/// on another; revoked through the first, the session on the second ends within a second;
/// and a short activation's session on the second ends at its end, with no write at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_ended_through_one_node_ends_sessions_on_another() {
    use rampart_proto::activation::{ActivationRequest, ActivationView, EligibilitySpec};
    use rampart_proto::api::{RoleAssignmentCreate, UserCreate};

    let cluster =
        tokio::task::spawn_blocking(pg::PgCluster::start).await.expect("ran").expect("postgres starts");
    let url = cluster.create_database("jit_nodes").expect("database");
    let one = node(&url, "node-1").await;
    let two = node(&url, "node-2").await;
    let (upn, password) = ("jit@example.com", "jit-user-Passw0rd-long");
    let user = UserCreate { user_principal_name: upn.into(), display_name: None, password: password.into() };
    let _: Option<serde_json::Value> =
        one.admin.request(http::Method::POST, "/api/users", Some(&user)).await.expect("user created");
    let eligible = RoleAssignmentCreate {
        assignee: upn.into(),
        assignee_principal_type: None,
        role: "Reader".into(),
        scope: one.bastion_id(),
        condition: None,
        eligibility: Some(EligibilitySpec::default()),
    };
    let _: Option<serde_json::Value> = one
        .admin
        .request(http::Method::POST, "/api/roleAssignments", Some(&eligible))
        .await
        .expect("eligible");
    let jit = two.anonymous();
    jit.login(upn, password).await.expect("signed in through node 2");
    let activate = |duration: &str| ActivationRequest {
        role: "Reader".into(),
        scope: one.bastion_id(),
        duration: duration.into(),
        justification: None,
    };

    let made: Option<ActivationView> = jit
        .request(http::Method::POST, "/api/roleActivations", Some(&activate("PT1H")))
        .await
        .expect("activated");
    let id = made.expect("an activation").id;
    let target = echo_target().await;
    let tunnel = two.tunnel_as(jit.clone(), target, TunnelProtocol::Mux).await;
    let (mut conn, _relay) = connect_through(&tunnel).await;
    echo(&mut conn, b"while active").await;
    let t = Instant::now();
    let _: Option<ActivationView> = one
        .admin
        .request::<(), _>(http::Method::POST, &format!("/api/roleActivations/{id}/revoke"), None)
        .await
        .expect("revoked through node 1");
    closed(&mut conn).await;
    assert!(t.elapsed() < Duration::from_secs(1), "ended on node 2 after {:?}", t.elapsed());

    let short: Option<ActivationView> = jit
        .request(http::Method::POST, "/api/roleActivations", Some(&activate("PT5S")))
        .await
        .expect("activated");
    let ends: chrono::DateTime<chrono::Utc> =
        short.and_then(|a| a.ends_at).expect("an end").parse().expect("a time");
    let tunnel = two.tunnel_as(jit.clone(), target, TunnelProtocol::Mux).await;
    let (mut conn, _relay) = connect_through(&tunnel).await;
    echo(&mut conn, b"until it expires").await;
    closed(&mut conn).await;
    let late = chrono::Utc::now() - ends;
    // The end is printed to the second: the session ends within a second of it (plus that).
    assert!(late < chrono::Duration::milliseconds(2000), "ended {late} after the activation's end");
}
