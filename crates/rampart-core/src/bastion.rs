//! A bastion's settings and the tier rules that constrain them.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// What an operator configures on a bastion. Applied to the next connection at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BastionSettings {
    pub tier: Tier,
    /// "Native client support" (`enableTunneling` in Azure).
    pub enable_tunneling: bool,
    /// "IP-based connection" (`enableIpConnect` in Azure).
    pub enable_ip_connect: bool,
    /// The networks the bastion can reach: its VNet, peered networks, on-premises ranges.
    /// Deny by default: an empty list reaches nothing.
    pub reachable_networks: Vec<IpNet>,
    /// End a session with no data either way for this many seconds.
    pub idle_timeout_secs: Option<u64>,
    /// End a session this many seconds after it started.
    pub max_session_secs: Option<u64>,
    /// "Disable copy/paste" for browser sessions (`disableCopyPaste` in Azure): no text
    /// crosses between the browser's clipboard and the remote machine's either way.
    pub disable_copy_paste: bool,
    /// "Shareable link" (`enableShareableLink` in Azure; Standard and Premium): links to one
    /// VM that people without an account open.
    pub enable_shareable_link: bool,
    /// File transfer in browser terminals, by direction (Azure's `enableFileCopy`; Standard and
    /// Premium). Off by default.
    pub file_transfer: crate::files::FileTransfer,
    /// The largest file one transfer may move; `None`: no limit (files stream, whatever their size).
    pub file_transfer_max_bytes: Option<u64>,
    /// Record the sessions the gateway terminates (browser terminals) (Premium).
    pub session_recording: bool,
    /// With recording on, let raw tunnels through unrecorded instead of refusing them.
    pub allow_unrecorded_tunnels: bool,
    /// Where recordings go: an Azure Blob container's SAS URL; `None` for a directory under
    /// the data directory. A credential (its `sig`): never shown whole, never logged.
    pub recording_storage_url: Option<SecretUrl>,
    /// Recordings older than this many days are deleted; `None` keeps them.
    pub recording_retention_days: Option<u32>,
}

impl BastionSettings {
    /// The settings of a new bastion: Standard, native client on, IP-based connection off,
    /// no reachable networks.
    pub fn new_default() -> Self {
        BastionSettings {
            tier: Tier::Standard,
            enable_tunneling: true,
            enable_ip_connect: false,
            reachable_networks: Vec::new(),
            idle_timeout_secs: None,
            max_session_secs: None,
            disable_copy_paste: false,
            enable_shareable_link: false,
            file_transfer: crate::files::FileTransfer::NONE,
            file_transfer_max_bytes: None,
            session_recording: false,
            allow_unrecorded_tunnels: false,
            recording_storage_url: None,
            recording_retention_days: None,
        }
    }

    /// Refuses a combination the tier does not include, naming the tier.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.enable_tunneling && !self.tier.includes_native_client() {
            return Err(SettingsError::TierLacksFeature {
                tier: self.tier,
                feature: "native client support (--enable-tunneling)",
            });
        }
        if self.enable_ip_connect && !self.tier.includes_ip_connect() {
            return Err(SettingsError::TierLacksFeature {
                tier: self.tier,
                feature: "IP-based connection (--enable-ip-connect)",
            });
        }
        if self.session_recording && !self.tier.includes_session_recording() {
            return Err(SettingsError::PremiumOnly {
                tier: self.tier,
                feature: "session recording (--enable-session-recording)",
            });
        }
        if self.recording_retention_days == Some(0) {
            return Err(SettingsError::ZeroRetention);
        }
        if self.disable_copy_paste && !self.tier.includes_disable_copy_paste() {
            return Err(SettingsError::TierLacksFeature {
                tier: self.tier,
                feature: "turning copy and paste off (--disable-copy-paste)",
            });
        }
        if self.file_transfer.any() && !self.tier.includes_file_transfer() {
            return Err(SettingsError::TierLacksFeature {
                tier: self.tier,
                feature: "file transfer (--file-transfer)",
            });
        }
        if self.enable_shareable_link && !self.tier.includes_shareable_links() {
            return Err(SettingsError::TierLacksFeature {
                tier: self.tier,
                feature: "shareable links (--enable-shareable-link)",
            });
        }
        Ok(())
    }
}

/// A URL whose query is a credential (an Azure SAS token's `sig`): `Debug` and `Display`
/// show it without its query, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The whole URL, credential included: for the one call that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its query (`…?<hidden>` when it had one).
    pub fn redacted(&self) -> String {
        match self.0.split_once('?') {
            Some((base, _)) => format!("{base}?<hidden>"),
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "tier {tier} does not include {feature}; it needs tier Standard or Premium (or turn the feature off)"
    )]
    TierLacksFeature { tier: Tier, feature: &'static str },
    #[error("tier {tier} does not include {feature}; it needs tier Premium (or turn the feature off)")]
    PremiumOnly { tier: Tier, feature: &'static str },
    #[error("a retention of 0 days would delete every recording as it ends; give 1 or more days")]
    ZeroRetention,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_urls_credential_is_never_shown() {
        let url = SecretUrl::new("https://acct.blob.core.windows.net/rec?sv=2022-11-02&sig=c2VjcmV0");
        for shown in [format!("{url}"), format!("{url:?}"), url.redacted()] {
            assert!(!shown.contains("sig") && shown.starts_with("https://acct.blob"), "{shown}");
        }
        assert!(url.expose().contains("sig="));
    }

    #[test]
    fn default_bastion_is_valid_and_reaches_nothing() {
        let s = BastionSettings::new_default();
        assert_eq!(s.validate(), Ok(()));
        assert!(s.reachable_networks.is_empty());
    }

    #[test]
    fn basic_tier_with_native_client_is_refused_naming_the_tier() {
        let s = BastionSettings { tier: Tier::Basic, ..BastionSettings::new_default() };
        let err = s.validate().expect_err("Basic has no native client");
        assert!(err.to_string().contains("tier Basic"), "{err}");
    }

    #[test]
    fn basic_tier_without_features_is_valid() {
        let s = BastionSettings {
            tier: Tier::Basic,
            enable_tunneling: false,
            enable_ip_connect: false,
            reachable_networks: vec![],
            idle_timeout_secs: None,
            max_session_secs: None,
            disable_copy_paste: false,
            enable_shareable_link: false,
            file_transfer: crate::files::FileTransfer::NONE,
            file_transfer_max_bytes: None,
            session_recording: false,
            allow_unrecorded_tunnels: false,
            recording_storage_url: None,
            recording_retention_days: None,
        };
        assert_eq!(s.validate(), Ok(()));
        let recording = BastionSettings { tier: Tier::Standard, session_recording: true, ..s.clone() };
        let err = recording.validate().expect_err("recording is Premium's");
        assert!(err.to_string().contains("needs tier Premium"), "{err}");
        let premium = BastionSettings { tier: Tier::Premium, ..recording };
        assert_eq!(premium.validate(), Ok(()));
        let no_clipboard = BastionSettings { disable_copy_paste: true, ..s };
        let err = no_clipboard.validate().expect_err("Basic cannot turn copy and paste off");
        assert!(
            err.to_string().contains("tier Basic") && err.to_string().contains("copy and paste"),
            "{err}"
        );
    }
}

/// A bastion resource: its ID and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bastion {
    pub id: crate::ResourceId,
    pub settings: BastionSettings,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}
