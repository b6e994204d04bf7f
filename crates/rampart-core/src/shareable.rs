//! Shareable links (Standard and Premium, as Azure's): a link to one machine through one
//! bastion that a person without an account opens, then signs in to the machine with its own
//! credentials. The link is the authorization (made by someone allowed to make it), so a
//! session through it is decided by these rules instead of role assignments; the bastion's
//! settings and network policy apply as to any browser session.

use chrono::{DateTime, Utc};

use crate::bastion::BastionSettings;
use crate::policy::{Refusal, RefusalReason};
use crate::resource_id::ResourceId;

/// At most this many links per bastion, as Azure.
pub const MAX_LINKS_PER_BASTION: usize = 500;
/// At most this many machines in one create or delete request, as Azure's 50 at a time.
pub const MAX_VMS_PER_REQUEST: usize = 50;
/// A link lasts this long unless its creator says otherwise.
pub const DEFAULT_LIFETIME_SECS: u64 = 24 * 3600;
/// And never longer than this.
pub const MAX_LIFETIME_SECS: u64 = 365 * 24 * 3600;

/// A link as the rules see it (never its token: only the store's hash of it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareableLink {
    pub id: String,
    pub bastion: ResourceId,
    /// The one machine it opens.
    pub target: ResourceId,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl ShareableLink {
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// Whether `requested` more links may be made on a bastion with these settings that has
/// `existing` unexpired ones: the tier, the setting, the limits.
pub fn check_create(settings: &BastionSettings, existing: usize, requested: usize) -> Result<(), Refusal> {
    if !settings.tier.includes_shareable_links() {
        return Err(Refusal::new(RefusalReason::TierLacksShareableLinks { tier: settings.tier }));
    }
    if !settings.enable_shareable_link {
        return Err(Refusal::new(RefusalReason::ShareableLinksDisabled));
    }
    if existing.saturating_add(requested) > MAX_LINKS_PER_BASTION {
        return Err(Refusal::new(RefusalReason::ShareableLinkLimit {
            limit: MAX_LINKS_PER_BASTION,
            existing,
        }));
    }
    Ok(())
}

/// Whether a session through `link` to `target` on `bastion` (with these settings) may start
/// or go on at `now`. Every reason is reported.
pub fn check_use(
    link: &ShareableLink,
    bastion: &ResourceId,
    settings: &BastionSettings,
    target: &ResourceId,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let mut reasons = Vec::new();
    if link.expired(now) {
        reasons.push(RefusalReason::ShareableLinkExpired { at: link.expires_at.to_rfc3339() });
    }
    if &link.bastion != bastion || &link.target != target {
        reasons.push(RefusalReason::ShareableLinkOtherTarget { target: link.target.to_string() });
    }
    if !settings.tier.includes_shareable_links() {
        reasons.push(RefusalReason::TierLacksShareableLinks { tier: settings.tier });
    } else if !settings.enable_shareable_link {
        reasons.push(RefusalReason::ShareableLinksDisabled);
    }
    Refusal::from_reasons(reasons).map_or(Ok(()), Err)
}

/// The lifetime asked for (ISO 8601, `PT4H`), within the bounds; `None`: the default.
pub fn lifetime_secs(asked: Option<&str>) -> Result<u64, String> {
    let Some(text) = asked.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_LIFETIME_SECS);
    };
    let secs = crate::activation::parse_duration(text).map_err(|e| e.to_string())?;
    if secs == 0 || secs > MAX_LIFETIME_SECS {
        return Err(format!("a link lasts from 1 second to 365 days (P365D); '{text}' is outside"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::Tier;

    fn settings(tier: Tier, on: bool) -> BastionSettings {
        BastionSettings { tier, enable_shareable_link: on, ..BastionSettings::new_default() }
    }

    fn vm(name: &str) -> ResourceId {
        ResourceId::vm("s", "g", name)
    }

    fn link(expires_in: i64) -> ShareableLink {
        let now = Utc::now();
        ShareableLink {
            id: "l1".into(),
            bastion: ResourceId::bastion("s", "g", "b"),
            target: vm("vm1"),
            created_by: "admin".into(),
            created_at: now,
            expires_at: now + chrono::Duration::seconds(expires_in),
        }
    }

    #[test]
    fn creating_needs_standard_and_the_setting_and_room() {
        let basic = check_create(&settings(Tier::Basic, false), 0, 1).expect_err("Basic has none");
        assert!(basic.to_string().contains("tier Basic"), "{basic}");
        let off = check_create(&settings(Tier::Standard, false), 0, 1).expect_err("setting off");
        assert_eq!(off.code(), "ShareableLinksDisabled");
        assert!(check_create(&settings(Tier::Premium, true), 499, 1).is_ok());
        let full = check_create(&settings(Tier::Standard, true), 499, 2).expect_err("501 > 500");
        assert!(full.to_string().contains("500"), "{full}");
    }

    #[test]
    fn a_link_opens_its_own_machine_until_it_expires() {
        let on = settings(Tier::Standard, true);
        let b = ResourceId::bastion("s", "g", "b");
        let now = Utc::now();
        assert!(check_use(&link(60), &b, &on, &vm("vm1"), now).is_ok());
        let other = check_use(&link(60), &b, &on, &vm("vm2"), now).expect_err("another VM");
        assert_eq!(other.code(), "ShareableLinkOtherTarget");
        let old = check_use(&link(60), &b, &on, &vm("vm1"), now + chrono::Duration::seconds(61))
            .expect_err("expired");
        assert_eq!(old.code(), "ShareableLinkExpired");
        let downgraded = check_use(&link(60), &b, &settings(Tier::Basic, true), &vm("vm1"), now)
            .expect_err("tier changed");
        assert!(downgraded.to_string().contains("tier Basic"), "{downgraded}");
    }

    #[test]
    fn lifetimes_have_a_default_and_bounds() {
        assert_eq!(lifetime_secs(None), Ok(DEFAULT_LIFETIME_SECS));
        assert_eq!(lifetime_secs(Some("PT4H")), Ok(4 * 3600));
        assert!(lifetime_secs(Some("P400D")).is_err());
        assert!(lifetime_secs(Some("PT0S")).is_err());
        assert!(lifetime_secs(Some("soon")).is_err());
    }
}
