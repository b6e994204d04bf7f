//! The admission service: the one path by which any session (a tunnelled connection of any
//! protocol version, a browser terminal, a browser desktop) gets to its target.
//!
//! Input: an [`Identity`], a bastion, a requested [`Target`] and port, a [`Protocol`], the
//! client's address. [`AdmissionService::authorize`] decides (draining, the identity's role
//! assignments, the bastion's current settings, the network policy) and yields the
//! [`TargetAuthorization`] that `rampart-core` alone can build; [`AdmissionService::dial`]
//! reaches the target with it; [`AdmissionService::admit`] does both and starts the session in
//! the lifecycle ([`crate::lifecycle`]), so the result, an [`Admission`], holds the
//! authorization, the dialled target and a session whose open record is durable. Every
//! refusal is a [`Denial`] naming its reason, recorded by [`AdmissionService::refuse`].
//!
//! It knows no HTTP: the tunnel endpoints and the portal turn a [`Denial`] into their own
//! answers.

mod denial;
mod jit;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart_core::rbac::builtin_roles;
use rampart_core::{
    AuditEntry, AuditResult, ConnectTarget, EndReason, GatewayEndpoints, IdentityKind, Machine, Principal,
    Refusal, RefusalReason, ResourceId, ResourceKind, RoleDefinition, TargetAuthorization, TargetKind,
    TargetRequest, authorize_connect, authorize_target,
};
use rampart_store::Store;
use tokio::net::TcpStream;

pub use denial::{Denial, DenialKind};
pub use jit::{assignments_of, eligible_of, hint as activation_hint};
/// The target as the user named it ([`rampart_core::RequestedTarget`]).
pub use rampart_core::RequestedTarget as Target;
/// What a session asks for ([`rampart_core::SessionRequest`]).
pub use rampart_core::SessionRequest as Request;

use crate::lifecycle::{LiveSession, NewSession, Sessions};

/// An admitted session: authorized, its target dialled, its open record durable, listed.
pub struct Admission {
    pub authorization: TargetAuthorization,
    pub target: TcpStream,
    pub session: LiveSession,
}

pub struct AdmissionService {
    store: Arc<dyn Store>,
    sessions: Arc<Sessions>,
    endpoints: GatewayEndpoints,
    connect_timeout: Duration,
    draining: Arc<AtomicBool>,
    /// Moves on with every change to authorization inputs this node learns of (before the
    /// live sessions are decided on again): a session admitted while one happened is decided
    /// on again once it is listed, so none slips between a decision and the pass.
    changes: AtomicU64,
}

impl AdmissionService {
    pub fn new(
        store: Arc<dyn Store>,
        sessions: Arc<Sessions>,
        endpoints: GatewayEndpoints,
        connect_timeout: Duration,
        draining: Arc<AtomicBool>,
    ) -> AdmissionService {
        AdmissionService { store, sessions, endpoints, connect_timeout, draining, changes: AtomicU64::new(0) }
    }

    /// Set when the gateway drains: nothing new is admitted.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Refused while draining, with the reason.
    pub fn check_not_draining(&self) -> Result<(), Denial> {
        if self.draining() { Err(Denial::shutting_down()) } else { Ok(()) }
    }

    /// Roles first (who may reach what), then the bastion's current settings and the network
    /// policy (what this bastion may reach).
    pub async fn authorize(&self, req: &Request) -> Result<TargetAuthorization, Denial> {
        self.check_not_draining()?;
        self.decide(req).await
    }

