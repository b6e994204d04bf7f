//! The conformance checks of multi-factor authentication's data.

use std::sync::Arc;

use rampart_store::StoreError;
use rampart_store::prelude::*;

use super::{Checked, fail};

/// A pending secret may be replaced, an enabled one may not; a time step is accepted once
/// (also by two racing sign-ins) and never an older one; a recovery code works once.
pub async fn totp_steps_and_recovery_codes_are_used_once(store: Arc<dyn Store>) -> Checked {
    let user = store.create_user("mfa-user", None, "hash").await?;
    ensure!(store.totp(&user.id).await?.is_none(), "no authenticator at first");
    store.put_pending_totp(&user.id, "AAAA").await?;
    store.put_pending_totp(&user.id, "BBBB").await?;
    let pending = store.totp(&user.id).await?.ok_or_else(|| fail("pending secret"))?;
    ensure!(pending.secret == "BBBB" && !pending.enabled, "a pending secret is replaced: {pending:?}");
    ensure!(!store.accept_totp_step(&user.id, 10).await?, "no step is accepted while pending");

    ensure!(store.enable_totp(&user.id, 100, &["h1".into(), "h2".into()]).await?, "enabled");
    ensure!(!store.enable_totp(&user.id, 100, &[]).await?, "enabling twice: nothing pending");
    ensure!(
        matches!(store.put_pending_totp(&user.id, "CCCC").await, Err(StoreError::Conflict(_))),
        "an enabled secret is not replaced"
    );
    ensure!(!store.accept_totp_step(&user.id, 100).await?, "the enabling step is not accepted again");
    let (a, b) = tokio::join!(store.accept_totp_step(&user.id, 101), store.accept_totp_step(&user.id, 101));
    ensure!(a? ^ b?, "one of two racing uses of a step wins");
    ensure!(!store.accept_totp_step(&user.id, 99).await?, "an older step is refused");

    ensure!(store.use_recovery_code(&user.id, "h1").await?, "a recovery code works");
    ensure!(!store.use_recovery_code(&user.id, "h1").await?, "once");
    ensure!(!store.use_recovery_code(&user.id, "nope").await?, "an unknown one does not");

    ensure!(store.disable_totp(&user.id).await?, "disabled");
    ensure!(
        store.totp(&user.id).await?.is_none() && !store.use_recovery_code(&user.id, "h2").await?,
        "all gone"
    );
    ensure!(!store.disable_totp(&user.id).await?, "disabling twice");
    Ok(())
}

/// A passkey is kept by credential ID (unique), listed per user, updated and deleted.
pub async fn passkeys_are_kept_per_user(store: Arc<dyn Store>) -> Checked {
    let user = store.create_user("passkey-user", None, "hash").await?;
    let other = store.create_user("other-user", None, "hash").await?;
    store.add_passkey(&user.id, "cred-1", "laptop", "{\"v\":1}").await?;
    store.add_passkey(&user.id, "cred-2", "phone", "{\"v\":1}").await?;
    ensure!(
        matches!(store.add_passkey(&other.id, "cred-1", "x", "{}").await, Err(StoreError::Conflict(_))),
        "a credential ID belongs to one user"
    );
    store.update_passkey("cred-1", "{\"v\":2}").await?;
    let keys = store.passkeys(&user.id).await?;
    ensure!(keys.len() == 2 && keys[0] == ("cred-1".into(), "laptop".into(), "{\"v\":2}".into()), "{keys:?}");
    ensure!(store.passkeys(&other.id).await?.is_empty(), "not another user's");
    ensure!(!store.delete_passkey(&other.id, "cred-2").await?, "not deleted by another user");
    ensure!(store.delete_passkey(&user.id, "cred-2").await?, "deleted");
    store.delete_user("passkey-user").await?;
    ensure!(store.passkeys(&user.id).await?.is_empty(), "gone with the user");
    Ok(())
}
