//! Recordings in the portal: a bastion's recordings (filtered by user and by text they
//! showed), and a player (xterm.js) with play/pause, seeking, speed and finding the moment a
//! text appeared. The same action as the API's guards every page and the bytes.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use rampart_core::{AuditEvent, Scope};
use rampart_proto::recording::RecordingView;
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::recordings::{RECORDINGS, content, find, matching, view};
use crate::api::{ApiError, AppState};

#[derive(Deserialize, Default)]
pub struct RecordingsQuery {
    bastion: Option<String>,
    user: Option<String>,
    search: Option<String>,
    find: Option<String>,
}

#[derive(Template)]
#[template(path = "recordings.html")]
struct RecordingsPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    bastion_id: String,
    bastion_name: String,
    user: String,
    search: String,
    rows: Vec<RecordingView>,
}

#[derive(Template)]
#[template(path = "player.html")]
struct PlayerPage {
    id: String,
    bastion_id: String,
    find: String,
    /// A desktop's recording (a canvas) rather than a terminal's.
    desktop: bool,
}

/// The bastion named in the query, if the user may see its recordings.
async fn bastion(
    gw: &AppState,
    user: &PortalUser,
    raw: Option<&str>,
) -> Result<rampart_core::ResourceId, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad_request("InvalidResourceId", "no bastion was named"))?;
    let id = gw.admission.resolve_bastion(raw).await?;
    user.caller.require(gw, AuditEvent::Read, RECORDINGS, &Scope::Resource(id.clone())).await?;
    Ok(id)
}

pub async fn recordings_page(
    State(gw): State<AppState>,
    user: PortalUser,
    Query(q): Query<RecordingsQuery>,
) -> Response {
    let page = async {
        let id = bastion(&gw, &user, q.bastion.as_deref()).await?;
        let (who, search) = (q.user.unwrap_or_default(), q.search.unwrap_or_default());
        let rows: Vec<_> =
            matching(&gw, &id, Some(&who), None, Some(&search)).await?.iter().map(view).collect();
        Ok::<Response, ApiError>(render(&RecordingsPage {
            signed_in: Some(user.name()),
            csrf: &user.csrf,
            bastion_id: id.to_string(),
            bastion_name: id.name.clone(),
            user: who,
            search,
            rows,
        }))
    };
    match page.await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

pub async fn player_page(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(rec): Path<String>,
    Query(q): Query<RecordingsQuery>,
) -> Response {
    let page = async {
        let id = bastion(&gw, &user, q.bastion.as_deref()).await?;
        let r = find(&gw, &id, &rec).await?;
        Ok::<_, ApiError>(PlayerPage {
            id: rec,
            bastion_id: id.to_string(),
            find: q.find.unwrap_or_default(),
            desktop: !crate::recording::is_terminal(&r.format),
        })
    };
    match page.await {
        Ok(page) => render(&page),
        Err(e) => error_page(&e, super::super::HOME),
    }
}

pub async fn cast(
    State(gw): State<AppState>,
    user: PortalUser,
    Path(rec): Path<String>,
    Query(q): Query<RecordingsQuery>,
) -> Response {
    let answer = async {
        let id = bastion(&gw, &user, q.bastion.as_deref()).await?;
        content(&gw, &find(&gw, &id, &rec).await?).await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}
