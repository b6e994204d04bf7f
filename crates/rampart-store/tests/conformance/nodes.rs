//! The conformance checks of what nodes share: secrets, heartbeats and their sessions, lost
//! nodes, events, each node's audit chain and the connections it left open.

use std::sync::Arc;

use chrono::Utc;
use rampart_core::{AuditEntry, AuditEvent, AuditResult};
use rampart_store::StoreError;
use rampart_store::prelude::*;

use super::{Checked, assignment, fail};

fn live(id: &str, node: &str, bastion: &str) -> rampart_store::LiveSessionRecord {
    rampart_store::LiveSessionRecord {
        id: id.into(),
        node: node.into(),
        user: "alice".into(),
        client: "203.0.113.7:50000".into(),
        bastion_id: bastion.into(),
        protocol: "tcptunnel".into(),
        target_ip: "10.0.0.4".into(),
        target_port: 22,
        target_resource_id: None,
        started_at: Utc::now(),
        bytes_to_target: 10,
        bytes_from_target: 20,
    }
}

/// The first secret stored under a name is every node's, also between nodes racing.
pub async fn the_first_shared_secret_wins(store: Arc<dyn Store>) -> Checked {
    let (a, b) =
        tokio::join!(store.shared_secret("token-key", "aaa"), store.shared_secret("token-key", "bbb"));
    let (a, b) = (a?, b?);
    ensure!(a == b && (a == "aaa" || a == "bbb"), "both see one secret: {a} / {b}");
    ensure!(store.shared_secret("token-key", "ccc").await? == a, "a later candidate does not replace it");
    ensure!(store.shared_secret("other", "ddd").await? == "ddd", "names are separate");
    Ok(())
}

/// Heartbeats report each node's live sessions; a heartbeat replaces what the node reported
/// before; every node's sessions are listed, by bastion in any case.
pub async fn heartbeats_report_each_nodes_sessions(store: Arc<dyn Store>) -> Checked {
    let b1 = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/bastionHosts/b1";
    store.register_node("node-1", "10.0.0.1:443", "i-node-1", std::time::Duration::from_secs(5)).await?;
    store.register_node("node-2", "10.0.0.2:443", "i-node-2", std::time::Duration::from_secs(5)).await?;
    store
        .heartbeat(
            "node-1",
            "i-node-1",
            rampart_store::NodeState::Active,
            &[live("s1", "node-1", b1), live("s2", "node-1", "other")],
        )
        .await?;
    store
        .heartbeat("node-2", "i-node-2", rampart_store::NodeState::Draining, &[live("s3", "node-2", b1)])
        .await?;
    let nodes = store.list_nodes().await?;
    ensure!(nodes.len() == 2, "two nodes: {nodes:?}");
    ensure!(
        nodes[0].name == "node-1" && nodes[0].sessions == 2 && nodes[0].address == "10.0.0.1:443",
        "{nodes:?}"
    );
    ensure!(nodes[1].state == rampart_store::NodeState::Draining && nodes[1].sessions == 1, "{nodes:?}");
    let on_b1 = store.live_sessions(Some(&b1.to_uppercase())).await?;
    ensure!(
        on_b1.len() == 2 && on_b1.iter().any(|s| s.node == "node-2"),
        "every node's sessions on b1: {on_b1:?}"
    );
    ensure!(on_b1.iter().all(|s| s.bytes_from_target == 20 && s.target_port == 22), "{on_b1:?}");
    store
        .heartbeat("node-1", "i-node-1", rampart_store::NodeState::Active, &[live("s2", "node-1", "other")])
        .await?;
    let all = store.live_sessions(None).await?;
    ensure!(
        all.len() == 2 && !all.iter().any(|s| s.id == "s1"),
        "an ended session is gone at the next heartbeat: {all:?}"
    );
    Ok(())
}

