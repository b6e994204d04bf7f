//! Why admission said no, without HTTP: the tunnel endpoints and the portal map a
//! [`DenialKind`] to their status codes.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_core::{Refusal, RefusalReason};
use rampart_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    /// The request itself is malformed.
    BadRequest,
    /// Who is asking could not be established.
    Unauthenticated,
    /// The policy refuses (roles, settings, network).
    Forbidden,
    /// The bastion, subscription or target does not exist.
    NotFound,
    /// The carrier does not fit the endpoint (HTTP/2 needed, say).
    CarrierNotSupported,
    /// The gateway takes no new sessions (draining).
    Unavailable,
    /// The target did not accept the connection.
    TargetUnreachable,
    /// The target did not answer in time.
    TargetTimeout,
    /// The gateway failed (its log says why; the message does not).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenialKind,
    /// A stable code (`RoleNotAssigned`, `TargetUnreachable`, …).
    pub code: String,
    /// What a user reads: the reason, naming the setting, network, port or role.
    pub message: String,
}

impl Denial {
    pub fn new(kind: DenialKind, code: impl Into<String>, message: impl Into<String>) -> Denial {
        Denial { kind, code: code.into(), message: message.into() }
    }

    pub fn bad_request(code: &str, message: impl std::fmt::Display) -> Denial {
        Denial::new(DenialKind::BadRequest, code, message.to_string())
    }

    /// Who asks is no longer known (a deleted user).
    pub fn unauthenticated(detail: impl Into<String>) -> Denial {
        Denial::new(DenialKind::Unauthenticated, "Unauthenticated", detail)
    }

    /// A policy refusal; not-found when every reason is a missing bastion or target.
    pub fn refused(refusal: &Refusal) -> Denial {
        let kind = if refusal.reasons().iter().all(|r| {
            matches!(
                r,
                RefusalReason::BastionNotFound { .. }
                    | RefusalReason::TargetNotFound { .. }
                    | RefusalReason::ShareableLinkNotFound
            )
        }) {
            DenialKind::NotFound
        } else if refusal.reasons().iter().any(|r| matches!(r, RefusalReason::Unauthenticated { .. })) {
            DenialKind::Unauthenticated
        } else {
            DenialKind::Forbidden
        };
        metrics::counter!("rampart_refusals_total", "reason" => refusal.code()).increment(1);
        Denial::new(kind, refusal.code(), format!("refused: {refusal}"))
    }

    pub fn shutting_down() -> Denial {
        Denial::new(
            DenialKind::Unavailable,
            "ShuttingDown",
            "the gateway is shutting down and takes no new connections; try again shortly",
        )
    }

    pub fn unreachable(addr: SocketAddr, e: &std::io::Error) -> Denial {
        Denial::new(
            DenialKind::TargetUnreachable,
            "TargetUnreachable",
            format!("target {addr} is not reachable: {e}"),
        )
    }

    pub fn timeout(addr: SocketAddr, after: Duration) -> Denial {
        Denial::new(
            DenialKind::TargetTimeout,
            "TargetTimeout",
            format!("target {addr} did not answer within {} s", after.as_secs()),
        )
    }

    pub fn subscription_not_found(id_or_name: &str) -> Denial {
        Denial::new(
            DenialKind::NotFound,
            "SubscriptionNotFound",
            format!("subscription '{id_or_name}' was not found; `rampart account list` shows yours"),
        )
    }

    pub fn internal(what: impl std::fmt::Display) -> Denial {
        tracing::error!(error = %what, "internal error");
        Denial::new(
            DenialKind::Internal,
            "InternalError",
            "the gateway failed to handle the request; see its log",
        )
    }

    /// A failure (the target or the gateway) rather than a refusal (the rules): audited as
    /// `failed`.
    pub fn is_failure(&self) -> bool {
        matches!(self.kind, DenialKind::TargetUnreachable | DenialKind::TargetTimeout | DenialKind::Internal)
    }
}

impl From<StoreError> for Denial {
    fn from(e: StoreError) -> Denial {
        match e {
            StoreError::NotFound(what) => {
                Denial::new(DenialKind::NotFound, "NotFound", format!("{what} was not found"))
            }
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "the store is unavailable");
                Denial::new(
                    DenialKind::Unavailable,
                    "StoreUnavailable",
                    "the gateway's database is unavailable; try again in a few seconds",
                )
            }
            other => Denial::internal(other),
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
