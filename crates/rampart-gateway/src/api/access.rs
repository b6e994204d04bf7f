//! Users (`ad user`), role definitions and role assignments.

use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use ipnet::IpNet;
use rampart_core::rbac::Condition;
use rampart_core::{AuditEvent, RoleAssignment, RoleDefinition, Scope};
use rampart_proto::api::{
    AssignmentCondition, PasswordChange, RoleAssignmentCreate, RoleAssignmentView, RoleDefinitionView,
    UserCreate, UserView,
};
use rampart_store::User;
use serde::Deserialize;

use super::bastions::resolve_subscription;
use super::caller::{Caller, all_roles};
use super::{ApiError, AppState, JsonBody};
use crate::auth;

pub(super) const USERS_READ: &str = "Microsoft.Authorization/users/read";
pub(super) const USERS_WRITE: &str = "Microsoft.Authorization/users/write";
const ROLES_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
const ASSIGNMENTS_READ: &str = "Microsoft.Authorization/roleAssignments/read";
pub(super) const ASSIGNMENTS_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
const ASSIGNMENTS_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";

fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id.clone(),
        user_principal_name: u.username.clone(),
        display_name: u.display_name.clone(),
        created_at: u.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 12 {
        return Err(ApiError::bad_request("WeakPassword", "a password needs at least 12 characters"));
    }
    Ok(())
}

pub(super) async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub async fn create_user(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<UserCreate>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    Ok((StatusCode::CREATED, Json(add_user(&gw, &caller, body).await?)))
}

/// Creates a local user, if the caller administers users (the API and the portal).
pub(crate) async fn add_user(gw: &AppState, caller: &Caller, body: UserCreate) -> Result<UserView, ApiError> {
    let gw = gw.clone();
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    rampart_core::resource_id::validate_name(&body.user_principal_name.replace('@', "."))
        .map_err(|e| ApiError::bad_request("InvalidUserName", e.to_string()))?;
    check_password(&body.password)?;
    let hashed = hash(body.password.clone()).await?;
    let user = gw.store.create_user(&body.user_principal_name, body.display_name.as_deref(), &hashed).await?;
    caller.record(&gw, AuditEvent::UserChange, &user.username, "created user".into()).await?;
    Ok(user_view(&user))
}

pub async fn list_users(State(gw): State<AppState>, caller: Caller) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(users(&gw, &caller).await?))
}

/// Every user (not groups or service principals), for a caller who may read users.
pub(crate) async fn users(gw: &AppState, caller: &Caller) -> Result<Vec<UserView>, ApiError> {
    caller.require_anywhere(gw, AuditEvent::Read, USERS_READ).await?;
    // Service principals are listed by `ad sp list`.
    let users = gw.store.list_users().await?;
    Ok(users.iter().filter(|u| u.kind == rampart_core::IdentityKind::User).map(user_view).collect())
}

/// Whether the caller administers users (on some subscription, as the API asks).
pub(crate) async fn may_administer_users(gw: &AppState, caller: &Caller) -> Result<bool, ApiError> {
    let subscriptions = gw.store.list_subscriptions().await?;
    Ok(subscriptions.iter().any(|s| caller.may(USERS_WRITE, &Scope::Subscription(s.id.clone()))))
}

async fn find_user(gw: &AppState, upn: &str) -> Result<User, ApiError> {
    gw.store.user_by_name(upn).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "UserNotFound", format!("user '{upn}' was not found"))
    })
}

/// An assignee by name or object ID, of the kind asked for (when asked).
async fn find_principal(gw: &AppState, assignee: &str, kind: Option<&str>) -> Result<User, ApiError> {
    let found = match gw.store.user_by_name(assignee).await? {
        Some(u) => Some(u),
        None => gw.store.user_by_id(assignee).await?,
    };
    let principal = found.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "PrincipalNotFound",
            format!("no principal is named or has the ID '{assignee}'"),
        )
    })?;
    if let Some(kind) = kind {
        let wanted = match kind.to_ascii_lowercase().as_str() {
            "user" => rampart_core::IdentityKind::User,
            "group" => rampart_core::IdentityKind::Group,
            "serviceprincipal" => rampart_core::IdentityKind::ServicePrincipal,
            other => {
                return Err(ApiError::bad_request(
                    "InvalidPrincipalType",
                    format!("principal type '{other}' is not User, Group or ServicePrincipal"),
                ));
            }
        };
        if principal.kind != wanted {
            return Err(ApiError::bad_request(
                "PrincipalTypeMismatch",
                format!("'{assignee}' is a {}, not a {kind}", principal.kind.as_str()),
            ));
        }
    }
    Ok(principal)
}

pub async fn show_user(
    State(gw): State<AppState>,
    caller: Caller,
    Path(upn): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    if !caller.name().eq_ignore_ascii_case(&upn) {
        caller.require_anywhere(&gw, AuditEvent::Read, USERS_READ).await?;
    }
    Ok(Json(user_view(&find_user(&gw, &upn).await?)))
}

