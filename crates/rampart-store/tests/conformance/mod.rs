//! The store conformance suite: what every backend of [`Store`] must guarantee, checked
//! through the trait alone. A backend's test file gives a factory of fresh, empty stores
//! and runs every check with `conformance_tests!`; SQLite's is `sqlite.rs`.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::Utc;
use rampart_core::{
    AuditEntry, AuditEvent, AuditResult, BastionSettings, ResourceId, RoleAssignment, RoleDefinition, Scope,
};
use rampart_store::prelude::*;
use rampart_store::{AuditFilter, StoreError, StoreResult};

pub type Checked = StoreResult<()>;

fn fail(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(format!("conformance: {}", what.into()))
}

macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(fail(format!($($what)+)));
        }
    };
}

fn assignment(id: &str, user: &rampart_store::User, role: &str, scope: &str) -> RoleAssignment {
    RoleAssignment {
        id: id.into(),
        principal_id: user.id.clone(),
        principal_name: user.username.clone(),
        role: role.into(),
        scope: scope.parse().unwrap_or(Scope::Subscription("sub1".into())),
        condition: None,
        eligibility: None,
    }
}

mod activation;
mod directory;
mod inventory;
mod mfa;
mod nodes;
mod recording;
mod shareable;
pub use activation::*;
pub use directory::*;
pub use inventory::*;
pub use mfa::*;
pub use nodes::*;
pub use recording::*;
pub use shareable::*;

/// Read-your-writes for every input of an authorization decision: a write is seen by the
/// very next read, however often that read was made before (a backend may cache reads, and
/// must never serve a value from before a committed write).
pub async fn authorization_inputs_are_read_after_every_write(store: Arc<dyn Store>) -> Checked {
    store.create_subscription("sub1", "default").await?;
    let id = ResourceId::bastion("sub1", "rg1", "b1");
    store.create_bastion(&id, &BastionSettings::new_default()).await?;
    let user = store.create_user("ann", None, "hash").await?;
    store.create_role_assignment(&assignment("a1", &user, "Reader", "/subscriptions/sub1")).await?;
    for _ in 0..2 {
        ensure!(store.user_by_id(&user.id).await?.is_some(), "user");
        ensure!(store.role_assignments(Some(&user.id), None).await?.len() == 1, "assignment");
        ensure!(store.custom_role_definitions().await?.is_empty(), "roles");
        let b = store.bastion(&id).await?.ok_or_else(|| fail("bastion"))?;
        ensure!(!b.settings.enable_ip_connect, "setting");
    }
    let mut settings = BastionSettings::new_default();
    settings.enable_ip_connect = true;
    settings.recording_storage_url =
        Some(rampart_core::SecretUrl::new("https://a.blob.core.windows.net/rec?sv=1&sig=x"));
    settings.recording_retention_days = Some(30);
    settings.enable_shareable_link = true;
    settings.file_transfer = rampart_core::FileTransfer { upload: false, download: true };
    settings.file_transfer_max_bytes = Some(5 << 30);
    store.update_bastion(&id, &settings).await?;
    let b = store.bastion(&id).await?.ok_or_else(|| fail("bastion"))?;
    ensure!(b.settings.enable_ip_connect, "a changed setting is read at once");
    ensure!(b.settings == settings, "every setting is kept: {:?}", b.settings);
    store.delete_role_assignment("a1").await?;
    ensure!(
        store.role_assignments(Some(&user.id), None).await?.is_empty(),
        "a removed assignment is gone at once"
    );
    let role = RoleDefinition {
        name: "Custom".into(),
        description: String::new(),
        actions: vec![],
        not_actions: vec![],
        data_actions: vec![],
        builtin: false,
    };
    store.create_role_definition(&role).await?;
    ensure!(store.custom_role_definitions().await?.len() == 1, "a new role is read at once");
    store.delete_user("ann").await?;
    ensure!(store.user_by_id(&user.id).await?.is_none(), "a deleted user is gone at once");
    store.delete_bastion(&id).await?;
    ensure!(store.bastion(&id).await?.is_none(), "a deleted bastion is gone at once");
    Ok(())
}

