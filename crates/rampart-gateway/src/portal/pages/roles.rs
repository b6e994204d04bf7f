//! Role assignments in the portal: the assignments the signed-in user may see, a form that
//! assigns a built-in or custom role to a user, group or service principal at a scope, and a
//! Remove button on each assignment the user may remove. Buttons appear only where the user
//! holds the permission, and every change goes through the API's own functions, which check
//! it again (a Reader sees the page and cannot change it, whatever they send).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use rampart_core::Scope;
use rampart_proto::api::{RoleAssignmentCreate, RoleAssignmentView};
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::access::{AssignmentQuery, assign, assignments, may_assign, may_unassign, unassign};
use crate::api::caller::all_roles;
use crate::api::{ApiError, AppState};

const ROLES: &str = "/portal/roles";

struct Row {
    view: RoleAssignmentView,
    removable: bool,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    /// Where the form starts: the first subscription the user may assign at.
    default_scope: String,
    /// Built-in and custom role names, for the form.
    roles: Vec<String>,
    can_assign: bool,
    rows: Vec<Row>,
}

async fn page(gw: &AppState, user: &PortalUser, error: Option<String>) -> Result<Response, ApiError> {
    let caller = &user.caller;
    let subscriptions = gw.store.list_subscriptions().await?;
    let assignable: Vec<Scope> = subscriptions
        .iter()
        .map(|s| Scope::Subscription(s.id.clone()))
        .filter(|s| may_assign(caller, s))
        .collect();
    let listed =
        assignments(gw, caller, AssignmentQuery { include_eligible: true, ..Default::default() }).await?;
    let rows = listed
        .into_iter()
        .map(|view| {
            let removable = view.scope.parse::<Scope>().is_ok_and(|s| may_unassign(caller, &s));
            Row { view, removable }
        })
        .collect();
    Ok(render(&RolesPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        error,
        default_scope: assignable.first().map(|s| s.to_string()).unwrap_or_default(),
        roles: all_roles(gw).await?.into_iter().map(|r| r.name).collect(),
        can_assign: !assignable.is_empty() || caller.assignments.iter().any(|a| may_assign(caller, &a.scope)),
        rows,
    }))
}

pub async fn roles_page(State(gw): State<AppState>, user: PortalUser) -> Response {
    match page(&gw, &user, None).await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

#[derive(Deserialize)]
pub struct RolesForm {
    csrf: String,
    action: String,
    assignee: Option<String>,
    role: Option<String>,
    scope: Option<String>,
    id: Option<String>,
}

pub async fn change_roles(
    State(gw): State<AppState>,
    user: PortalUser,
    Form(form): Form<RolesForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).unwrap_or_default();
    let done = match form.action.as_str() {
        "assign" => {
            let body = RoleAssignmentCreate {
                assignee: text(form.assignee),
                assignee_principal_type: None,
                role: text(form.role),
                scope: text(form.scope),
                condition: None,
                eligibility: None,
            };
            assign(&gw, &user.caller, body).await.map(|_| ())
        }
        "remove" => unassign(&gw, &user.caller, &text(form.id)).await,
        _ => Err(ApiError::bad_request("InvalidAction", "assign or remove")),
    };
    match done {
        Ok(()) => Redirect::to(ROLES).into_response(),
        Err(e) if e.status.is_client_error() => match page(&gw, &user, Some(e.message)).await {
            Ok(r) => (e.status, r).into_response(),
            Err(e) => error_page(&e, ROLES),
        },
        Err(e) => error_page(&e, ROLES),
    }
}