    /// The decision itself, as the store is now (draining aside).
    async fn decide(&self, req: &Request) -> Result<TargetAuthorization, Denial> {
        let Some(bastion) = self.store.bastion(&req.bastion).await? else {
            return Err(Denial::refused(&Refusal::new(RefusalReason::BastionNotFound {
                bastion: req.bastion.to_string(),
            })));
        };
        let ip = req.target.ip();
        if req.identity.kind == IdentityKind::ShareableLink {
            // The link is the authorization: no role assignments.
            self.check_link(req, &bastion.settings).await?;
        } else {
            let assignments = assignments_of(self.store.as_ref(), &req.identity.id).await?;
            let roles = all_roles(self.store.as_ref()).await?;
            let principal = Principal { name: &req.identity.name, assignments: &assignments, roles: &roles };
            let target = match &req.target {
                Target::Machine(m) => ConnectTarget::Resource { machine: &m.id, nic: &m.nic.id },
                Target::Ip(_) => ConnectTarget::Ip { ip, port: req.port },
            };
            if let Err(refusal) = authorize_connect(&principal, &req.bastion, target) {
                return Err(self
                    .refusal_or_activation_hint(req, &assignments, &roles, target, refusal)
                    .await?);
            }
        }
        let request = TargetRequest {
            settings: &bastion.settings,
            client: req.client_kind,
            kind: match req.target {
                Target::Ip(_) => TargetKind::IpAddress,
                Target::Machine(_) => TargetKind::Resource,
            },
            ip,
            port: req.port,
        };
        authorize_target(&request, &self.endpoints).map_err(|r| Denial::refused(&r))
    }

    /// A shareable link's session: the link still exists, has not expired, and opens this
    /// machine through this bastion, whose tier and setting still allow links.
    async fn check_link(
        &self,
        req: &Request,
        settings: &rampart_core::BastionSettings,
    ) -> Result<(), Denial> {
        let refused = |reason| Denial::refused(&Refusal::new(reason));
        let Some(record) = self.store.shareable_link(&req.identity.id).await? else {
            return Err(refused(RefusalReason::ShareableLinkNotFound));
        };
        let link = crate::shareable::from_record(&record).map_err(Denial::internal)?;
        let Target::Machine(machine) = &req.target else {
            return Err(refused(RefusalReason::ShareableLinkOtherTarget { target: link.target.to_string() }));
        };
        rampart_core::shareable::check_use(&link, &req.bastion, settings, &machine.id, chrono::Utc::now())
            .map_err(|r| Denial::refused(&r))
    }

    /// The refusal, or, when an eligible assignment would allow the request, the refusal that
    /// names it and how to activate it (or which activation just ended).
    async fn refusal_or_activation_hint(
        &self,
        req: &Request,
        assignments: &[rampart_core::RoleAssignment],
        roles: &[RoleDefinition],
        target: ConnectTarget<'_>,
        refusal: Refusal,
    ) -> Result<Denial, Denial> {
        let eligible = jit::eligible_of(self.store.as_ref(), &req.identity.id).await?;
        if eligible.is_empty() {
            return Ok(Denial::refused(&refusal));
        }
        let mut with: Vec<_> = assignments.to_vec();
        with.extend(eligible.iter().cloned());
        let principal = Principal { name: &req.identity.name, assignments: &with, roles };
        if authorize_connect(&principal, &req.bastion, target).is_err() {
            return Ok(Denial::refused(&refusal));
        }
        let detail = jit::hint(self.store.as_ref(), &req.identity.id, &eligible).await?;
        Ok(Denial::refused(&Refusal::new(RefusalReason::ActivationRequired { detail })))
    }

