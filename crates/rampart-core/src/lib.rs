//! Rampart's domain core: the rules of the system, with no I/O and no async.
//!
//! Layout:
//! - [`activation`]: just-in-time access: eligible assignments and their activations.
//! - [`tier`]: bastion tiers (SKUs) and the features each one includes.
//! - [`bastion`]: a bastion's settings and the tier rules that constrain them.
//! - [`files`]: file transfer in the browser terminal: directions, size limit, one transfer's check.
//! - [`inventory`]: registered machines and their network interfaces.
//! - [`resource_id`]: ARM-style resource IDs (`/subscriptions/…/providers/…`).
//! - [`audit`]: audit entries (what happened, to whom, result, reason).
//! - [`rbac`]: scopes, roles, role assignments, and who may do what.
//! - [`policy`]: whether a tunnel to a target may be opened, with the reason when not.
//! - [`request`]: what a session asks for ([`SessionRequest`]), decided on at its start and
//!   again while it runs.
//! - [`shareable`]: shareable links, the one authorization that is not a role assignment.
//! - [`session`]: who asks ([`Identity`]), over what ([`Protocol`]), why a session ended.
//!
//! Everything the rules need from the outside world (the gateway's own endpoints, the
//! current settings) is passed in as values, so every decision is a pure function.

pub mod activation;
pub mod audit;
pub mod bastion;
pub mod files;
pub mod inventory;
pub mod policy;
pub mod rbac;
pub mod request;
pub mod resource_id;
pub mod session;
pub mod shareable;
pub mod tier;

pub use activation::{Activation, ActivationError, ActivationState, Eligibility};
pub use audit::{
    AuditEntry, AuditEvent, AuditResult, ChainBreak, ChainHead, chain_hash, verify_chain, verify_chains,
};
pub use bastion::{Bastion, BastionSettings, SecretUrl, SettingsError};
pub use files::{FileTransfer, TransferDirection};
pub use inventory::{Machine, NetworkInterface, OsType};
pub use policy::{
    ClientKind, GatewayEndpoints, Refusal, RefusalReason, TargetAuthorization, TargetKind, TargetRequest,
    authorize_target, parse_target_ip,
};
pub use rbac::{
    ConnectTarget, Principal, RoleAssignment, RoleDefinition, Scope, authorize_connect,
    leaves_scope_unmanaged,
};
pub use request::{RequestedTarget, SessionRequest};
pub use resource_id::{ResourceId, ResourceIdError, ResourceKind};
pub use session::{EndReason, Identity, IdentityKind, Protocol, UnknownProtocol};
pub use shareable::ShareableLink;
pub use tier::Tier;
