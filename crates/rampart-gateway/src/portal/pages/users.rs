//! Users and groups in the portal: every local and federated user, the identity providers'
//! groups with their members, and, for those who administer users, forms that create a local
//! user and add a provider's group, and a Delete button per user (never oneself). Reading needs what `ad user list` needs.
//! Changes go through the API's own functions.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use rampart_proto::api::{UserCreate, UserView};
use rampart_proto::directory::{GroupCreate, GroupView};
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::access::{add_user, may_administer_users, remove_user, users};
use crate::api::federation::{add_group, groups};
use crate::api::{ApiError, AppState};

const USERS: &str = "/portal/users";

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    error: Option<String>,
    admin: bool,
    me: String,
    users: Vec<UserView>,
    groups: Vec<GroupView>,
    /// Identity providers' names, for adding a group (administrators only).
    providers: Vec<String>,
}

async fn page(gw: &AppState, user: &PortalUser, error: Option<String>) -> Result<Response, ApiError> {
    let caller = &user.caller;
    let admin = may_administer_users(gw, caller).await?;
    let providers = if admin {
        gw.store.list_identity_providers().await?.into_iter().map(|p| p.name).collect()
    } else {
        Vec::new()
    };
    Ok(render(&UsersPage {
        signed_in: Some(user.name()),
        csrf: &user.csrf,
        error,
        admin,
        me: user.name().to_string(),
        users: users(gw, caller).await?,
        groups: groups(gw, caller).await?,
        providers,
    }))
}

pub async fn users_page(State(gw): State<AppState>, user: PortalUser) -> Response {
    match page(&gw, &user, None).await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

#[derive(Deserialize)]
pub struct UsersForm {
    csrf: String,
    action: String,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    password: Option<String>,
    external_id: Option<String>,
    identity_provider: Option<String>,
}

pub async fn change_users(
    State(gw): State<AppState>,
    user: PortalUser,
    Form(form): Form<UsersForm>,
) -> Response {
    if let Err(refused) = user.check_csrf(&form.csrf) {
        return refused.into_response();
    }
    let upn = form.user_principal_name.as_deref().map(str::trim).unwrap_or_default().to_string();
    let done = match form.action.as_str() {
        "create" => {
            let body = UserCreate {
                user_principal_name: upn,
                display_name: form.display_name.map(|d| d.trim().to_string()).filter(|d| !d.is_empty()),
                password: form.password.unwrap_or_default(),
            };
            add_user(&gw, &user.caller, body).await.map(|_| ())
        }
        "delete" => remove_user(&gw, &user.caller, &upn).await,
        "create_group" => {
            let body = GroupCreate {
                external_id: form.external_id.unwrap_or_default(),
                identity_provider: form.identity_provider.unwrap_or_default(),
                display_name: form.display_name.map(|d| d.trim().to_string()).filter(|d| !d.is_empty()),
            };
            add_group(&gw, &user.caller, body).await.map(|_| ())
        }
        _ => Err(ApiError::bad_request("InvalidAction", "create, delete or create_group")),
    };
    match done {
        Ok(()) => Redirect::to(USERS).into_response(),
        Err(e) if e.status.is_client_error() => match page(&gw, &user, Some(e.message)).await {
            Ok(r) => (e.status, r).into_response(),
            Err(e) => error_page(&e, USERS),
        },
        Err(e) => error_page(&e, USERS),
    }
}
