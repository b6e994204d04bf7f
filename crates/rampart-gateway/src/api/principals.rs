//! Service principals (`ad sp`): automation's identities, az's shape. A service principal is
//! a principal like a user (its application ID is its user name, its secret hashed like a
//! password), so it signs in, holds role assignments and is admitted exactly as a user is.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::SecondsFormat;
use rampart_core::{AuditEvent, IdentityKind, RoleAssignment};
use rampart_proto::api::{ServicePrincipalCreate, ServicePrincipalCredentials, ServicePrincipalView};
use rampart_store::User;

use super::access::{ASSIGNMENTS_WRITE, USERS_READ, USERS_WRITE, find_role, hash, resolve_scope};
use super::caller::Caller;
use super::{ApiError, AppState, JsonBody};
use crate::auth;
use crate::server::Gateway;

/// The gateway's directory ID, what az calls the tenant: made once, shared by every node.
pub(crate) async fn tenant(gw: &Gateway) -> Result<String, ApiError> {
    Ok(gw.store.shared_secret("tenant-id", &uuid::Uuid::new_v4().to_string()).await?)
}

fn view(u: &User) -> ServicePrincipalView {
    ServicePrincipalView {
        app_id: u.username.clone(),
        display_name: u.display_name.clone(),
        created_at: u.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// A new secret: 32 random characters (shown once, stored hashed).
fn new_secret() -> String {
    // Not beginning with '-': a secret passed as `-p SECRET` must not look like a flag to
    // other tools either (az's secrets never do).
    loop {
        let secret = auth::random_secret(32);
        if !secret.starts_with('-') {
            return secret;
        }
    }
}

/// `POST /api/servicePrincipals` (`ad sp create-for-rbac`): the principal, then its role at
/// every scope; the caller needs user administration and role assignment at each scope.
pub async fn create(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ServicePrincipalCreate>,
) -> Result<(StatusCode, Json<ServicePrincipalCredentials>), ApiError> {
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    let name = body.display_name.trim();
    rampart_core::resource_id::validate_name(name)
        .map_err(|e| ApiError::bad_request("InvalidServicePrincipalName", e.to_string()))?;
    if body.scopes.is_empty() {
        return Err(ApiError::bad_request("NoScope", "give at least one scope (--scopes)"));
    }
    let role = find_role(&gw, &body.role).await?;
    let mut scopes = Vec::with_capacity(body.scopes.len());
    for text in &body.scopes {
        let scope = resolve_scope(&gw, text).await?;
        caller.require(&gw, AuditEvent::RoleChange, ASSIGNMENTS_WRITE, &scope).await?;
        scopes.push(scope);
    }
    let app_id = uuid::Uuid::new_v4().to_string();
    let secret = new_secret();
    let sp = gw.store.create_service_principal(&app_id, name, &hash(secret.clone()).await?).await?;
    caller.record(&gw, AuditEvent::UserChange, &app_id, format!("created service principal {name}")).await?;
    for scope in scopes {
        let assignment = RoleAssignment {
            id: uuid::Uuid::new_v4().to_string(),
            principal_id: sp.id.clone(),
            principal_name: sp.username.clone(),
            role: role.name.clone(),
            scope: scope.clone(),
            condition: None,
            eligibility: None,
        };
        gw.store.create_role_assignment(&assignment).await?;
        let what = format!("assigned {} to service principal {name} ({app_id}) at {scope}", role.name);
        caller.record(&gw, AuditEvent::RoleChange, &scope.to_string(), what).await?;
    }
    let tenant = tenant(&gw).await?;
    Ok((
        StatusCode::CREATED,
        Json(ServicePrincipalCredentials {
            app_id,
            display_name: name.to_string(),
            password: secret,
            tenant,
        }),
    ))
}

/// `GET /api/servicePrincipals`.
pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ServicePrincipalView>>, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::Read, USERS_READ).await?;
    let all = gw.store.list_users().await?;
    Ok(Json(all.iter().filter(|u| u.kind == IdentityKind::ServicePrincipal).map(view).collect()))
}

async fn find(gw: &AppState, app_id: &str) -> Result<User, ApiError> {
    gw.store.user_by_name(app_id).await?.filter(|u| u.kind == IdentityKind::ServicePrincipal).ok_or_else(
        || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "ServicePrincipalNotFound",
                format!("service principal '{app_id}' was not found"),
            )
        },
    )
}

/// `POST /api/servicePrincipals/{appId}/credentials/reset`: a new secret; the old one and the
/// principal's sessions (refresh tokens) stop working at once.
pub async fn reset_credential(
    State(gw): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<ServicePrincipalCredentials>, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    let sp = find(&gw, &app_id).await?;
    let secret = new_secret();
    gw.store.set_password(&sp.username, &hash(secret.clone()).await?).await?;
    caller.record(&gw, AuditEvent::UserChange, &sp.username, "service principal secret reset".into()).await?;
    Ok(Json(ServicePrincipalCredentials {
        app_id: sp.username,
        display_name: sp.display_name.unwrap_or_default(),
        password: secret,
        tenant: tenant(&gw).await?,
    }))
}

/// `DELETE /api/servicePrincipals/{appId}`: the principal and its role assignments.
pub async fn delete(
    State(gw): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    let sp = find(&gw, &app_id).await?;
    gw.store.delete_user(&sp.username).await?;
    caller.record(&gw, AuditEvent::UserChange, &sp.username, "deleted service principal".into()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_never_begin_with_a_dash() {
        for _ in 0..2000 {
            let s = super::new_secret();
            assert!(!s.starts_with('-') && s.len() >= 32, "{s}");
        }
    }
}
