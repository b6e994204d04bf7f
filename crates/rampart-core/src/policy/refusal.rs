//! Why a request was refused: each reason with a stable code and words that name the tier,
//! setting, network or port at fault, and every reason of one refusal together.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::tier::Tier;

/// One reason a connection is refused. Its [`code`](RefusalReason::code) is stable (audit,
/// API); its message names the tier, setting, network or port at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// Not signed in, or a bad, expired or forged token.
    Unauthenticated {
        detail: String,
    },
    BastionNotFound {
        bastion: String,
    },
    TierLacksNativeClient {
        tier: Tier,
    },
    NativeClientDisabled,
    TierLacksIpConnect {
        tier: Tier,
    },
    IpConnectDisabled,
    PortNotAllowed {
        port: u16,
        tier: Tier,
    },
    OutsideReachableNetworks {
        ip: IpAddr,
    },
    GatewayItself {
        addr: SocketAddr,
    },
    /// Loopback, link-local or metadata address not explicitly covered by a reachable network.
    SpecialAddress {
        ip: IpAddr,
        kind: &'static str,
    },
    /// Unspecified, multicast or broadcast: never a target.
    ForbiddenAddress {
        ip: IpAddr,
        kind: &'static str,
    },
    /// The target address is not a plain IP address.
    BadAddress {
        input: String,
    },
    /// No role assignment allows the action at the scope.
    MissingPermission {
        user: String,
        action: String,
        scope: String,
        suggestion: &'static str,
    },
    /// Connecting needs read access (Reader) on this resource.
    MissingReader {
        user: String,
        what: &'static str,
        id: String,
    },
    /// The role assignment on the bastion allows IP-based connections elsewhere only.
    ConditionNotMet {
        ip: IpAddr,
        port: u16,
        allowed: String,
    },
    /// The target resource is not registered (or malformed).
    TargetNotFound {
        id: String,
    },
    /// The bastion records sessions, and a raw tunnel's bytes cannot be recorded.
    RecordingRequired,
    /// Only an eligible (just-in-time) assignment would allow it: activate it first. The
    /// detail names the role, the scope and the command (or the activation that just ended).
    ActivationRequired {
        detail: String,
    },
    /// An activation step refused (not eligible, not an approver, the requester approving).
    ActivationNotAllowed {
        detail: String,
    },
    TierLacksShareableLinks {
        tier: Tier,
    },
    ShareableLinksDisabled,
    ShareableLinkLimit {
        limit: usize,
        existing: usize,
    },
    /// The link is unknown: never made, deleted, or its bastion deleted.
    ShareableLinkNotFound,
    ShareableLinkExpired {
        at: String,
    },
    /// A link opens its one machine through its one bastion, nothing else.
    ShareableLinkOtherTarget {
        target: String,
    },
    TierLacksFileTransfer {
        tier: Tier,
    },
    /// The bastion's `--file-transfer` setting leaves this direction out.
    FileTransferOff {
        direction: &'static str,
    },
    FileTooLarge {
        size: u64,
        limit: u64,
    },
}

