//! What a session is, in the domain's words: who asks ([`Identity`]), over what
//! ([`Protocol`]), and why it ended ([`EndReason`]). The gateway's admission service and
//! session lifecycle speak these types; the wire keeps its strings through serde.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a session carries. The wire names (`ssh`, `rdp`, `tcptunnel`) are what audit records,
/// the sessions API and metrics labels have always shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// A browser terminal: the gateway is the SSH client.
    #[serde(rename = "ssh")]
    Ssh,
    /// A browser desktop: the gateway is the RDP client.
    #[serde(rename = "rdp")]
    Rdp,
    /// A native tunnel: bytes of any TCP client, relayed (protocols v1, v2 and v3).
    #[serde(rename = "tcptunnel")]
    TcpTunnel,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Ssh, Protocol::Rdp, Protocol::TcpTunnel];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Rdp => "rdp",
            Protocol::TcpTunnel => "tcptunnel",
        }
    }

    /// The port a target serves this protocol on when the user names none.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Protocol::Ssh => Some(22),
            Protocol::Rdp => Some(3389),
            Protocol::TcpTunnel => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol '{0}' (ssh, rdp or tcptunnel)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProtocol(s.chars().take(32).collect()))
    }
}

/// What kind of principal an identity is: a user (local today; federated users join here) or
/// a service principal (automation's identity, az's `ad sp`). Every check that takes an
/// [`Identity`] sees them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IdentityKind {
    User,
    ServicePrincipal,
    /// A group: never signs in; its role assignments apply to its members.
    Group,
    /// Whoever holds a shareable link: never stored as a principal, has no role assignments;
    /// the link itself (its id is the identity's) is what allows its one machine.
    ShareableLink,
}

impl IdentityKind {
    /// The stored and wire name (`user`, `servicePrincipal`).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::User => "user",
            IdentityKind::ServicePrincipal => "servicePrincipal",
            IdentityKind::Group => "group",
            IdentityKind::ShareableLink => "shareableLink",
        }
    }

    pub fn parse(s: &str) -> Option<IdentityKind> {
        [IdentityKind::User, IdentityKind::ServicePrincipal, IdentityKind::Group]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Who is asking: the principal as the store knows it (its id, which role assignments name,
/// and its display name), never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub kind: IdentityKind,
}

impl Identity {
    pub fn user(id: impl Into<String>, name: impl Into<String>) -> Identity {
        Identity { id: id.into(), name: name.into(), kind: IdentityKind::User }
    }
}

/// Why a session ended. Its [`code`](EndReason::code) goes to the close record's
/// `reasonCode`, its text to `reason` and to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The user's side closed (the client, the browser, or the target's shell exiting).
    ClientClosed { detail: String },
    /// The target closed or broke the connection.
    TargetClosed { detail: String },
    /// No data for the bastion's idle timeout.
    IdleTimeout { limit_secs: u64 },
    /// The bastion's maximum session duration was reached.
    MaxDuration { limit_secs: u64 },
    /// An operator disconnected it.
    DisconnectedBy { by: String },
    /// The access it ran under was taken away.
    Revoked { detail: String },
    /// The gateway was shutting down and the drain time ran out.
    Drained,
    /// The node that served it is gone (its sessions are closed by another).
    NodeLost { node: String },
    /// The connection failed (the client vanished, a protocol error, …).
    Failed { detail: String },
}

impl EndReason {
    /// A stable code for the audit record.
    pub fn code(&self) -> &'static str {
        match self {
            EndReason::ClientClosed { .. } => "ClientClosed",
            EndReason::TargetClosed { .. } => "TargetClosed",
            EndReason::IdleTimeout { .. } => "IdleTimeout",
            EndReason::MaxDuration { .. } => "MaxSessionDuration",
            EndReason::DisconnectedBy { .. } => "Disconnected",
            EndReason::Revoked { .. } => "AccessRevoked",
            EndReason::Drained => "Drained",
            EndReason::NodeLost { .. } => "NodeLost",
            EndReason::Failed { .. } => "Failed",
        }
    }

    /// An ordinary end (recorded as `closed`); a failure is recorded as `failed`.
    pub fn is_clean(&self) -> bool {
        !matches!(self, EndReason::Failed { .. } | EndReason::NodeLost { .. })
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::ClientClosed { detail } | EndReason::TargetClosed { detail } => f.write_str(detail),
            EndReason::IdleTimeout { limit_secs } => {
                write!(f, "idle timeout: no data for {limit_secs} s (bastion setting)")
            }
            EndReason::MaxDuration { limit_secs } => {
                write!(f, "maximum session duration of {limit_secs} s reached (bastion setting)")
            }
            EndReason::DisconnectedBy { by } => write!(f, "disconnected by {by}"),
            EndReason::Revoked { detail } => write!(f, "access revoked: {detail}"),
            EndReason::Drained => f.write_str("the gateway is shutting down"),
            EndReason::NodeLost { node } => write!(f, "the gateway node {node} was lost"),
            EndReason::Failed { detail } => f.write_str(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_wire_names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(p.as_str().parse::<Protocol>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).ok(), Some(format!("\"{}\"", p.as_str())));
        }
        assert_eq!("RDP".parse::<Protocol>(), Ok(Protocol::Rdp));
        assert!("telnet".parse::<Protocol>().is_err());
    }

    #[test]
    fn end_reasons_keep_the_texts_clients_and_records_show() {
        assert_eq!(EndReason::DisconnectedBy { by: "admin".into() }.to_string(), "disconnected by admin");
        assert!(EndReason::IdleTimeout { limit_secs: 2 }.to_string().contains("idle timeout"));
        assert!(EndReason::MaxDuration { limit_secs: 3 }.to_string().contains("maximum session duration"));
        assert!(EndReason::Drained.to_string().contains("shutting down"));
        assert!(!EndReason::Failed { detail: "x".into() }.is_clean());
        assert!(EndReason::Drained.is_clean());
    }
}
