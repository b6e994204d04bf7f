//! The signed-in caller with their role assignments, and the checks every handler makes.
//! A refused action is answered 403 with its reason and written to the audit log.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use rampart_core::{
    AuditEntry, AuditEvent, AuditResult, Principal, Refusal, RoleAssignment, RoleDefinition, Scope,
};

use super::{ApiError, AppState, AuthUser};
use crate::server::Gateway;

pub struct Caller {
    pub user: AuthUser,
    pub assignments: Vec<RoleAssignment>,
    pub roles: Vec<RoleDefinition>,
}

/// Built-in roles and the custom ones in the store.
pub async fn all_roles(gw: &Gateway) -> Result<Vec<RoleDefinition>, ApiError> {
    Ok(crate::admission::all_roles(gw.store.as_ref()).await?)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gw: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, gw).await?;
        Caller::load(gw, user).await
    }
}

impl Caller {
    /// The caller with their assignments, refused when `require_mfa` covers them and they
    /// have no authenticator yet.
    pub async fn load(gw: &Gateway, user: AuthUser) -> Result<Caller, ApiError> {
        let caller = Caller::load_for_enrolment(gw, user).await?;
        super::mfa::check_requirement(gw, &caller).await?;
        Ok(caller)
    }

    /// The caller without the MFA requirement's check: for enrolling an authenticator.
    pub async fn load_for_enrolment(gw: &Gateway, user: AuthUser) -> Result<Caller, ApiError> {
        let assignments = crate::admission::assignments_of(gw.store.as_ref(), &user.claims.sub).await?;
        Ok(Caller { user, assignments, roles: all_roles(gw).await? })
    }

    /// Who this caller is, for the admission service.
    pub fn identity(&self) -> rampart_core::Identity {
        rampart_core::Identity::user(&self.user.claims.sub, &self.user.claims.name)
    }

    pub fn name(&self) -> &str {
        &self.user.claims.name
    }

    pub fn principal(&self) -> Principal<'_> {
        Principal { name: &self.user.claims.name, assignments: &self.assignments, roles: &self.roles }
    }

    pub fn may(&self, action: &str, scope: &Scope) -> bool {
        self.principal().may(action, scope)
    }

    /// An audit entry for this caller.
    pub fn entry(&self, event: AuditEvent, result: AuditResult) -> AuditEntry {
        let mut e = AuditEntry::new(Utc::now(), event, result);
        e.user = Some(self.name().to_string());
        e.client_address = Some(self.user.client.to_string());
        e.user_agent = self.user.user_agent.clone();
        e
    }

    /// Allows `action` at `scope`, or records the refusal and answers 403 naming it.
    pub async fn require(
        &self,
        gw: &Gateway,
        event: AuditEvent,
        action: &str,
        scope: &Scope,
    ) -> Result<(), ApiError> {
        match self.principal().check(action, scope) {
            Ok(()) => Ok(()),
            Err(reason) => {
                let refusal = match self.activation_hint(gw, action, scope).await? {
                    Some(detail) => Refusal::new(rampart_core::RefusalReason::ActivationRequired { detail }),
                    None => Refusal::new(reason),
                };
                Err(self.refuse(gw, event, &scope.to_string(), refusal).await)
            }
        }
    }

    /// When only an eligible assignment of the caller would allow `action` at `scope`: what to
    /// say (how to activate it, or which activation ended).
    async fn activation_hint(
        &self,
        gw: &Gateway,
        action: &str,
        scope: &Scope,
    ) -> Result<Option<String>, ApiError> {
        let store = gw.store.as_ref();
        let eligible = crate::admission::eligible_of(store, &self.user.claims.sub).await?;
        if eligible.is_empty() {
            return Ok(None);
        }
        let mut with = self.assignments.clone();
        with.extend(eligible.iter().cloned());
        let principal = Principal { name: self.name(), assignments: &with, roles: &self.roles };
        if principal.check(action, scope).is_err() {
            return Ok(None);
        }
        Ok(Some(crate::admission::activation_hint(store, &self.user.claims.sub, &eligible).await?))
    }

    /// Allows `action` if some subscription grants it (for things that belong to no
    /// subscription, such as users).
    pub async fn require_anywhere(
        &self,
        gw: &Gateway,
        event: AuditEvent,
        action: &str,
    ) -> Result<(), ApiError> {
        let subscriptions = gw.store.list_subscriptions().await?;
        let scopes: Vec<Scope> = subscriptions.iter().map(|s| Scope::Subscription(s.id.clone())).collect();
        if scopes.iter().any(|s| self.may(action, s)) {
            return Ok(());
        }
        let scope = scopes.first().cloned().unwrap_or(Scope::Subscription("none".into()));
        self.require(gw, event, action, &scope).await
    }

    /// Records a refusal and returns the error to answer with.
    pub async fn refuse(&self, gw: &Gateway, event: AuditEvent, target: &str, refusal: Refusal) -> ApiError {
        let mut e = self.entry(event, AuditResult::Refused);
        e.target_resource_id = Some(target.chars().take(512).collect());
        e.reason_code = Some(refusal.code());
        e.reason = Some(refusal.to_string());
        match gw.store.append_audit(&e).await {
            Ok(_) => ApiError::refused(&refusal),
            Err(err) => ApiError::internal(err),
        }
    }

    /// Records a refusal the API makes itself (not a missing permission) and returns it.
    pub async fn refuse_because(
        &self,
        gw: &Gateway,
        event: AuditEvent,
        target: &str,
        status: axum::http::StatusCode,
        code: &str,
        message: String,
    ) -> ApiError {
        let mut e = self.entry(event, AuditResult::Refused);
        e.target_resource_id = Some(target.chars().take(512).collect());
        e.reason_code = Some(code.to_string());
        e.reason = Some(message.clone());
        match gw.store.append_audit(&e).await {
            Ok(_) => ApiError::new(status, code, message),
            Err(err) => ApiError::internal(err),
        }
    }

    /// Records a change that was made.
    pub async fn record(
        &self,
        gw: &Gateway,
        event: AuditEvent,
        target: &str,
        what: String,
    ) -> Result<(), ApiError> {
        let mut e = self.entry(event, AuditResult::Allowed);
        e.target_resource_id = Some(target.to_string());
        e.reason = Some(what);
        gw.store.append_audit(&e).await?;
        Ok(())
    }
}