/// Audit appends: each is durable when answered, gets its own id, ids grow in append order,
/// and the hash chain over them is whole, also under concurrent appends.
pub async fn audit_appends_are_ordered_and_chained(store: Arc<dyn Store>) -> Checked {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200u16 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut entry = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Allowed);
            entry.target_port = Some(n);
            store.append_audit(&entry).await.map(|id| (id, n))
        });
    }
    let mut ids = std::collections::HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (id, n) = done.map_err(|e| fail(e.to_string()))??;
        ids.insert(id, n);
    }
    ensure!(ids.len() == 200, "every append got its own id");
    let chain = store.audit_chain().await?;
    ensure!(rampart_core::verify_chain(&chain).ok() == Some(200), "the chain is whole");
    ensure!(chain.iter().all(|r| r.chain.is_none()), "appends go to the unnamed chain until one is set");
    let mut last = 0;
    for record in &chain {
        let id = record.id.unwrap_or_default();
        ensure!(id > last, "the chain is in id order");
        last = id;
        ensure!(record.target_port == ids.get(&id).copied(), "record {id} is the one its caller got");
    }
    // A later append follows every earlier one.
    let later =
        store.append_audit(&AuditEntry::new(Utc::now(), AuditEvent::Read, AuditResult::Allowed)).await?;
    ensure!(later > last, "a later append has a higher id");
    Ok(())
}

/// Listing the audit log: newest first, filtered, limited; user and resource IDs match
/// without regard to case (ARM names are case-insensitive).
pub async fn audit_is_listed_newest_first_and_filtered(store: Arc<dyn Store>) -> Checked {
    for (user, result, ip) in
        [("alice", AuditResult::Allowed, "10.0.0.4"), ("bob", AuditResult::Refused, "10.0.0.5")]
    {
        for _ in 0..3 {
            let mut e = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, result);
            e.user = Some(user.into());
            e.target_ip = Some(ip.into());
            e.target_resource_id = Some(
                "/subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/virtualMachines/VM1".into(),
            );
            store.append_audit(&e).await?;
        }
    }
    let all = store.list_audit(&AuditFilter::default()).await?;
    ensure!(all.len() == 6, "six records, got {}", all.len());
    ensure!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let alice =
        store.list_audit(&AuditFilter { user: Some("ALICE".into()), ..AuditFilter::default() }).await?;
    ensure!(
        alice.len() == 3 && alice.iter().all(|e| e.user.as_deref() == Some("alice")),
        "by user, any case"
    );
    let refused =
        store.list_audit(&AuditFilter { result: Some("refused".into()), ..AuditFilter::default() }).await?;
    ensure!(refused.len() == 3, "by result");
    let by_ip =
        store.list_audit(&AuditFilter { target: Some("10.0.0.5".into()), ..AuditFilter::default() }).await?;
    ensure!(by_ip.len() == 3, "by target IP");
    let by_id = store
        .list_audit(&AuditFilter {
            target: Some(
                "/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/vm1".into(),
            ),
            ..AuditFilter::default()
        })
        .await?;
    ensure!(by_id.len() == 6, "by resource ID, any case");
    let two = store.list_audit(&AuditFilter { limit: Some(2), ..AuditFilter::default() }).await?;
    ensure!(two.len() == 2 && two[0].id == all[0].id, "limited to the newest");
    Ok(())
}

/// Whatever text a client put in a record (a NUL byte, other control characters) is appended
/// with the records around it, and the chain verifies.
pub async fn any_text_is_appended_and_chained(store: Arc<dyn Store>) -> Checked {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20u16 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut e = AuditEntry::new(Utc::now(), AuditEvent::TunnelRequest, AuditResult::Refused);
            e.bastion_id = Some(if n == 7 { "evil\0id\u{1}\r\n".into() } else { format!("b{n}") });
            e.target_port = Some(n);
            store.append_audit(&e).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| fail(e.to_string()))??;
    }
    let chain = store.audit_chain().await?;
    ensure!(chain.len() == 20, "every record appended, the odd one too: {}", chain.len());
    ensure!(rampart_core::verify_chain(&chain).ok() == Some(20), "the chain verifies");
    Ok(())
}

