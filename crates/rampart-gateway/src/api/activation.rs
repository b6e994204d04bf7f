//! Just-in-time access: eligible assignments' rules (`role assignment create --eligible`),
//! activations (`role activate`, `role activation list|approve|deny|revoke`), each step an
//! `activation` audit record whose target is `roleActivations/ID`, so `audit list --target
//! roleActivations/ID` shows one request's whole story. Expiry is watched by `node`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use rampart_core::activation::{DEFAULT_MAX_DURATION_SECS, check_request, format_duration, parse_duration};
use rampart_core::{Activation, ActivationState, AuditEntry, AuditEvent, AuditResult, Eligibility};
use rampart_proto::activation::{ActivationDecision, ActivationRequest, ActivationView, EligibilitySpec};
use serde::Deserialize;

use super::access::{ASSIGNMENTS_WRITE, resolve_scope};
use super::caller::Caller;
use super::{ApiError, AppState, JsonBody};
use crate::server::Gateway;

/// The audit target of an activation.
pub fn target(id: &str) -> String {
    format!("roleActivations/{id}")
}

/// An eligibility from its request: durations parsed, approvers resolved to principal IDs.
pub(super) async fn eligibility(gw: &AppState, spec: EligibilitySpec) -> Result<Eligibility, ApiError> {
    let max = match spec.max_duration.as_deref() {
        Some(text) => {
            parse_duration(text).map_err(|e| ApiError::bad_request("InvalidDuration", e.to_string()))?
        }
        None => DEFAULT_MAX_DURATION_SECS,
    };
    if max < rampart_core::activation::MIN_DURATION_SECS {
        return Err(ApiError::bad_request("InvalidDuration", "the maximum duration is too short"));
    }
    if spec.require_approval && spec.approvers.is_empty() {
        return Err(ApiError::bad_request(
            "NoApprover",
            "an assignment that requires approval names its approvers (--approver)",
        ));
    }
    let mut approvers = Vec::new();
    for who in &spec.approvers {
        let found = match gw.store.user_by_name(who).await? {
            Some(u) => Some(u),
            None => gw.store.user_by_id(who).await?,
        };
        let principal = found.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "PrincipalNotFound",
                format!("approver '{who}' is no user or group"),
            )
        })?;
        approvers.push(principal.id);
    }
    Ok(Eligibility {
        max_duration_secs: max,
        require_approval: spec.require_approval,
        approvers,
        require_justification: spec.require_justification,
    })
}

fn ts(t: Option<chrono::DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

pub fn view(a: &Activation) -> ActivationView {
    ActivationView {
        id: a.id.clone(),
        principal_name: a.principal_name.clone(),
        role_definition_name: a.role.clone(),
        scope: a.scope.clone(),
        duration: format_duration(a.duration_secs),
        justification: a.justification.clone(),
        state: a.status_at(Utc::now()).to_string(),
        requested_at: a.requested_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        decided_by: a.decided_by.clone(),
        decision_reason: a.decision_reason.clone(),
        starts_at: ts(a.starts_at),
        ends_at: ts(a.ends_at),
    }
}

/// Records one step of an activation's story.
pub(crate) async fn record(
    gw: &Gateway,
    who: &str,
    client: Option<String>,
    a: &Activation,
    what: String,
) -> Result<(), ApiError> {
    let mut e = AuditEntry::new(Utc::now(), AuditEvent::Activation, AuditResult::Allowed);
    e.user = Some(who.to_string());
    e.client_address = client;
    e.target_resource_id = Some(target(&a.id));
    e.reason = Some(what);
    gw.store.append_audit(&e).await?;
    Ok(())
}

/// `POST /api/roleActivations` (`role activate`): the caller's eligible assignment (their own
/// or a group's) for this role at this scope, activated at once or left pending approval.
pub async fn activate(
    State(gw): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ActivationRequest>,
) -> Result<(StatusCode, Json<ActivationView>), ApiError> {
    let activation = request(&gw, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(view(&activation))))
}

/// The caller's eligible assignments (their own and their groups').
pub(crate) async fn eligible_assignments(
    gw: &Gateway,
    caller: &Caller,
) -> Result<Vec<rampart_core::RoleAssignment>, ApiError> {
    let me = &caller.user.claims.sub;
    let mut mine = gw.store.role_assignments(Some(me), None).await?;
    for group in gw.store.groups_of(me).await? {
        mine.extend(gw.store.role_assignments(Some(&group), None).await?);
    }
    Ok(mine.into_iter().filter(|a| a.eligibility.is_some()).collect())
}