impl RefusalReason {
    pub fn code(&self) -> &'static str {
        match self {
            RefusalReason::Unauthenticated { .. } => "Unauthenticated",
            RefusalReason::BastionNotFound { .. } => "BastionNotFound",
            RefusalReason::TierLacksNativeClient { .. } => "TierLacksNativeClient",
            RefusalReason::NativeClientDisabled => "NativeClientDisabled",
            RefusalReason::TierLacksIpConnect { .. } => "TierLacksIpConnect",
            RefusalReason::IpConnectDisabled => "IpConnectDisabled",
            RefusalReason::PortNotAllowed { .. } => "PortNotAllowed",
            RefusalReason::OutsideReachableNetworks { .. } => "OutsideReachableNetworks",
            RefusalReason::GatewayItself { .. } => "GatewayItself",
            RefusalReason::SpecialAddress { .. } => "SpecialAddress",
            RefusalReason::ForbiddenAddress { .. } => "ForbiddenAddress",
            RefusalReason::BadAddress { .. } => "BadAddress",
            RefusalReason::MissingPermission { .. } => "MissingPermission",
            RefusalReason::MissingReader { .. } => "MissingReader",
            RefusalReason::ConditionNotMet { .. } => "ConditionNotMet",
            RefusalReason::TargetNotFound { .. } => "TargetNotFound",
            RefusalReason::ActivationRequired { .. } => "ActivationRequired",
            RefusalReason::RecordingRequired => "RecordingRequired",
            RefusalReason::ActivationNotAllowed { .. } => "ActivationNotAllowed",
            RefusalReason::TierLacksShareableLinks { .. } => "TierLacksShareableLinks",
            RefusalReason::ShareableLinksDisabled => "ShareableLinksDisabled",
            RefusalReason::ShareableLinkLimit { .. } => "ShareableLinkLimit",
            RefusalReason::ShareableLinkNotFound => "ShareableLinkNotFound",
            RefusalReason::ShareableLinkExpired { .. } => "ShareableLinkExpired",
            RefusalReason::ShareableLinkOtherTarget { .. } => "ShareableLinkOtherTarget",
            RefusalReason::TierLacksFileTransfer { .. } => "TierLacksFileTransfer",
            RefusalReason::FileTransferOff { .. } => "FileTransferOff",
            RefusalReason::FileTooLarge { .. } => "FileTooLarge",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Unauthenticated { detail } => write!(f, "not signed in: {detail}"),
            RefusalReason::BastionNotFound { bastion } => {
                write!(f, "bastion {bastion} was not found")
            }
            RefusalReason::TierLacksNativeClient { tier } => {
                write!(f, "tier {tier} does not include native client support (needs Standard or Premium)")
            }
            RefusalReason::NativeClientDisabled => {
                write!(f, "native client support is turned off on this bastion (setting --enable-tunneling)")
            }
            RefusalReason::TierLacksIpConnect { tier } => {
                write!(f, "tier {tier} does not include IP-based connection (needs Standard or Premium)")
            }
            RefusalReason::IpConnectDisabled => {
                write!(f, "IP-based connection is turned off on this bastion (setting --enable-ip-connect)")
            }
            RefusalReason::PortNotAllowed { port, tier } => write!(
                f,
                "port {port} is a custom port, and tier {tier} does not include custom ports (only 22 and 3389)"
            ),
            RefusalReason::OutsideReachableNetworks { ip } => write!(
                f,
                "target {ip} is outside the bastion's reachable networks (setting --reachable-networks)"
            ),
            RefusalReason::GatewayItself { addr } => {
                write!(f, "target {addr} is the gateway's own listening socket")
            }
            RefusalReason::SpecialAddress { ip, kind } => write!(
                f,
                "target {ip} is a {kind} address, allowed only when a reachable network names that range explicitly"
            ),
            RefusalReason::ForbiddenAddress { ip, kind } => {
                write!(f, "target {ip} is a {kind} address, never a valid target")
            }
            RefusalReason::BadAddress { input } => write!(
                f,
                "target address '{input}' is not an IP address in standard notation (e.g. 10.0.0.4 or fd00::4)"
            ),
            RefusalReason::MissingPermission { user, action, scope, suggestion } => write!(
                f,
                "role: no role assignment of {user} allows {action} at {scope} (it needs e.g. {suggestion} there or above)"
            ),
            RefusalReason::MissingReader { user, what, id } => {
                write!(f, "role: {user} has no Reader role (or any role that reads it) on the {what} {id}")
            }
            RefusalReason::ConditionNotMet { ip, port, allowed } => write!(
                f,
                "role: the role assignment on the bastion allows IP-based connections only to {allowed}; {ip} port {port} is outside"
            ),
            RefusalReason::TargetNotFound { id } => {
                write!(f, "target {id} is not registered in the inventory")
            }
            RefusalReason::RecordingRequired => f.write_str(
                "session recording is on for this bastion: raw tunnels cannot be recorded \
                 (use the browser terminal, or an operator allows them unrecorded with --allow-unrecorded-tunnels true)",
            ),
            RefusalReason::ActivationRequired { detail } | RefusalReason::ActivationNotAllowed { detail } => {
                f.write_str(detail)
            }
            RefusalReason::TierLacksShareableLinks { tier } => {
                write!(f, "tier {tier} does not include shareable links (needs Standard or Premium)")
            }
            RefusalReason::ShareableLinksDisabled => {
                f.write_str("shareable links are turned off on this bastion (setting --enable-shareable-link)")
            }
            RefusalReason::ShareableLinkLimit { limit, existing } => write!(
                f,
                "a bastion has at most {limit} shareable links and this one has {existing}; delete some first"
            ),
            RefusalReason::ShareableLinkNotFound => {
                f.write_str("this shareable link does not exist: it was deleted, or never made")
            }
            RefusalReason::ShareableLinkExpired { at } => write!(f, "this shareable link expired at {at}"),
            RefusalReason::ShareableLinkOtherTarget { target } => {
                write!(f, "this shareable link opens only {target}")
            }
            RefusalReason::TierLacksFileTransfer { tier } => {
                write!(f, "tier {tier} does not include file transfer (needs Standard or Premium)")
            }
            RefusalReason::FileTransferOff { direction } => write!(
                f,
                "file {direction} is turned off on this bastion (setting --file-transfer)"
            ),
            RefusalReason::FileTooLarge { size, limit } => write!(
                f,
                "the file has {size} bytes, more than this bastion's limit of {limit} bytes (setting --file-transfer-max-mb)"
            ),
        }
    }
}

/// Every reason a request was refused (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    reasons: Vec<RefusalReason>,
}

impl Refusal {
    pub fn new(reason: RefusalReason) -> Self {
        Refusal { reasons: vec![reason] }
    }

    /// A refusal with these reasons, or `None` if there are none.
    pub fn from_reasons(reasons: Vec<RefusalReason>) -> Option<Self> {
        (!reasons.is_empty()).then_some(Refusal { reasons })
    }

    pub fn reasons(&self) -> &[RefusalReason] {
        &self.reasons
    }

    /// The codes of all reasons, comma-separated (for audit records and API errors).
    pub fn code(&self) -> String {
        let codes: Vec<&str> = self.reasons.iter().map(RefusalReason::code).collect();
        codes.join(",")
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl From<RefusalReason> for Refusal {
    fn from(reason: RefusalReason) -> Self {
        Refusal::new(reason)
    }
}
