//! Just-in-time access in the portal: the roles the user may activate (a "Request access"
//! form each), their activations (ended early with a button), and the requests waiting for
//! their approval. Everything goes through the API's activation functions.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use rampart_core::ActivationState;
use rampart_core::activation::format_duration;
use rampart_proto::activation::{ActivationRequest, ActivationView};
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::activation::{
    decide_on, eligible_assignments, may_approve, request, revoke_one, view, visible,
};
use crate::api::{ApiError, AppState};

const ACCESS: &str = "/portal/access";

struct Eligible {
    role: String,
    scope: String,
    max: String,
    approval: bool,
    justification: bool,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    eligible: Vec<Eligible>,
    mine: Vec<ActivationView>,
    approvals: Vec<ActivationView>,
}

async fn page(gw: &AppState, user: &PortalUser, error: Option<String>) -> Result<Response, ApiError> {
    let eligible = eligible_assignments(gw, &user.caller)
        .await?
        .into_iter()
        .filter_map(|a| {
            let e = a.eligibility?;
            Some(Eligible {
                role: a.role,
                scope: a.scope.to_string(),
                max: format_duration(e.max_duration_secs),
                approval: e.require_approval,
                justification: e.require_justification,
            })
        })
        .collect();
    let me = user.caller.user.claims.sub.clone();
    let mut mine = Vec::new();
    let mut approvals = Vec::new();
    let all = gw.store.role_assignments(None, None).await?;
    for a in visible(gw, &user.caller, false).await? {
        if a.principal_id == me {
            mine.push(view(&a));
        } else if a.state == ActivationState::Pending && may_approve(gw, &user.caller, &a, &all).await? {
            approvals.push(view(&a));
        }
    }
    Ok(render(&AccessPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        error,
        eligible,
        mine,
        approvals,
    }))
}

pub async fn access_page(State(gw): State<AppState>, user: PortalUser) -> Response {
    match page(&gw, &user, None).await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

#[derive(Deserialize)]
pub struct AccessForm {
    csrf: String,
    action: String,
    role: Option<String>,
    scope: Option<String>,
    duration: Option<String>,
    justification: Option<String>,
    id: Option<String>,
    reason: Option<String>,
}

pub async fn change_access(
    State(gw): State<AppState>,
    user: PortalUser,
    Form(form): Form<AccessForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let id = form.id.clone().unwrap_or_default();
    let done = match form.action.as_str() {
        "request" => {
            let body = ActivationRequest {
                role: form.role.unwrap_or_default(),
                scope: form.scope.unwrap_or_default(),
                duration: form.duration.unwrap_or_else(|| "PT1H".into()),
                justification: form.justification.filter(|j| !j.trim().is_empty()),
            };
            request(&gw, &user.caller, body).await.map(|_| ())
        }
        "approve" => {
            decide_on(&gw, &user.caller, &id, ActivationState::Active, form.reason).await.map(|_| ())
        }
        "deny" => decide_on(&gw, &user.caller, &id, ActivationState::Denied, form.reason).await.map(|_| ()),
        "revoke" => revoke_one(&gw, &user.caller, &id, form.reason).await.map(|_| ()),
        _ => Err(ApiError::bad_request("InvalidAction", "request, approve, deny or revoke")),
    };
    match done {
        Ok(()) => Redirect::to(ACCESS).into_response(),
        Err(e) if e.status.is_client_error() => match page(&gw, &user, Some(e.message)).await {
            Ok(r) => (e.status, r).into_response(),
            Err(e) => error_page(&e, ACCESS),
        },
        Err(e) => error_page(&e, ACCESS),
    }
}
