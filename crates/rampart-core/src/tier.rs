//! Bastion tiers, as Azure documents them (bastion-sku-comparison).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A bastion's tier (Azure calls it the SKU). Features grow with the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    Developer,
    Basic,
    Standard,
    Premium,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Developer, Tier::Basic, Tier::Standard, Tier::Premium];

    /// Native client support (`rampart ssh|rdp|tunnel`): Standard and Premium.
    pub fn includes_native_client(self) -> bool {
        self >= Tier::Standard
    }

    /// Connecting by private IP address: Standard and Premium.
    pub fn includes_ip_connect(self) -> bool {
        self >= Tier::Standard
    }

    /// Ports other than 22 and 3389: Standard and Premium. Azure also forbids custom ports
    /// on IP-based connections; Rampart allows them wherever the tier does.
    pub fn includes_custom_ports(self) -> bool {
        self >= Tier::Standard
    }

    /// Session recording: Premium only, as in Azure.
    pub fn includes_session_recording(self) -> bool {
        self >= Tier::Premium
    }

    /// Turning copy and paste off for browser sessions: Standard and Premium (copy and
    /// paste itself is in every tier).
    pub fn includes_disable_copy_paste(self) -> bool {
        self >= Tier::Standard
    }

    /// Shareable links (a link to one VM for someone without an account): Standard and
    /// Premium, as in Azure.
    pub fn includes_shareable_links(self) -> bool {
        self >= Tier::Standard
    }

    /// File transfer in browser sessions (Azure's file copy): Standard and Premium.
    pub fn includes_file_transfer(self) -> bool {
        self >= Tier::Standard
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Developer => "Developer",
            Tier::Basic => "Basic",
            Tier::Standard => "Standard",
            Tier::Premium => "Premium",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier '{0}': expected Developer, Basic, Standard or Premium")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    /// Case-insensitive, like Azure's CLI.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownTier(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively() {
        assert_eq!("standard".parse::<Tier>(), Ok(Tier::Standard));
        assert_eq!("PREMIUM".parse::<Tier>(), Ok(Tier::Premium));
        assert!("gold".parse::<Tier>().is_err());
    }

    #[test]
    fn features_follow_the_tier() {
        assert!(!Tier::Basic.includes_native_client());
        assert!(!Tier::Developer.includes_ip_connect());
        assert!(Tier::Standard.includes_custom_ports());
        assert!(Tier::Premium.includes_native_client());
    }
}