/// Connections with an open record and no close record are found (a crash's leftovers).
pub async fn unclosed_connections_are_found(store: Arc<dyn Store>) -> Checked {
    for (id, event) in [
        ("c1", AuditEvent::ConnectionOpen),
        ("c2", AuditEvent::ConnectionOpen),
        ("c1", AuditEvent::ConnectionClose),
    ] {
        let mut e = AuditEntry::new(Utc::now(), event, AuditResult::Allowed);
        e.connection_id = Some(id.into());
        store.append_audit(&e).await?;
    }
    let mut refused = AuditEntry::new(Utc::now(), AuditEvent::ConnectionOpen, AuditResult::Refused);
    refused.connection_id = Some("c3".into());
    store.append_audit(&refused).await?;
    let open = store.unclosed_connections().await?;
    ensure!(
        open.len() == 1 && open[0].connection_id.as_deref() == Some("c2"),
        "only c2 is left open: {open:?}"
    );
    Ok(())
}

/// Unique names are unique without regard to case, and a second one is a conflict.
pub async fn unique_names_conflict(store: Arc<dyn Store>) -> Checked {
    store.create_subscription("sub1", "default").await?;
    ensure!(
        matches!(store.create_subscription("sub2", "DEFAULT").await, Err(StoreError::Conflict(_))),
        "subscription name"
    );
    let id = ResourceId::bastion("sub1", "rg1", "b1");
    store.create_bastion(&id, &BastionSettings::new_default()).await?;
    let same = ResourceId::bastion("sub1", "RG1", "B1");
    ensure!(
        matches!(
            store.create_bastion(&same, &BastionSettings::new_default()).await,
            Err(StoreError::Conflict(_))
        ),
        "bastion"
    );
    ensure!(store.bastion(&same).await?.is_some(), "a bastion is found by its ID in any case");
    store.create_user("ann", None, "hash").await?;
    ensure!(
        matches!(store.create_user("ANN", None, "hash").await, Err(StoreError::Conflict(_))),
        "user name"
    );
    ensure!(store.user_by_name("Ann").await?.is_some(), "a user is found by name in any case");
    Ok(())
}

/// A refresh token works once, and not after it expired; looking it up does not use it.
pub async fn refresh_tokens_are_used_once(store: Arc<dyn Store>) -> Checked {
    let user = store.create_user("alice", None, "hash").await?;
    store.insert_refresh_token("h1", &user.id, 2_000).await?;
    // Looking does not use it.
    ensure!(store.refresh_token_user("h1", 1_000).await? == Some(user.id.clone()), "looked up");
    ensure!(store.refresh_token_user("h1", 3_000).await?.is_none(), "looked up after expiry");
    ensure!(store.consume_refresh_token("h1", 1_000).await? == Some(user.id.clone()), "first use");
    ensure!(store.refresh_token_user("h1", 1_000).await?.is_none(), "looked up once used");
    ensure!(store.consume_refresh_token("h1", 1_000).await?.is_none(), "second use");
    store.insert_refresh_token("h2", &user.id, 500).await?;
    ensure!(store.consume_refresh_token("h2", 1_000).await?.is_none(), "expired");
    // Concurrent uses: exactly one wins.
    store.insert_refresh_token("h3", &user.id, 2_000).await?;
    let (a, b) =
        tokio::join!(store.consume_refresh_token("h3", 1_000), store.consume_refresh_token("h3", 1_000));
    ensure!(a?.is_some() as u8 + b?.is_some() as u8 == 1, "exactly one concurrent use succeeds");
    Ok(())
}

/// Browser sessions end on expiry, sign-out and a password change.
pub async fn portal_sessions_end(store: Arc<dyn Store>) -> Checked {
    let user = store.create_user("alice", None, "hash").await?;
    let far = Utc::now().timestamp() + 3600;
    store.insert_portal_session("s1", &user.id, far).await?;
    store.insert_portal_session("s2", &user.id, far).await?;
    store.insert_portal_session("old", &user.id, 10).await?;
    ensure!(store.portal_session_user("s1", 0).await? == Some(user.id.clone()), "live");
    ensure!(store.portal_session_user("old", 11).await?.is_none(), "expired");
    store.delete_portal_session("s1").await?;
    ensure!(store.portal_session_user("s1", 0).await?.is_none(), "signed out");
    store.set_password("alice", "new-hash").await?;
    ensure!(store.portal_session_user("s2", 0).await?.is_none(), "a new password ends browser sessions");
    Ok(())
}