/// Activates the caller's eligible assignment of `body.role` at `body.scope`.
pub(crate) async fn request(
    gw: &AppState,
    caller: &Caller,
    body: ActivationRequest,
) -> Result<Activation, ApiError> {
    let gw = gw.clone();
    let scope = resolve_scope(&gw, &body.scope).await?;
    let me = caller.user.claims.sub.clone();
    let mine = eligible_assignments(&gw, caller).await?;
    let Some((assignment, rules)) = mine.into_iter().find_map(|a| {
        let rules = a.eligibility.clone()?;
        (a.role.eq_ignore_ascii_case(&body.role) && a.scope == scope).then_some((a, rules))
    }) else {
        return Err(caller
            .refuse(
                &gw,
                AuditEvent::Activation,
                &scope.to_string(),
                rampart_core::Refusal::new(rampart_core::RefusalReason::ActivationNotAllowed {
                    detail: format!(
                        "not eligible: no eligible assignment of {} at {scope} names {} or a group of theirs",
                        body.role,
                        caller.name()
                    ),
                }),
            )
            .await);
    };
    let duration = parse_duration(&body.duration)
        .map_err(|e| ApiError::bad_request("InvalidDuration", e.to_string()))?;
    let justification =
        body.justification.map(|j| j.trim().chars().take(500).collect::<String>()).filter(|j| !j.is_empty());
    check_request(&rules, duration, justification.as_deref())
        .map_err(|e| ApiError::bad_request("ActivationNotAllowed", e.to_string()))?;
    let now = Utc::now();
    let active = !rules.require_approval;
    let activation = Activation {
        id: uuid::Uuid::new_v4().to_string(),
        assignment_id: assignment.id.clone(),
        principal_id: me,
        principal_name: caller.name().to_string(),
        role: assignment.role.clone(),
        scope: assignment.scope.to_string(),
        justification: justification.clone(),
        duration_secs: duration,
        state: if active { ActivationState::Active } else { ActivationState::Pending },
        requested_at: now,
        decided_by: None,
        decision_reason: None,
        starts_at: active.then_some(now),
        ends_at: active
            .then(|| now + chrono::Duration::seconds(i64::try_from(duration).unwrap_or(i64::MAX / 2))),
    };
    gw.store.create_activation(&activation).await?;
    let client = Some(caller.user.client.to_string());
    let why = justification.map(|j| format!(": {j}")).unwrap_or_default();
    let asked = format!(
        "requested {} at {} for {}{why}",
        activation.role,
        activation.scope,
        format_duration(duration)
    );
    record(&gw, caller.name(), client.clone(), &activation, asked).await?;
    if active {
        let until = ts(activation.ends_at).unwrap_or_default();
        record(
            &gw,
            caller.name(),
            client,
            &activation,
            format!("activated until {until} (no approval required)"),
        )
        .await?;
    }
    Ok(activation)
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pending: bool,
}

/// Whether `principal` may approve under `rules`: named, or a member of a named group.
async fn is_approver(gw: &Gateway, rules: &Eligibility, principal: &str) -> Result<bool, ApiError> {
    if rules.approvers.iter().any(|a| a == principal) {
        return Ok(true);
    }
    let groups = gw.store.groups_of(principal).await?;
    Ok(rules.approvers.iter().any(|a| groups.contains(a)))
}

/// The rules of the assignment an activation is of, among `all` assignments.
fn rules_in(all: &[rampart_core::RoleAssignment], a: &Activation) -> Option<Eligibility> {
    all.iter().find(|r| r.id == a.assignment_id).and_then(|r| r.eligibility.clone())
}

async fn rules_of(gw: &Gateway, a: &Activation) -> Result<Option<Eligibility>, ApiError> {
    Ok(rules_in(&gw.store.role_assignments(None, None).await?, a))
}

/// `GET /api/roleActivations`: the caller's own, those they may approve, and (for those who
/// may assign roles at its scope) everyone's.
pub async fn list(
    State(gw): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ActivationView>>, ApiError> {
    Ok(Json(visible(&gw, &caller, q.pending).await?.iter().map(view).collect()))
}

/// Whether the caller may approve this activation (named, or in a named group; never the
/// requester).
/// (`all`: every role assignment, read once by the caller for a whole list.)
pub(crate) async fn may_approve(
    gw: &Gateway,
    caller: &Caller,
    a: &Activation,
    all: &[rampart_core::RoleAssignment],
) -> Result<bool, ApiError> {
    if a.principal_id == caller.user.claims.sub {
        return Ok(false);
    }
    match rules_in(all, a) {
        Some(rules) => is_approver(gw, &rules, &caller.user.claims.sub).await,
        None => Ok(false),
    }
}

/// The activations the caller may see: their own, those they may approve, and everyone's at
/// scopes where they may assign roles.
pub(crate) async fn visible(
    gw: &Gateway,
    caller: &Caller,
    pending_only: bool,
) -> Result<Vec<Activation>, ApiError> {
    let me = &caller.user.claims.sub;
    let all = gw.store.role_assignments(None, None).await?;
    let mut out = Vec::new();
    for a in gw.store.activations(None).await? {
        if pending_only && a.state != ActivationState::Pending {
            continue;
        }
        let visible = a.principal_id == *me
            || a.scope.parse().is_ok_and(|s| caller.may(ASSIGNMENTS_WRITE, &s))
            || match rules_in(&all, &a) {
                Some(rules) => is_approver(gw, &rules, me).await?,
                None => false,
            };
        if visible {
            out.push(a);
        }
    }
    Ok(out)
}

async fn find(gw: &Gateway, id: &str) -> Result<Activation, ApiError> {
    gw.store.activation(id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "ActivationNotFound", format!("no activation has the ID '{id}'"))
    })
}