    /// Tells the service that authorization inputs changed (before the pass over the live
    /// sessions that follows).
    pub fn note_change(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// A mark to hand to [`Self::recheck_if_changed`] once the session decided on now is listed.
    pub fn change_mark(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// If anything changed since `mark` (taken before the session's decision), decides again on
    /// this one, now listed, session: a change whose pass ran before it was listed would miss it.
    pub async fn recheck_if_changed(&self, mark: u64, session: &crate::lifecycle::Session) {
        if self.change_mark() == mark {
            return;
        }
        if let Err(denial) = self.still_allowed(&session.request, &mut HashMap::new()).await
            && ends_sessions(&denial)
        {
            tracing::warn!(session = %session.id, reason = %denial.message, "access changed while the session started; ending it");
            session.stop(EndReason::Revoked { detail: denial.message });
        }
    }

    /// Decides again on every live session's request, as the store is now, and stops those no
    /// longer allowed with `AccessRevoked` naming why (a role assignment removed, a bastion
    /// setting changed, the bastion, machine or user deleted); returns how many it stopped.
    /// A store that cannot be read stops nothing: live sessions never depend on the database.
    pub async fn reauthorize_live(&self) -> usize {
        self.reauthorize_where(|_| true).await
    }

    /// [`Self::reauthorize_live`] for the sessions opened through shareable links: their links
    /// expire without any write.
    pub async fn reauthorize_links(&self) -> usize {
        self.reauthorize_where(|r| r.identity.kind == IdentityKind::ShareableLink).await
    }

    async fn reauthorize_where(&self, which: impl Fn(&Request) -> bool) -> usize {
        let mut users: HashMap<String, bool> = HashMap::new();
        let mut stopped = 0;
        for session in self.sessions.all() {
            if session.end_reason().is_some() || !which(&session.request) {
                continue;
            }
            match self.still_allowed(&session.request, &mut users).await {
                Ok(()) => {}
                Err(denial) if ends_sessions(&denial) => {
                    tracing::warn!(session = %session.id, user = %session.user, reason = %denial.message,
                        "a live session is no longer allowed; ending it");
                    if session.stop(EndReason::Revoked { detail: denial.message }) {
                        stopped += 1;
                    }
                }
                Err(denial) => {
                    tracing::debug!(session = %session.id, reason = %denial.message,
                        "cannot decide again on a live session now; it goes on");
                }
            }
        }
        stopped
    }

    /// The user still exists, the machine is still registered, and [`Self::decide`] allows it.
    async fn still_allowed(&self, req: &Request, users: &mut HashMap<String, bool>) -> Result<(), Denial> {
        // A link is no principal: its existence is part of the decision.
        let link = req.identity.kind == IdentityKind::ShareableLink;
        let exists = link
            || match users.get(&req.identity.id) {
                Some(known) => *known,
                None => {
                    let known = self.store.user_by_id(&req.identity.id).await?.is_some();
                    users.insert(req.identity.id.clone(), known);
                    known
                }
            };
        if !exists {
            return Err(Denial::unauthenticated(format!(
                "the user '{}' no longer exists",
                req.identity.name
            )));
        }
        let now = match &req.target {
            Target::Machine(m) => {
                let Some(machine) = self.store.machine(&m.id).await? else {
                    return Err(Denial::refused(&Refusal::new(RefusalReason::TargetNotFound {
                        id: m.id.to_string(),
                    })));
                };
                // The live connection goes to the address it was admitted to.
                if machine.nic.private_ip != m.nic.private_ip {
                    return Err(Denial::refused(&Refusal::new(RefusalReason::TargetNotFound {
                        id: format!("{} at {} (its address changed)", m.id, m.nic.private_ip),
                    })));
                }
                Request { target: Target::Machine(Box::new(machine)), ..req.clone() }
            }
            Target::Ip(_) => req.clone(),
        };
        self.decide(&now).await.map(|_| ())
    }

    /// Dials an authorized target within the connect timeout.
    pub async fn dial(&self, authorization: &TargetAuthorization) -> Result<TcpStream, Denial> {
        let addr = authorization.addr();
        let target = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Denial::unreachable(addr, &e)),
            Err(_) => return Err(Denial::timeout(addr, self.connect_timeout)),
        };
        // Each message is written at once; Nagle would only add latency.
        target.set_nodelay(true).ok();
        Ok(target)
    }

