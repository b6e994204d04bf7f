//! The admission service through the in-process harness: who is admitted, every refusal with
//! its reason and audit record, and what an admission starts.

mod harness;

use std::sync::atomic::Ordering;
use std::time::Instant;

use harness::{Scene, Seen, closed_port, echo_target};
use rampart_core::{AuditEntry, AuditEvent, AuditResult, Protocol};
use rampart_gateway::admission::{DenialKind, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn entry() -> AuditEntry {
    let mut e = AuditEntry::new(chrono::Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Refused);
    e.connection_id = Some(uuid_like());
    e
}

fn uuid_like() -> String {
    format!(
        "conn-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}

#[tokio::test]
async fn an_owner_is_admitted_dialled_recorded_and_listed() {
    let scene = Scene::new().await;
    let target = echo_target().await;
    let admitted = scene.admission.admit(scene.request(&scene.alice, target), entry(), Instant::now()).await;
    let mut admission = admitted.expect("alice is Owner: admitted");
    assert_eq!(admission.authorization.addr(), target);
    // The target really is dialled: it echoes.
    admission.target.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    admission.target.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
    // Listed, and its open record is durable.
    let id = admission.session.session.id.clone();
    assert_eq!(scene.sessions.get(&id).map(|s| s.protocol), Some(Protocol::TcpTunnel));
    let open = scene.audit().await.into_iter().find(|e| e.connection_id.as_deref() == Some(id.as_str()));
    let open = open.expect("an open record");
    assert_eq!((open.event, open.result), (AuditEvent::ConnectionOpen, AuditResult::Allowed));
    assert_eq!(open.user.as_deref(), Some("alice"));
    assert_eq!(open.protocol.as_deref(), Some("tcptunnel"));
    assert_eq!(open.target_port, Some(target.port()));
    assert_eq!(scene.recorder.seen(), vec![Seen::Started { session: id, protocol: Protocol::TcpTunnel }]);
}

/// The refusal record for the request just made.
async fn refusal(scene: &Scene) -> AuditEntry {
    scene.audit().await.pop().expect("a record")
}

#[tokio::test]
async fn a_user_without_a_role_is_refused_naming_the_missing_role_and_audited() {
    let scene = Scene::new().await;
    let target = echo_target().await;
    let denial =
        scene.admission.admit(scene.request(&scene.bob, target), entry(), Instant::now()).await.err();
    let denial = denial.expect("bob has no role: refused");
    assert_eq!(denial.kind, DenialKind::Forbidden);
    assert_eq!(denial.code, "MissingReader");
    assert!(denial.message.contains("bob"), "{}", denial.message);
    let record = refusal(&scene).await;
    assert_eq!((record.result, record.reason_code.as_deref()), (AuditResult::Refused, Some("MissingReader")));
    assert_eq!(record.user.as_deref(), Some("bob"));
    assert_eq!(scene.sessions.count(), 0, "nothing listed");
    assert!(scene.recorder.seen().is_empty(), "no session started");
}

#[tokio::test]
async fn settings_apply_to_the_next_admission_and_name_the_setting() {
    let scene = Scene::new().await;
    let target = echo_target().await;
    scene.set(|s| s.enable_ip_connect = false).await;
    let denial =
        scene.admission.admit(scene.request(&scene.alice, target), entry(), Instant::now()).await.err();
    assert_eq!(denial.map(|d| d.code), Some("IpConnectDisabled".to_string()));
    scene
        .set(|s| {
            s.enable_ip_connect = true;
            s.reachable_networks = vec!["10.0.0.0/8".parse().expect("net")];
        })
        .await;
    let denial =
        scene.admission.admit(scene.request(&scene.alice, target), entry(), Instant::now()).await.err();
    assert_eq!(denial.map(|d| d.code), Some("OutsideReachableNetworks".to_string()));
    assert_eq!(refusal(&scene).await.reason_code.as_deref(), Some("OutsideReachableNetworks"));
}

#[tokio::test]
async fn a_missing_bastion_is_not_found() {
    let scene = Scene::new().await;
    let mut request = scene.request(&scene.alice, echo_target().await);
    request.bastion = rampart_core::ResourceId::bastion(&request.bastion.subscription, "default", "nowhere");
    let denial = scene.admission.admit(request, entry(), Instant::now()).await.err().expect("refused");
    assert_eq!((denial.kind, denial.code.as_str()), (DenialKind::NotFound, "BastionNotFound"));
}

#[tokio::test]
async fn a_draining_gateway_admits_nothing_and_says_so() {
    let scene = Scene::new().await;
    scene.draining.store(true, Ordering::SeqCst);
    let denial = scene
        .admission
        .admit(scene.request(&scene.alice, echo_target().await), entry(), Instant::now())
        .await;
    let denial = denial.err().expect("refused while draining");
    assert_eq!((denial.kind, denial.code.as_str()), (DenialKind::Unavailable, "ShuttingDown"));
    assert!(denial.message.contains("shutting down"));
    assert_eq!(refusal(&scene).await.reason_code.as_deref(), Some("ShuttingDown"));
}

#[tokio::test]
async fn an_unreachable_target_fails_with_its_address_audited_as_failed() {
    let scene = Scene::new().await;
    let target = closed_port().await;
    let denial = scene.admission.admit(scene.request(&scene.alice, target), entry(), Instant::now()).await;
    let denial = denial.err().expect("nothing listens there");
    assert_eq!(denial.kind, DenialKind::TargetUnreachable);
    assert!(denial.message.contains(&target.to_string()), "{}", denial.message);
    let record = refusal(&scene).await;
    assert_eq!(
        (record.result, record.reason_code.as_deref()),
        (AuditResult::Failed, Some("TargetUnreachable"))
    );
    assert_eq!(scene.sessions.count(), 0);
}

#[tokio::test]
async fn the_gateway_itself_is_never_a_target() {
    let scene = Scene::new().await;
    let itself = "127.0.0.1:1".parse().expect("addr");
    let denial = scene.admission.authorize(&scene.request(&scene.alice, itself)).await.err();
    assert_eq!(denial.map(|d| d.code), Some("GatewayItself".to_string()));
}

#[tokio::test]
async fn a_registered_machine_is_resolved_by_resource_id() {
    let scene = Scene::new().await;
    let denial = scene
        .admission
        .resolve_machine(
            "/subscriptions/default/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/none",
        )
        .await;
    assert_eq!(denial.err().map(|d| d.code), Some("TargetNotFound".to_string()));
    let bad = scene.admission.resolve_machine("not-an-id").await.expect_err("malformed");
    assert_eq!((bad.kind, bad.code.as_str()), (DenialKind::BadRequest, "InvalidResourceId"));
    let bastion = scene
        .admission
        .resolve_bastion(
            "/subscriptions/default/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default",
        )
        .await;
    assert_eq!(bastion.ok(), Some(scene.bastion.clone()));
    let unknown = scene
        .admission
        .resolve_bastion(
            "/subscriptions/nope/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default",
        )
        .await;
    assert_eq!(unknown.err().map(|d| d.code), Some("SubscriptionNotFound".to_string()));
    let _ = Target::Ip(std::net::Ipv4Addr::LOCALHOST.into());
}

/// Deciding again on live sessions: a removed role assignment ends that user's session, a
/// changed bastion setting ends the sessions it no longer allows, a deleted user's session
/// ends; sessions still allowed go on; each ends with `AccessRevoked` naming why.
#[tokio::test]
async fn live_sessions_whose_access_is_gone_are_stopped_with_the_reason() {
    let scene = Scene::new().await;
    let target = echo_target().await;
    let carol = scene.store.create_user("carol", None, "not-a-hash").await.expect("carol");
    let owner = |id: &str, user: &rampart_store::User| rampart_core::RoleAssignment {
        id: id.into(),
        principal_id: user.id.clone(),
        principal_name: user.username.clone(),
        role: rampart_core::rbac::OWNER.into(),
        scope: rampart_core::Scope::Subscription(scene.bastion.subscription.clone()),
        condition: None,
        eligibility: None,
    };
    scene.store.create_role_assignment(&owner("c1", &carol)).await.expect("carol is Owner");
    let carol = rampart_core::Identity::user(carol.id, carol.username);
    let admit = |who: &rampart_core::Identity| {
        scene.admission.admit(scene.request(who, target), entry(), Instant::now())
    };
    let alice = admit(&scene.alice).await.expect("alice admitted");
    let carols = admit(&carol).await.expect("carol admitted");
    assert_eq!(scene.admission.reauthorize_live().await, 0, "nothing changed: nothing ends");

    // Carol's role assignment goes: her session ends, alice's goes on.
    scene.store.delete_role_assignment("c1").await.expect("removed");
    assert_eq!(scene.admission.reauthorize_live().await, 1);
    let revoked = carols.session.session.end_reason().expect("carol's session was stopped");
    assert_eq!(revoked.code(), "AccessRevoked");
    assert!(revoked.to_string().contains("role"), "{revoked}");
    assert!(carols.session.stop.borrow().is_some(), "its relay is told to stop");
    assert!(alice.session.session.end_reason().is_none(), "alice still allowed");
    carols.session.finish(revoked).await;
    let close = scene.audit().await.pop().expect("close record");
    assert_eq!(close.reason_code.as_deref(), Some("AccessRevoked"), "{close:?}");

    // The bastion stops reaching loopback: alice's session ends, naming the setting.
    scene.set(|s| s.reachable_networks = vec!["10.0.0.0/8".parse().expect("net")]).await;
    assert_eq!(scene.admission.reauthorize_live().await, 1);
    let revoked = alice.session.session.end_reason().expect("alice's session was stopped");
    assert!(revoked.to_string().contains("reachable networks"), "{revoked}");

    // A deleted user's session ends too.
    scene.set(|s| s.reachable_networks = vec!["127.0.0.0/8".parse().expect("net")]).await;
    let again = admit(&scene.alice).await.expect("alice admitted again");
    scene.store.delete_user("alice").await.expect("deleted");
    assert_eq!(scene.admission.reauthorize_live().await, 1);
    let revoked = again.session.session.end_reason().expect("stopped");
    assert!(revoked.to_string().contains("no longer exists"), "{revoked}");
}

/// A store that cannot be read ends nothing: live sessions never depend on the database.
#[tokio::test]
async fn an_unreadable_store_ends_no_live_session() {
    let scene = Scene::new().await;
    let target = echo_target().await;
    let alice = scene.admission.admit(scene.request(&scene.alice, target), entry(), Instant::now()).await;
    let alice = alice.expect("admitted");
    // Her access is gone, but the store cannot be read to learn it: nothing ends on a guess.
    scene.store.delete_role_assignment("a1").await.expect("removed");
    scene.store.close().await;
    assert_eq!(scene.admission.reauthorize_live().await, 0);
    assert!(alice.session.session.end_reason().is_none());
}

/// A session decided on before a change it was not yet listed for is decided on again once
/// listed, if (and only if) a change was noted in between.
#[tokio::test]
async fn a_session_started_across_a_change_is_decided_on_again() {
    let scene = Scene::new().await;
    let target = echo_target().await;
    let alice = scene.admission.admit(scene.request(&scene.alice, target), entry(), Instant::now()).await;
    let alice = alice.expect("admitted");
    let mark = scene.admission.change_mark();
    scene.store.delete_role_assignment("a1").await.expect("removed");
    scene.admission.recheck_if_changed(mark, &alice.session.session).await;
    assert!(alice.session.session.end_reason().is_none(), "no change noted: nothing decided again");
    scene.admission.note_change();
    scene.admission.recheck_if_changed(mark, &alice.session.session).await;
    let revoked = alice.session.session.end_reason().expect("stopped once the change was noted");
    assert_eq!(revoked.code(), "AccessRevoked");
}
