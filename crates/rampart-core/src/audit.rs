//! Audit entries: what happened, to whom, with what result and why. Pure data; the store
//! appends them and the gateway writes one before any byte of a connection flows.

use chrono::{DateTime, Utc};

/// What kind of event an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    SignIn,
    TunnelRequest,
    ConnectionOpen,
    ConnectionClose,
    BastionChange,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::SignIn => "sign-in",
            AuditEvent::TunnelRequest => "tunnel-request",
            AuditEvent::ConnectionOpen => "connection-open",
            AuditEvent::ConnectionClose => "connection-close",
            AuditEvent::BastionChange => "bastion-change",
        }
    }

    pub fn parse(s: &str) -> Option<AuditEvent> {
        [
            AuditEvent::SignIn,
            AuditEvent::TunnelRequest,
            AuditEvent::ConnectionOpen,
            AuditEvent::ConnectionClose,
            AuditEvent::BastionChange,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// The outcome an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditResult {
    Allowed,
    Refused,
    /// Allowed, but the target could not be reached or the connection broke.
    Failed,
    /// A connection that ended; bytes and duration are filled in.
    Closed,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Allowed => "allowed",
            AuditResult::Refused => "refused",
            AuditResult::Failed => "failed",
            AuditResult::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<AuditResult> {
        [AuditResult::Allowed, AuditResult::Refused, AuditResult::Failed, AuditResult::Closed]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// One audit entry. `id` is assigned by the store when it is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: Option<i64>,
    pub time: DateTime<Utc>,
    pub event: AuditEvent,
    pub user: Option<String>,
    pub client_address: Option<String>,
    pub bastion_id: Option<String>,
    pub target_ip: Option<String>,
    pub target_port: Option<u16>,
    pub tunnel_id: Option<String>,
    pub connection_id: Option<String>,
    pub result: AuditResult,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub bytes_to_target: Option<u64>,
    pub bytes_from_target: Option<u64>,
    pub duration_ms: Option<u64>,
}

impl AuditEntry {
    /// An entry with only the required fields; the rest are set by the caller.
    pub fn new(time: DateTime<Utc>, event: AuditEvent, result: AuditResult) -> Self {
        AuditEntry {
            id: None,
            time,
            event,
            user: None,
            client_address: None,
            bastion_id: None,
            target_ip: None,
            target_port: None,
            tunnel_id: None,
            connection_id: None,
            result,
            reason_code: None,
            reason: None,
            bytes_to_target: None,
            bytes_from_target: None,
            duration_ms: None,
        }
    }
}
