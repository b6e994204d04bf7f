//! The conformance check of shareable links' data.

use std::sync::Arc;

use chrono::{Duration, Utc};
use rampart_core::ResourceId;
use rampart_store::ShareableLinkRecord;
use rampart_store::prelude::*;

use super::{Checked, fail};

/// Links are made all or none within the bastion's limit (expired ones do not count and are
/// forgotten), found by id and by token hash, listed by bastion in any case, deleted once,
/// and go with their bastion.
pub async fn shareable_links_keep_their_limit(store: Arc<dyn Store>) -> Checked {
    let bastion = ResourceId::bastion("s", "g", "b");
    store.create_subscription("s", "s").await?;
    store.create_bastion(&bastion, &rampart_core::BastionSettings::new_default()).await?;
    let b = bastion.to_string();
    let now = Utc::now();
    let link = |id: &str, expires: chrono::DateTime<Utc>| ShareableLinkRecord {
        id: id.into(),
        token_hash: format!("hash-{id}"),
        bastion_id: b.clone(),
        target_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1".into(),
        created_by: "admin".into(),
        created_at: now,
        expires_at: expires,
    };
    let soon = now + Duration::hours(1);
    let day = now + Duration::days(1);
    ensure!(store.create_shareable_links(&b, &[link("l1", soon), link("l2", day)], 3, now).await?, "two fit");
    ensure!(
        !store.create_shareable_links(&b, &[link("l3", soon), link("l4", soon)], 3, now).await?,
        "four do not fit in three"
    );
    ensure!(store.shareable_link("l3").await?.is_none(), "all or none: l3 was not kept");
    let upper = b.to_uppercase();
    let listed = store.shareable_links(&upper).await?;
    ensure!(listed.iter().map(|l| l.id.as_str()).collect::<Vec<_>>() == ["l1", "l2"], "{listed:?}");
    let by_token = store.shareable_link_by_token("hash-l2").await?.ok_or_else(|| fail("found by token"))?;
    ensure!(by_token.id == "l2" && by_token.expires_at.timestamp() == day.timestamp(), "{by_token:?}");
    // Once l1 has expired, it neither counts nor stays.
    let later = soon + Duration::seconds(1);
    ensure!(
        store.create_shareable_links(&b, &[link("l5", day)], 2, later).await?,
        "an expired link leaves room"
    );
    ensure!(store.shareable_link("l1").await?.is_none(), "an expired link is forgotten");
    let gone = store.delete_shareable_links(&upper, &["l2".into(), "nope".into()]).await?;
    ensure!(gone == ["l2"], "only what was there: {gone:?}");
    ensure!(store.delete_shareable_links(&b, &["l2".into()]).await?.is_empty(), "deleted once");
    store.delete_bastion(&bastion).await?;
    ensure!(store.shareable_link("l5").await?.is_none(), "links go with their bastion");
    Ok(())
}