pub async fn delete_user(
    State(gw): State<AppState>,
    caller: Caller,
    Path(upn): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove_user(&gw, &caller, &upn).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user (never the caller), if the caller administers users.
pub(crate) async fn remove_user(gw: &AppState, caller: &Caller, upn: &str) -> Result<(), ApiError> {
    let (gw, upn) = (gw.clone(), upn.to_string());
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    if caller.name().eq_ignore_ascii_case(&upn) {
        return Err(ApiError::bad_request(
            "CannotDeleteSelf",
            "you cannot delete the user you are signed in as",
        ));
    }
    gw.store.delete_user(&upn).await?;
    caller.record(&gw, AuditEvent::UserChange, &upn, "deleted user".into()).await?;
    Ok(())
}

/// A user may change their own password; resetting another's needs user administration.
pub async fn set_password(
    State(gw): State<AppState>,
    caller: Caller,
    Path(upn): Path<String>,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    if !caller.name().eq_ignore_ascii_case(&upn) {
        caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    }
    check_password(&body.password)?;
    let hashed = hash(body.password.clone()).await?;
    gw.store.set_password(&upn, &hashed).await?;
    caller.record(&gw, AuditEvent::UserChange, &upn, "password reset; sessions revoked".into()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn role_view(r: &RoleDefinition) -> RoleDefinitionView {
    RoleDefinitionView {
        name: r.name.clone(),
        description: r.description.clone(),
        actions: r.actions.clone(),
        not_actions: r.not_actions.clone(),
        data_actions: r.data_actions.clone(),
        builtin: r.builtin,
    }
}

pub async fn list_roles(
    State(gw): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<RoleDefinitionView>>, ApiError> {
    Ok(Json(all_roles(&gw).await?.iter().map(role_view).collect()))
}

pub async fn create_role(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RoleDefinitionView>,
) -> Result<(StatusCode, Json<RoleDefinitionView>), ApiError> {
    caller.require_anywhere(&gw, AuditEvent::RoleChange, ROLES_WRITE).await?;
    let role = RoleDefinition {
        name: body.name.trim().to_string(),
        description: body.description,
        actions: body.actions,
        not_actions: body.not_actions,
        data_actions: body.data_actions,
        builtin: false,
    };
    role.validate().map_err(|e| ApiError::bad_request("InvalidRoleDefinition", e))?;
    if all_roles(&gw).await?.iter().any(|r| r.name.eq_ignore_ascii_case(&role.name)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("role '{}' already exists", role.name),
        ));
    }
    gw.store.create_role_definition(&role).await?;
    caller
        .record(&gw, AuditEvent::RoleChange, &role.name, format!("created role: {:?}", role.actions))
        .await?;
    Ok((StatusCode::CREATED, Json(role_view(&role))))
}

pub(super) fn assignment_view(a: &RoleAssignment) -> RoleAssignmentView {
    RoleAssignmentView {
        id: a.id.clone(),
        principal_id: a.principal_id.clone(),
        principal_name: a.principal_name.clone(),
        role_definition_name: a.role.clone(),
        scope: a.scope.to_string(),
        condition: a.condition.as_ref().map(|c| AssignmentCondition {
            networks: c.networks.iter().map(|n| n.to_string()).collect(),
            ports: c.ports.clone(),
        }),
        eligibility: a.eligibility.as_ref().map(|e| rampart_proto::activation::EligibilityView {
            max_duration: rampart_core::activation::format_duration(e.max_duration_secs),
            require_approval: e.require_approval,
            approvers: e.approvers.clone(),
            require_justification: e.require_justification,
        }),
    }
}

/// A built-in or custom role by name (case-insensitive).
pub(super) async fn find_role(gw: &AppState, name: &str) -> Result<RoleDefinition, ApiError> {
    all_roles(gw).await?.into_iter().find(|r| r.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "RoleNotFound",
            format!("role '{name}' does not exist; `rampart role definition list` shows them"),
        )
    })
}

/// Parses a scope whose subscription may be given by name, and resolves it to the ID.
pub(super) async fn resolve_scope(gw: &AppState, text: &str) -> Result<Scope, ApiError> {
    let scope = Scope::from_str(text).map_err(|e| ApiError::bad_request("InvalidScope", e.to_string()))?;
    let sub = resolve_subscription(gw, scope.subscription()).await?.id;
    Ok(match scope {
        Scope::Subscription(_) => Scope::Subscription(sub),
        Scope::ResourceGroup { group, .. } => Scope::ResourceGroup { subscription: sub, group },
        Scope::Resource(mut id) => {
            id.subscription = sub;
            Scope::Resource(id)
        }
    })
}

pub async fn create_assignment(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<RoleAssignmentCreate>,
) -> Result<(StatusCode, Json<RoleAssignmentView>), ApiError> {
    Ok((StatusCode::CREATED, Json(assign(&gw, &caller, body).await?)))
}