/// A node without a heartbeat is lost once, and its sessions go to exactly one reaper; the
/// reaper never reaps itself.
pub async fn a_lost_nodes_sessions_are_reaped_once(store: Arc<dyn Store>) -> Checked {
    store.register_node("gone", "10.0.0.9:443", "i-gone", std::time::Duration::from_secs(5)).await?;
    store.register_node("alive", "10.0.0.1:443", "i-alive", std::time::Duration::from_secs(5)).await?;
    store
        .heartbeat(
            "gone",
            "i-gone",
            rampart_store::NodeState::Active,
            &[live("s1", "gone", "b"), live("s2", "gone", "b")],
        )
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let quiet = std::time::Duration::from_millis(10);
    ensure!(
        store.reap_lost_nodes(std::time::Duration::from_secs(60), "alive").await?
            == rampart_store::Reaped::default(),
        "not silent long enough yet"
    );
    let (a, b) = tokio::join!(store.reap_lost_nodes(quiet, "alive"), store.reap_lost_nodes(quiet, "alive"));
    let (a, b) = (a?, b?);
    ensure!(a.sessions.len() + b.sessions.len() == 2, "each lost session once: {a:?} / {b:?}");
    ensure!(
        [&a, &b].iter().filter(|r| r.nodes == ["gone"]).count() == 1
            && [&a, &b].iter().filter(|r| r.nodes.is_empty()).count() == 1,
        "the lost node to one reaper, with its sessions: {a:?} / {b:?}"
    );
    ensure!(
        [&a, &b].iter().all(|r| r.nodes.is_empty() == r.sessions.is_empty()),
        "sessions go with their node: {a:?} / {b:?}"
    );
    let nodes = store.list_nodes().await?;
    let state = |n: &str| nodes.iter().find(|x| x.name == n).map(|x| x.state);
    ensure!(state("gone") == Some(rampart_store::NodeState::Lost), "{nodes:?}");
    ensure!(state("alive") == Some(rampart_store::NodeState::Active), "the reaper is not reaped: {nodes:?}");
    ensure!(store.live_sessions(None).await?.is_empty(), "the lost node's sessions are gone");
    ensure!(
        store.reap_lost_nodes(quiet, "alive").await? == rampart_store::Reaped::default(),
        "nothing twice"
    );
    Ok(())
}

/// A node name is held by one process: a second one given a running node's name is refused
/// naming it, and nothing it would report is written; once the first has been silent long
/// enough (or stopped), the name can be taken, and the first one's heartbeats are refused.
pub async fn a_running_nodes_name_is_not_taken(store: Arc<dyn Store>) -> Checked {
    let alive = std::time::Duration::from_secs(5);
    store.register_node("gw", "10.0.0.1:443", "first", alive).await?;
    store.heartbeat("gw", "first", rampart_store::NodeState::Active, &[live("s1", "gw", "b")]).await?;
    match store.register_node("GW", "10.0.0.2:443", "second", alive).await {
        Err(StoreError::Conflict(why)) => {
            ensure!(why.contains("10.0.0.1:443") && why.contains("--node-name"), "names the other: {why}")
        }
        other => return Err(fail(format!("a running node's name was taken: {other:?}"))),
    }
    let beat = store.heartbeat("gw", "second", rampart_store::NodeState::Active, &[]).await;
    ensure!(matches!(beat, Err(StoreError::Conflict(_))), "a heartbeat under another's name: {beat:?}");
    ensure!(store.live_sessions(None).await?.len() == 1, "the first one's report stands");
    // The same process registers again (a reconnect): fine.
    store.register_node("gw", "10.0.0.1:443", "first", alive).await?;
    // Silent long enough: a new process takes the name, and the old one's beats are refused.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    store.register_node("gw", "10.0.0.2:443", "second", std::time::Duration::from_millis(10)).await?;
    let beat = store.heartbeat("gw", "first", rampart_store::NodeState::Active, &[]).await;
    ensure!(matches!(beat, Err(StoreError::Conflict(_))), "the old process's heartbeat: {beat:?}");
    let nodes = store.list_nodes().await?;
    ensure!(nodes.len() == 1 && nodes[0].address == "10.0.0.2:443", "{nodes:?}");
    // A stopped node's name is free at once.
    store.heartbeat("gw", "second", rampart_store::NodeState::Stopped, &[]).await?;
    store.register_node("gw", "10.0.0.3:443", "third", alive).await?;
    // Zero: taken whatever the other's heartbeat (one node, whose clock may have been set back).
    store.register_node("gw", "10.0.0.4:443", "fourth", std::time::Duration::ZERO).await?;
    Ok(())
}

/// A published event reaches a subscriber.
pub async fn published_events_reach_subscribers(store: Arc<dyn Store>) -> Checked {
    let mut events = store.subscribe();
    let event = rampart_store::StoreEvent::StopSession {
        id: "s1".into(),
        reason: "revoked".into(),
        by: "admin".into(),
    };
    store.publish(&event).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) if e == event => return Ok(()),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => return Err(fail(format!("the events ended: {e}"))),
            Err(_) => return Err(fail("the event did not arrive within 5 s")),
        }
    }
}

