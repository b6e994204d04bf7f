//! Multi-factor authentication of local accounts: the second factor at sign-in, enrolment for
//! the signed-in user (`rampart ad user mfa enable|verify|disable`, the portal's page), an
//! administrator's reset for a lost device, and the `require_mfa` setting's check.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use rampart_core::{AuditEvent, IdentityKind};
use rampart_proto::mfa::{MfaCode, MfaEnrolment, MfaRecoveryCodes, MfaStatus};
use rampart_store::User;

use super::access::USERS_WRITE;
use super::caller::Caller;
use super::{ApiError, AppState, AuthUser, JsonBody};
use crate::mfa;
use crate::server::Gateway;

fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

fn refused(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Why a sign-in whose password was right is refused for its second factor, if it is: none
/// asked for (`MfaRequired`), a wrong code (`MfaCodeInvalid`), or one used already
/// (`MfaCodeReused`). Accounts without an enabled authenticator pass.
pub(crate) async fn second_factor(
    gw: &Gateway,
    user: &User,
    code: Option<&str>,
) -> Result<Option<ApiError>, ApiError> {
    if user.kind != IdentityKind::User || user.identity_provider.is_some() {
        return Ok(None);
    }
    let Some(totp) = gw.store.totp(&user.id).await?.filter(|t| t.enabled) else { return Ok(None) };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Some(refused(
            "MfaRequired",
            "this account signs in with a second factor: give the code from your authenticator app (--mfa-code) or a recovery code",
        )));
    };
    if mfa::is_recovery_code(code) {
        return Ok(if gw.store.use_recovery_code(&user.id, &mfa::recovery_hash(code)).await? {
            None
        } else {
            Some(refused("MfaCodeInvalid", "the recovery code is not valid or was used already"))
        });
    }
    let step = mfa::check(&totp.secret, code, unix_now()).map_err(ApiError::internal)?;
    let Some(step) = step else {
        return Ok(Some(refused(
            "MfaCodeInvalid",
            "the authentication code is not valid (check the device's clock)",
        )));
    };
    let step = i64::try_from(step).map_err(ApiError::internal)?;
    if gw.store.accept_totp_step(&user.id, step).await? {
        Ok(None)
    } else {
        Ok(Some(refused("MfaCodeReused", "this code was used already: wait for the next one")))
    }
}

/// Refuses a local account that `require_mfa` covers and that has no authenticator yet, except
/// for enrolling one (those routes take an [`AuthUser`], not a [`Caller`]).
pub(crate) async fn check_requirement(gw: &Gateway, caller: &Caller) -> Result<(), ApiError> {
    if gw.config.require_mfa == mfa::Requirement::Off {
        return Ok(());
    }
    let Some(user) = gw.store.user_by_id(&caller.user.claims.sub).await? else { return Ok(()) };
    if user.kind != IdentityKind::User || user.identity_provider.is_some() {
        return Ok(());
    }
    let roles: Vec<&str> = caller.assignments.iter().map(|a| a.role.as_str()).collect();
    if !gw.config.require_mfa.applies(&roles) || gw.store.totp(&user.id).await?.is_some_and(|t| t.enabled) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "MfaEnrollmentRequired",
        "this gateway requires multi-factor authentication of your account: run `rampart ad user mfa enable`, add the printed URI to an authenticator app, then `rampart ad user mfa verify --code CODE` (or use the portal's Security page)",
    ))
}

