//! Rampart's domain core: the rules of the system, with no I/O and no async.
//!
//! Layout:
//! - [`tier`]: bastion tiers (SKUs) and the features each one includes.
//! - [`bastion`]: a bastion's settings and the tier rules that constrain them.
//! - [`resource_id`]: ARM-style resource IDs (`/subscriptions/…/providers/…`).
//! - [`audit`]: audit entries (what happened, to whom, result, reason).
//! - [`policy`]: whether a tunnel to a target may be opened, with the reason when not.
//!
//! Everything the rules need from the outside world (the gateway's own endpoints, the
//! current settings) is passed in as values, so every decision is a pure function.

pub mod audit;
pub mod bastion;
pub mod policy;
pub mod resource_id;
pub mod tier;

pub use audit::{AuditEntry, AuditEvent, AuditResult};
pub use bastion::{Bastion, BastionSettings, SettingsError};
pub use policy::{
    GatewayEndpoints, Refusal, RefusalReason, TargetAuthorization, TargetKind, TargetRequest,
    authorize_target, parse_target_ip,
};
pub use resource_id::{ResourceId, ResourceIdError};
pub use tier::Tier;
