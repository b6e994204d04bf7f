//! The conformance checks of single sign-on's data: identity providers, federated users and
//! groups, memberships, and the provider refresh token behind a Rampart one.

use std::sync::Arc;

use chrono::Utc;
use rampart_store::prelude::*;
use rampart_store::{IdentityProviderRecord, StoreError};

use super::{Checked, assignment, fail};

fn provider(name: &str) -> IdentityProviderRecord {
    IdentityProviderRecord {
        name: name.into(),
        issuer: "https://idp.test".into(),
        client_id: "rampart".into(),
        client_secret: "s3cret".into(),
        username_claim: "preferred_username".into(),
        groups_claim: "groups".into(),
        allowed_domains: vec!["example.com".into()],
        ca_pem: None,
        created_at: Utc::now(),
    }
}

/// Providers are named resources (unique without regard to case); a federated user is made
/// once per subject and keeps its ID; memberships are replaced, and the change is reported.
pub async fn federated_users_and_groups(store: Arc<dyn Store>) -> Checked {
    store.create_identity_provider(&provider("corp")).await?;
    ensure!(
        matches!(store.create_identity_provider(&provider("CORP")).await, Err(StoreError::Conflict(_))),
        "a provider name is unique without regard to case"
    );
    let read = store.identity_provider("Corp").await?.ok_or_else(|| fail("provider found in any case"))?;
    ensure!(
        read.allowed_domains == ["example.com"] && read.client_secret == "s3cret",
        "provider read back: {read:?}"
    );
    ensure!(!format!("{read:?}").contains("s3cret"), "the secret is not in debug output");

    let alice = store.federated_user("corp", "sub-1", "alice@corp").await?;
    let again = store.federated_user("corp", "sub-1", "alice@corp").await?;
    ensure!(alice.id == again.id, "one user per subject");
    ensure!(alice.identity_provider.as_deref() == Some("corp"), "the user knows its provider");
    ensure!(store.user_by_name("alice@corp").await?.is_some(), "listed as a user");

    ensure!(
        store.set_memberships(&alice.id, "corp", &["ops".into(), "dev".into()]).await?,
        "first memberships"
    );
    ensure!(
        !store.set_memberships(&alice.id, "corp", &["dev".into(), "ops".into()]).await?,
        "same set: no change"
    );
    let ops = store.ensure_group("corp", "ops", "ops@corp").await?;
    ensure!(ops.kind == rampart_core::IdentityKind::Group, "a group is a principal of kind group");
    let groups = store.groups_of(&alice.id).await?;
    ensure!(groups.len() == 2 && groups.contains(&ops.id), "groups of alice: {groups:?}");
    let members = store.group_members(&ops.id).await?;
    ensure!(members.len() == 1 && members[0].id == alice.id, "members of ops");

    store.create_subscription("sub1", "default").await?;
    store.create_role_assignment(&assignment("ra-ops", &ops, "Reader", "/subscriptions/sub1")).await?;
    ensure!(store.role_assignments(Some(&ops.id), None).await?.len() == 1, "a group holds an assignment");

    ensure!(store.set_memberships(&alice.id, "corp", &["dev".into()]).await?, "leaving a group is a change");
    ensure!(!store.groups_of(&alice.id).await?.contains(&ops.id), "read after the write: no longer in ops");

    // A group claim equal to a user's name still becomes a group (with a suffix).
    let clash = store.ensure_group("corp", "alice", "alice@corp").await?;
    ensure!(
        clash.id != alice.id && clash.kind == rampart_core::IdentityKind::Group,
        "a clash is its own group"
    );

    store.delete_identity_provider("corp").await?;
    ensure!(store.user_by_name("alice@corp").await?.is_none(), "the provider's users go with it");
    ensure!(store.role_assignments(Some(&ops.id), None).await?.is_empty(), "and their assignments");
    ensure!(
        matches!(store.delete_identity_provider("corp").await, Err(StoreError::NotFound(_))),
        "deleting twice: not found"
    );
    Ok(())
}

/// The provider's refresh token behind a Rampart refresh token is taken once, and goes when
/// the Rampart token's user goes.
pub async fn upstream_tokens_are_taken_once(store: Arc<dyn Store>) -> Checked {
    store.create_identity_provider(&provider("corp")).await?;
    let bob = store.federated_user("corp", "sub-2", "bob@corp").await?;
    store.insert_refresh_token("rt1", &bob.id, i64::MAX / 2).await?;
    store.put_upstream_token("rt1", "corp", "upstream-1").await?;
    let taken = store.take_upstream_token("rt1").await?;
    ensure!(taken == Some(("corp".into(), "upstream-1".into())), "taken: {taken:?}");
    ensure!(store.take_upstream_token("rt1").await?.is_none(), "taken once");
    store.insert_refresh_token("rt2", &bob.id, i64::MAX / 2).await?;
    store.put_upstream_token("rt2", "corp", "upstream-2").await?;
    store.delete_user("bob@corp").await?;
    ensure!(store.take_upstream_token("rt2").await?.is_none(), "gone with the user");
    Ok(())
}