    /// Authorizes, dials and starts the session (open record, then listed). `entry` carries
    /// what the caller already knows (connection and tunnel IDs, user agent); a refusal is
    /// recorded in it and returned.
    pub async fn admit(
        &self,
        req: Request,
        mut entry: AuditEntry,
        since: Instant,
    ) -> Result<Admission, Denial> {
        req.describe(&mut entry);
        let mark = self.change_mark();
        let authorization = match self.authorize(&req).await {
            Ok(a) => a,
            Err(denial) => return Err(self.refuse(entry, denial).await),
        };
        let target = match self.dial(&authorization).await {
            Ok(t) => t,
            Err(denial) => return Err(self.refuse(entry, denial).await),
        };
        let addr = authorization.addr();
        let new = NewSession {
            id: entry.connection_id.clone().unwrap_or_default(),
            user: req.identity.name.clone(),
            client: req.client.to_string(),
            bastion_id: req.bastion.to_string(),
            protocol: req.protocol,
            target_ip: addr.ip().to_string(),
            target_port: addr.port(),
            target_resource_id: entry.target_resource_id.clone(),
            admission_began: Some(since),
            request: req,
        };
        let session = self.sessions.start(entry, new).await.map_err(Denial::from)?;
        self.recheck_if_changed(mark, &session.session).await;
        Ok(Admission { authorization, target, session })
    }

    /// Records a refusal (or failure) and returns it. If the audit record cannot be written,
    /// the answer is an internal error: nothing proceeds unaudited.
    pub async fn refuse(&self, mut entry: AuditEntry, denial: Denial) -> Denial {
        entry.result = if denial.is_failure() { AuditResult::Failed } else { AuditResult::Refused };
        entry.reason_code = Some(denial.code.clone());
        entry.reason = Some(denial.message.clone());
        match self.store.append_audit(&entry).await {
            Ok(_) => denial,
            Err(e) => Denial::internal(e),
        }
    }

    /// Parses a bastion resource ID; its subscription may be given by name.
    pub async fn resolve_bastion(&self, raw: &str) -> Result<ResourceId, Denial> {
        let mut id = ResourceId::from_str(raw).map_err(|e| Denial::bad_request("InvalidResourceId", e))?;
        if !id.is_bastion() {
            return Err(Denial::bad_request(
                "InvalidResourceId",
                format!(
                    "'{raw}' is not a bastion (expected …/providers/Microsoft.Network/bastionHosts/NAME)"
                ),
            ));
        }
        id.subscription = self.resolve_subscription(&id.subscription).await?;
        Ok(id)
    }

    /// Resolves a VM or scale-set instance ID to the registered machine.
    pub async fn resolve_machine(&self, raw: &str) -> Result<Machine, Denial> {
        let mut id = ResourceId::from_str(raw).map_err(|e| Denial::bad_request("InvalidResourceId", e))?;
        if !matches!(id.kind(), ResourceKind::VirtualMachine | ResourceKind::ScaleSetInstance) {
            return Err(Denial::bad_request(
                "InvalidResourceId",
                format!("'{raw}' is not a virtual machine or a scale-set instance"),
            ));
        }
        id.subscription = self.resolve_subscription(&id.subscription).await?;
        self.store.machine(&id).await?.ok_or_else(|| {
            Denial::refused(&Refusal::new(RefusalReason::TargetNotFound { id: id.to_string() }))
        })
    }

    async fn resolve_subscription(&self, id_or_name: &str) -> Result<String, Denial> {
        self.store
            .list_subscriptions()
            .await?
            .into_iter()
            .find(|s| s.id.eq_ignore_ascii_case(id_or_name) || s.name.eq_ignore_ascii_case(id_or_name))
            .map(|s| s.id)
            .ok_or_else(|| Denial::subscription_not_found(id_or_name))
    }
}

/// Whether a denial on a live session's request means its access is gone (rather than that
/// the decision could not be made now).
fn ends_sessions(denial: &Denial) -> bool {
    matches!(denial.kind, DenialKind::Forbidden | DenialKind::NotFound | DenialKind::Unauthenticated)
}

/// Built-in roles and the custom ones in the store.
pub async fn all_roles(store: &dyn Store) -> Result<Vec<RoleDefinition>, rampart_store::StoreError> {
    let mut roles = builtin_roles();
    roles.extend(store.custom_role_definitions().await?);
    Ok(roles)
}