/// `POST /api/roleActivations/{id}/approve|deny`: by an approver, never the requester.
pub async fn decide(
    State(gw): State<AppState>,
    caller: Caller,
    Path((id, verdict)): Path<(String, String)>,
    body: Option<Json<ActivationDecision>>,
) -> Result<Json<ActivationView>, ApiError> {
    let to = match verdict.as_str() {
        "approve" => ActivationState::Active,
        "deny" => ActivationState::Denied,
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", "approve or deny")),
    };
    let reason = body.and_then(|Json(b)| b.reason);
    Ok(Json(view(&decide_on(&gw, &caller, &id, to, reason).await?)))
}

/// Approves (`to` = active) or denies a pending activation, as `caller`.
pub(crate) async fn decide_on(
    gw: &Gateway,
    caller: &Caller,
    id: &str,
    to: ActivationState,
    reason: Option<String>,
) -> Result<Activation, ApiError> {
    let id = id.to_string();
    let a = find(gw, &id).await?;
    let reason = reason.map(|r| r.chars().take(500).collect::<String>()).filter(|r| !r.trim().is_empty());
    let refuse = |detail: String| {
        rampart_core::Refusal::new(rampart_core::RefusalReason::ActivationNotAllowed { detail })
    };
    if a.principal_id == caller.user.claims.sub {
        return Err(caller
            .refuse(
                gw,
                AuditEvent::Activation,
                &target(&id),
                refuse("the requester cannot decide on their own request".into()),
            )
            .await);
    }
    let rules = rules_of(gw, &a).await?.unwrap_or(Eligibility {
        max_duration_secs: 0,
        require_approval: true,
        approvers: vec![],
        require_justification: false,
    });
    if !is_approver(gw, &rules, &caller.user.claims.sub).await? {
        return Err(caller
            .refuse(
                gw,
                AuditEvent::Activation,
                &target(&id),
                refuse(format!("{} is not an approver of this assignment", caller.name())),
            )
            .await);
    }
    let now = Utc::now();
    let window = (to == ActivationState::Active).then(|| {
        (now, now + chrono::Duration::seconds(i64::try_from(a.duration_secs).unwrap_or(i64::MAX / 2)))
    });
    if !gw.store.decide_activation(&id, to, caller.name(), reason.as_deref(), window).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotPending",
            format!("activation {id} is {} already", a.status_at(now)),
        ));
    }
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let what = match window {
        Some((_, end)) => {
            format!("approved by {}{why}; active until {}", caller.name(), ts(Some(end)).unwrap_or_default())
        }
        None => format!("denied by {}{why}", caller.name()),
    };
    let decided = find(gw, &id).await?;
    record(gw, caller.name(), Some(caller.user.client.to_string()), &decided, what).await?;
    Ok(decided)
}

/// `POST /api/roleActivations/{id}/revoke`: by the requester or whoever may assign roles at its
/// scope; the sessions it admitted end on every node.
pub async fn revoke(
    State(gw): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<ActivationDecision>>,
) -> Result<Json<ActivationView>, ApiError> {
    let reason = body.and_then(|Json(b)| b.reason);
    Ok(Json(view(&revoke_one(&gw, &caller, &id, reason).await?)))
}

/// Ends an activation early, as `caller` (its requester, or one who may assign roles at its
/// scope); this node decides again on its sessions at once, the others on the change notice.
pub(crate) async fn revoke_one(
    gw: &Gateway,
    caller: &Caller,
    id: &str,
    reason: Option<String>,
) -> Result<Activation, ApiError> {
    let id = id.to_string();
    let a = find(gw, &id).await?;
    if a.principal_id != caller.user.claims.sub {
        let scope: rampart_core::Scope =
            a.scope.parse().map_err(|e: rampart_core::ResourceIdError| ApiError::internal(e))?;
        caller.require(gw, AuditEvent::Activation, ASSIGNMENTS_WRITE, &scope).await?;
    }
    let reason = reason.map(|r| r.chars().take(500).collect::<String>()).filter(|r| !r.trim().is_empty());
    let now = Utc::now();
    if !gw.store.revoke_activation(&id, caller.name(), reason.as_deref(), now).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotActive",
            format!("activation {id} is {}, not active", a.status_at(now)),
        ));
    }
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let revoked = find(gw, &id).await?;
    record(
        gw,
        caller.name(),
        Some(caller.user.client.to_string()),
        &revoked,
        format!("revoked by {}{why}", caller.name()),
    )
    .await?;
    // This node decides again at once (others on the store's change notice).
    gw.admission.note_change();
    gw.admission.reauthorize_live().await;
    Ok(revoked)
}
