//! Home: the bastions the user may read and the machines they may reach through each.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use rampart_core::{Bastion, Scope, Tier};

use super::super::{HOME, PortalUser, error_page, render};
use super::{MachineRow, machine_row, reachable_machines};
use crate::api::bastions::{READ, WRITE};
use crate::api::{ApiError, AppState};
use crate::server::Gateway;

struct BastionCard {
    id: String,
    name: String,
    resource_group: String,
    tier: Tier,
    networks: String,
    may_operate: bool,
    machines: Vec<MachineRow>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    bastions: Vec<BastionCard>,
}

fn networks(b: &Bastion) -> String {
    if b.settings.reachable_networks.is_empty() {
        "no network yet".to_string()
    } else {
        b.settings.reachable_networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

pub async fn home(State(gw): State<AppState>, user: PortalUser) -> Response {
    match home_page(&gw, &user).await {
        Ok(r) => r,
        Err(e) => error_page(&e, HOME),
    }
}

async fn home_page(gw: &Gateway, user: &PortalUser) -> Result<Response, ApiError> {
    let mut cards = Vec::new();
    for sub in gw.store.list_subscriptions().await? {
        for b in gw.store.list_bastions(&sub.id, None).await? {
            let scope = Scope::Resource(b.id.clone());
            if !user.caller.may(READ, &scope) {
                continue;
            }
            let machines = reachable_machines(gw, user, &b).await?;
            cards.push(BastionCard {
                id: b.id.to_string(),
                name: b.id.name.clone(),
                resource_group: b.id.resource_group.clone(),
                tier: b.settings.tier,
                networks: networks(&b),
                may_operate: user.caller.may(WRITE, &scope)
                    || user.caller.may(crate::api::sessions::LIST, &scope),
                machines: machines.iter().map(|m| machine_row(m, false)).collect(),
            });
        }
    }
    Ok(render(&HomePage { signed_in: Some(user.name()), csrf: &user.csrf, bastions: cards }))
}