async fn local_user(gw: &Gateway, auth: &AuthUser) -> Result<User, ApiError> {
    let user = gw
        .store
        .user_by_id(&auth.claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the user no longer exists"))?;
    if user.kind != IdentityKind::User || user.identity_provider.is_some() {
        return Err(ApiError::bad_request(
            "NotALocalAccount",
            "multi-factor authentication here is for local accounts: a federated user's is their identity provider's",
        ));
    }
    Ok(user)
}

/// `GET /api/me/mfa`
pub async fn status(State(gw): State<AppState>, auth: AuthUser) -> Result<Json<MfaStatus>, ApiError> {
    let user = local_user(&gw, &auth).await?;
    let enabled = gw.store.totp(&user.id).await?.is_some_and(|t| t.enabled);
    Ok(Json(MfaStatus { enabled }))
}

/// Starts enrolment: a new secret, pending until a code from it is verified.
pub(crate) async fn begin(gw: &Gateway, user: &User) -> Result<MfaEnrolment, ApiError> {
    let secret = mfa::new_secret();
    gw.store.put_pending_totp(&user.id, &secret).await.map_err(|e| match e {
        rampart_store::StoreError::Conflict(_) => ApiError::new(
            StatusCode::CONFLICT,
            "MfaAlreadyEnabled",
            "an authenticator is enabled already: disable it first (with a current code)",
        ),
        other => other.into(),
    })?;
    let otpauth_uri = mfa::otpauth_uri(&secret, &user.username).map_err(ApiError::internal)?;
    Ok(MfaEnrolment { otpauth_uri, secret })
}

/// Finishes enrolment with a first code; returns the recovery codes (shown once).
pub(crate) async fn finish(gw: &Gateway, user: &User, code: &str) -> Result<MfaRecoveryCodes, ApiError> {
    let pending = gw.store.totp(&user.id).await?.filter(|t| !t.enabled).ok_or_else(|| {
        ApiError::bad_request("NoPendingAuthenticator", "start with `rampart ad user mfa enable` first")
    })?;
    let step =
        mfa::check(&pending.secret, code, unix_now()).map_err(ApiError::internal)?.ok_or_else(|| {
            ApiError::bad_request(
                "MfaCodeInvalid",
                "the code does not match the new secret (check the device's clock)",
            )
        })?;
    let codes = mfa::recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| mfa::recovery_hash(c)).collect();
    let step = i64::try_from(step).map_err(ApiError::internal)?;
    if !gw.store.enable_totp(&user.id, step, &hashes).await? {
        return Err(ApiError::bad_request("NoPendingAuthenticator", "the authenticator was enabled already"));
    }
    let mut e =
        rampart_core::AuditEntry::new(Utc::now(), AuditEvent::UserChange, rampart_core::AuditResult::Allowed);
    e.user = Some(user.username.clone());
    e.reason = Some(format!("enabled multi-factor authentication for {}", user.username));
    gw.store.append_audit(&e).await?;
    Ok(MfaRecoveryCodes { recovery_codes: codes })
}

/// `POST /api/me/mfa/totp`
pub async fn enable(State(gw): State<AppState>, auth: AuthUser) -> Result<Json<MfaEnrolment>, ApiError> {
    let user = local_user(&gw, &auth).await?;
    Ok(Json(begin(&gw, &user).await?))
}

/// `POST /api/me/mfa/totp/verify`
pub async fn verify(
    State(gw): State<AppState>,
    auth: AuthUser,
    JsonBody(body): JsonBody<MfaCode>,
) -> Result<Json<MfaRecoveryCodes>, ApiError> {
    let user = local_user(&gw, &auth).await?;
    Ok(Json(finish(&gw, &user, &body.code).await?))
}

/// `POST /api/me/mfa/totp/disable`: with a current code (or a recovery code), so a stolen
/// session alone cannot remove the second factor.
pub async fn disable(
    State(gw): State<AppState>,
    auth: AuthUser,
    JsonBody(body): JsonBody<MfaCode>,
) -> Result<StatusCode, ApiError> {
    let user = local_user(&gw, &auth).await?;
    if let Some(refused) = second_factor(&gw, &user, Some(&body.code)).await? {
        return Err(refused);
    }
    gw.store.disable_totp(&user.id).await?;
    let mut e =
        rampart_core::AuditEntry::new(Utc::now(), AuditEvent::UserChange, rampart_core::AuditResult::Allowed);
    e.user = Some(user.username.clone());
    e.reason = Some(format!("disabled multi-factor authentication for {}", user.username));
    gw.store.append_audit(&e).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/users/{upn}/mfa`: an administrator removes a lost authenticator.
pub async fn reset(
    State(gw): State<AppState>,
    caller: Caller,
    Path(upn): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_anywhere(&gw, AuditEvent::UserChange, USERS_WRITE).await?;
    let user = gw.store.user_by_name(&upn).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "UserNotFound", format!("user '{upn}' was not found"))
    })?;
    if !gw.store.disable_totp(&user.id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NoAuthenticator",
            format!("'{upn}' has no authenticator"),
        ));
    }
    caller
        .record(&gw, AuditEvent::UserChange, &upn, format!("reset multi-factor authentication of {upn}"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