/// The first pinned host key wins, also between concurrent pins, until it is forgotten.
pub async fn first_pinned_host_key_wins(store: Arc<dyn Store>) -> Checked {
    ensure!(store.pinned_host_key("10.0.0.4:22").await?.is_none(), "none yet");
    let (a, b) =
        tokio::join!(store.pin_host_key("10.0.0.4:22", "key-a"), store.pin_host_key("10.0.0.4:22", "key-b"));
    let (a, b) = (a?, b?);
    ensure!(a == b, "concurrent pins agree on one key: {a} / {b}");
    ensure!(store.pin_host_key("10.0.0.4:22", "key-c").await? == a, "the first stays");
    ensure!(store.forget_host_key("10.0.0.4:22").await?, "forgotten");
    ensure!(store.pin_host_key("10.0.0.4:22", "key-c").await? == "key-c", "a new pin after forgetting");
    Ok(())
}

/// Deleting a user takes their role assignments and refresh tokens with them.
pub async fn deleting_a_user_removes_what_was_theirs(store: Arc<dyn Store>) -> Checked {
    store.create_subscription("sub1", "default").await?;
    let user = store.create_user("ann", None, "hash").await?;
    store.create_role_assignment(&assignment("a1", &user, "Reader", "/subscriptions/sub1")).await?;
    store.insert_refresh_token("t1", &user.id, i64::MAX / 2).await?;
    store.delete_user("ann").await?;
    ensure!(store.role_assignments(Some(&user.id), None).await?.is_empty(), "assignments removed");
    ensure!(store.consume_refresh_token("t1", 0).await?.is_none(), "refresh tokens removed");
    ensure!(
        matches!(store.delete_user("ann").await, Err(StoreError::NotFound(_))),
        "a second delete is not found"
    );
    Ok(())
}

/// A service principal is a principal like a user (found by its application ID, listed, its
/// secret hashed like a password) and says it is one; its ID and a user's name never clash.
pub async fn service_principals_are_principals_of_their_kind(store: Arc<dyn Store>) -> Checked {
    let user = store.create_user("ann", None, "hash").await?;
    let app = "5d3c1a2b-0000-4000-8000-000000000001";
    let sp = store.create_service_principal(app, "deploy-bot", "secret-hash").await?;
    ensure!(user.kind == rampart_core::IdentityKind::User, "a user: {user:?}");
    ensure!(sp.kind == rampart_core::IdentityKind::ServicePrincipal, "a service principal: {sp:?}");
    let found = store.user_by_name(&app.to_uppercase()).await?.ok_or_else(|| fail("found by app ID"))?;
    ensure!(found.kind == rampart_core::IdentityKind::ServicePrincipal, "{found:?}");
    ensure!(
        found.display_name.as_deref() == Some("deploy-bot") && found.password_hash == "secret-hash",
        "{found:?}"
    );
    let kinds: Vec<_> = store.list_users().await?.into_iter().map(|u| (u.username, u.kind)).collect();
    ensure!(kinds.len() == 2, "both listed: {kinds:?}");
    ensure!(
        matches!(store.create_service_principal(app, "again", "h").await, Err(StoreError::Conflict(_))),
        "an application ID is unique"
    );
    Ok(())
}

/// Every check, by name, for `conformance_tests!`.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!($backend;
            authorization_inputs_are_read_after_every_write,
            audit_appends_are_ordered_and_chained,
            audit_is_listed_newest_first_and_filtered,
            unclosed_connections_are_found,
            unique_names_conflict,
            refresh_tokens_are_used_once,
            portal_sessions_end,
            first_pinned_host_key_wins,
            deleting_a_user_removes_what_was_theirs,
            any_text_is_appended_and_chained,
            the_first_shared_secret_wins,
            heartbeats_report_each_nodes_sessions,
            a_lost_nodes_sessions_are_reaped_once,
            published_events_reach_subscribers,
            each_node_appends_to_its_own_chain,
            a_running_nodes_name_is_not_taken,
            unclosed_connections_are_found_by_node,
            service_principals_are_principals_of_their_kind,
            writes_to_authorization_inputs_are_announced,
            federated_users_and_groups,
            upstream_tokens_are_taken_once,
            totp_steps_and_recovery_codes_are_used_once,
            passkeys_are_kept_per_user,
            activations_are_decided_once_and_end,
            recordings_are_listed_and_finished,
            shareable_links_keep_their_limit,
            a_machine_is_changed_in_place,
        );
    };
    ($backend:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> rampart_store::StoreResult<()> {
                let (store, _guard) = $backend.await;
                let result = conformance::$check(store.clone()).await;
                store.close().await;
                result
            }
        )+
    };
}