/// Creates the assignment `body` asks for, if the caller may (the API and the portal).
pub(crate) async fn assign(
    gw: &AppState,
    caller: &Caller,
    body: RoleAssignmentCreate,
) -> Result<RoleAssignmentView, ApiError> {
    let gw = gw.clone();
    let scope = resolve_scope(&gw, &body.scope).await?;
    caller.require(&gw, AuditEvent::RoleChange, ASSIGNMENTS_WRITE, &scope).await?;
    let user = find_principal(&gw, &body.assignee, body.assignee_principal_type.as_deref()).await?;
    let role = find_role(&gw, &body.role).await?;
    let condition = body
        .condition
        .map(|c| {
            let networks = c
                .networks
                .iter()
                .map(|n| IpNet::from_str(n.trim()).map(|n| n.trunc()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ApiError::bad_request("InvalidCondition", "condition networks must be CIDRs"))?;
            Ok::<_, ApiError>(Condition { networks, ports: c.ports })
        })
        .transpose()?;
    let eligibility = match body.eligibility {
        Some(spec) => Some(super::activation::eligibility(&gw, spec).await?),
        None => None,
    };
    let assignment = RoleAssignment {
        id: uuid::Uuid::new_v4().to_string(),
        principal_id: user.id.clone(),
        principal_name: user.username.clone(),
        role: role.name.clone(),
        scope: scope.clone(),
        condition,
        eligibility,
    };
    gw.store.create_role_assignment(&assignment).await?;
    let kind = if assignment.eligibility.is_some() { "made eligible for" } else { "assigned" };
    let what = format!("{kind} {} to {} at {}", role.name, user.username, scope);
    caller.record(&gw, AuditEvent::RoleChange, &scope.to_string(), what).await?;
    Ok(assignment_view(&assignment))
}

#[derive(Debug, Deserialize, Default)]
pub struct AssignmentQuery {
    pub assignee: Option<String>,
    pub scope: Option<String>,
    /// Eligible assignments too (`--include-eligible`).
    #[serde(default, rename = "includeEligible")]
    pub include_eligible: bool,
}

/// Lists the assignments whose scope the caller may read assignments at.
pub async fn list_assignments(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<AssignmentQuery>,
) -> Result<Json<Vec<RoleAssignmentView>>, ApiError> {
    Ok(Json(assignments(&gw, &caller, q).await?))
}

/// The assignments `q` selects that the caller may see: their own, and those at scopes where
/// they may read assignments.
pub(crate) async fn assignments(
    gw: &AppState,
    caller: &Caller,
    q: AssignmentQuery,
) -> Result<Vec<RoleAssignmentView>, ApiError> {
    let gw = gw.clone();
    let principal = match &q.assignee {
        Some(upn) => Some(find_user(&gw, upn).await?.id),
        None => None,
    };
    let scope = match &q.scope {
        Some(s) => Some(resolve_scope(&gw, s).await?.to_string()),
        None => None,
    };
    let list = gw.store.role_assignments(principal.as_deref(), scope.as_deref()).await?;
    Ok(list
        .iter()
        .filter(|a| a.principal_id == caller.user.claims.sub || caller.may(ASSIGNMENTS_READ, &a.scope))
        .filter(|a| q.include_eligible || a.eligibility.is_none())
        .map(assignment_view)
        .collect())
}

pub async fn delete_assignment(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    unassign(&gw, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the assignment `id`, if the caller may and it is not the last that may grant access.
pub(crate) async fn unassign(gw: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let (gw, id) = (gw.clone(), id.to_string());
    let all = gw.store.role_assignments(None, None).await?;
    let Some(a) = all.iter().find(|a| a.id == id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("role assignment '{id}' was not found"),
        ));
    };
    caller.require(&gw, AuditEvent::RoleChange, ASSIGNMENTS_DELETE, &a.scope).await?;
    if rampart_core::leaves_scope_unmanaged(&all, &caller.roles, &id, ASSIGNMENTS_WRITE) {
        let why = format!(
            "refused: '{}' for {} is the last assignment that may grant access at {} (or above it); \
             assign another Owner there first",
            a.role, a.principal_name, a.scope
        );
        let scope = a.scope.to_string();
        return Err(caller
            .refuse_because(
                &gw,
                AuditEvent::RoleChange,
                &scope,
                StatusCode::CONFLICT,
                "LastAccessManager",
                why,
            )
            .await);
    }
    gw.store.delete_role_assignment(&id).await?;
    let what = format!("removed {} from {} at {}", a.role, a.principal_name, a.scope);
    caller.record(&gw, AuditEvent::RoleChange, &a.scope.to_string(), what).await?;
    Ok(())
}

/// Whether the caller may create or remove assignments at `scope`: what the portal asks before
/// it shows a button.
pub(crate) fn may_assign(caller: &Caller, scope: &Scope) -> bool {
    caller.may(ASSIGNMENTS_WRITE, scope)
}

pub(crate) fn may_unassign(caller: &Caller, scope: &Scope) -> bool {
    caller.may(ASSIGNMENTS_DELETE, scope)
}