/// Appends go to the chain named by `set_audit_chain` (a node's own): every chain numbers its
/// records from 1 and verifies on its own, records of other chains in between; an edited
/// record is named with its chain.
pub async fn each_node_appends_to_its_own_chain(store: Arc<dyn Store>) -> Checked {
    let append = |n: u16| {
        let store = store.clone();
        async move {
            let mut entry = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Allowed);
            entry.target_port = Some(n);
            store.append_audit(&entry).await
        }
    };
    append(1).await?;
    for node in ["gw-1", "gw-2", "gw-1", "gw-2"] {
        store.set_audit_chain(node);
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..25u16 {
            tasks.spawn(append(n));
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| fail(e.to_string()))??;
        }
    }
    let records = store.audit_chain().await?;
    let heads = rampart_core::verify_chains(&records).map_err(|b| fail(b.to_string()))?;
    let shown: Vec<_> = heads.iter().map(|h| (h.chain.clone(), h.records)).collect();
    ensure!(
        shown == [(None, 1), (Some("gw-1".to_string()), 50), (Some("gw-2".to_string()), 50)],
        "one chain per node, and the unnamed one: {shown:?}"
    );
    let numbers: Vec<i64> =
        records.iter().filter(|r| r.chain.as_deref() == Some("gw-2")).filter_map(|r| r.seq).collect();
    ensure!(numbers == (1..=50).collect::<Vec<i64>>(), "numbered from 1 without gaps: {numbers:?}");
    let mut ids: Vec<i64> = records.iter().filter_map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    ensure!(ids.len() == 101, "every record has its own id");

    let mut edited = records.clone();
    if let Some(r) = edited.iter_mut().find(|r| r.chain.as_deref() == Some("gw-1") && r.seq == Some(30)) {
        // A port no append used (they use 0..25): the edit always changes the record.
        r.target_port = Some(60_000);
    }
    let broken = rampart_core::verify_chains(&edited).err().map(|b| b.to_string()).unwrap_or_default();
    ensure!(broken.contains("number 30 of node gw-1's chain"), "the broken chain is named: {broken}");
    Ok(())
}

/// A write to what authorization reads (a role assignment, say) is announced to this
/// process's subscribers as `CacheInvalidated`, so live sessions can be decided on again.
pub async fn writes_to_authorization_inputs_are_announced(store: Arc<dyn Store>) -> Checked {
    store.create_subscription("s1", "one").await?;
    let user = store.create_user("carol", None, "hash").await?;
    let mut events = store.subscribe();
    store.create_role_assignment(&assignment("ra-announced", &user, "Reader", "/subscriptions/s1")).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(rampart_store::StoreEvent::CacheInvalidated)) => return Ok(()),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => return Err(fail(format!("the events ended: {e}"))),
            Err(_) => return Err(fail("no CacheInvalidated within 5 s of a role assignment")),
        }
    }
}

/// Connections left open are found by the chain their open record is in (the node that
/// opened them), closed ones and other nodes' are not.
pub async fn unclosed_connections_are_found_by_node(store: Arc<dyn Store>) -> Checked {
    let open = |id: &str| {
        let mut e = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Allowed);
        e.connection_id = Some(id.into());
        e
    };
    store.set_audit_chain("gw-1");
    store.append_audit(&open("c1")).await?;
    store.append_audit(&open("c2")).await?;
    store.set_audit_chain("gw-2");
    store.append_audit(&open("c3")).await?;
    // gw-2 closes gw-1's c2 (as a reaper would): closed wherever its close record is.
    let mut close = open("c2");
    close.event = AuditEvent::ConnectionClose;
    close.result = AuditResult::Closed;
    store.append_audit(&close).await?;
    let of = |node: &'static str| {
        let store = store.clone();
        async move {
            store
                .unclosed_connections_of(node)
                .await
                .map(|v| v.into_iter().filter_map(|e| e.connection_id).collect::<Vec<String>>())
        }
    };
    ensure!(of("gw-1").await? == ["c1"], "gw-1's open one");
    ensure!(of("gw-2").await? == ["c3"], "gw-2's open one");
    ensure!(of("gw-3").await?.is_empty(), "none of a node that opened none");
    Ok(())
}
