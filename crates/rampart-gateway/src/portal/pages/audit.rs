//! The audit log in the portal: records filtered by user, target, result and time, whether the
//! hash chain verifies, and the same selection exported as CSV or JSON. Reading it needs what
//! the API's `audit list` needs (Reader has it); the page changes nothing.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rampart_proto::api::AuditRecord;
use serde::Deserialize;

use super::super::{PortalUser, error_page, render};
use crate::api::AppState;
use crate::api::audit::{AuditQuery, records, verification};

/// Records shown on the page when no limit is asked for (exports take the limit as given).
const PAGE_LIMIT: u32 = 200;

#[derive(Deserialize, Default)]
pub struct AuditForm {
    user: Option<String>,
    target: Option<String>,
    result: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
    /// `csv` or `json` on the export route.
    format: Option<String>,
}

impl AuditForm {
    fn query(&self, default_limit: Option<u32>) -> AuditQuery {
        AuditQuery {
            since: self.since.clone(),
            user: self.user.clone(),
            result: self.result.clone(),
            target: self.target.clone(),
            limit: self.limit.or(default_limit),
        }
    }

    /// The filters as a query string, for the export links.
    fn encoded(&self) -> String {
        let fields = [
            ("user", &self.user),
            ("target", &self.target),
            ("result", &self.result),
            ("since", &self.since),
        ];
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    signed_in: Option<&'a str>,
    csrf: &'a str,
    user: String,
    target: String,
    result: String,
    since: String,
    /// The results to filter by, and whether each is the one chosen.
    results: Vec<(&'static str, bool)>,
    /// "verified" or "broken", and what to say.
    chain: &'static str,
    chain_text: String,
    filters: String,
    rows: Vec<AuditRecord>,
    limit: u32,
}

pub async fn audit_page(
    State(gw): State<AppState>,
    user: PortalUser,
    Query(form): Query<AuditForm>,
) -> Response {
    let page = async {
        let rows = records(&gw, &user.caller, form.query(Some(PAGE_LIMIT))).await?;
        let (chain, chain_text) = match verification(&gw, &user.caller).await {
            Ok(v) => (
                "verified",
                format!("The hash chain verifies: {} records, none changed.", v.verified_records),
            ),
            Err(e) if e.code == "AuditChainBroken" => ("broken", e.message),
            Err(e) => return Err(e),
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(render(&AuditPage {
            signed_in: Some(user.name()),
            csrf: &user.csrf,
            user: text(&form.user),
            target: text(&form.target),
            result: text(&form.result),
            since: text(&form.since),
            results: ["allowed", "refused", "failed", "closed"]
                .into_iter()
                .map(|r| (r, form.result.as_deref() == Some(r)))
                .collect(),
            chain,
            chain_text,
            filters: form.encoded(),
            limit: form.limit.unwrap_or(PAGE_LIMIT),
            rows,
        }))
    };
    match page.await {
        Ok(r) => r,
        Err(e) => error_page(&e, super::super::HOME),
    }
}

/// `?format=csv|json`: the selection as a download.
pub async fn audit_export(
    State(gw): State<AppState>,
    user: PortalUser,
    Query(form): Query<AuditForm>,
) -> Response {
    let rows = match records(&gw, &user.caller, form.query(None)).await {
        Ok(rows) => rows,
        Err(e) => return error_page(&e, "/portal/audit"),
    };
    let (body, kind, name) = match form.format.as_deref() {
        Some("json") => {
            (serde_json::to_string_pretty(&rows).unwrap_or_default(), "application/json", "audit.json")
        }
        _ => (to_csv(&rows), "text/csv; charset=utf-8", "audit.csv"),
    };
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

const CSV_COLUMNS: &str = "id,time,event,user,clientAddress,bastionId,targetIp,targetPort,targetResourceId,protocol,result,reasonCode,reason,bytesToTarget,bytesFromTarget,durationMs,hash";

/// RFC 4180: every field quoted, quotes doubled. A field a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) gets a leading apostrophe, since user names and reasons come from
/// outside.
fn to_csv(rows: &[AuditRecord]) -> String {
    fn field(v: &str) -> String {
        let safe = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_string() };
        format!("\"{}\"", safe.replace('"', "\"\""))
    }
    let opt = |v: &Option<String>| field(v.as_deref().unwrap_or_default());
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut out = String::from(CSV_COLUMNS);
    out.push_str("\r\n");
    for r in rows {
        let cells = [
            r.id.to_string(),
            field(&r.time),
            field(&r.event),
            opt(&r.user),
            opt(&r.client_address),
            opt(&r.bastion_id),
            opt(&r.target_ip),
            r.target_port.map(|p| p.to_string()).unwrap_or_default(),
            opt(&r.target_resource_id),
            opt(&r.protocol),
            field(&r.result),
            opt(&r.reason_code),
            opt(&r.reason),
            num(r.bytes_to_target),
            num(r.bytes_from_target),
            num(r.duration_ms),
            opt(&r.hash),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_quotes_fields_and_defuses_formulas() {
        let record: rampart_proto::api::AuditRecord = serde_json::from_value(serde_json::json!({
            "id": 7, "time": "2026-12-06T10:00:00.000Z", "event": "sign-in", "user": "=cmd|' /C calc'!A0",
            "result": "refused", "reason": "said \"no\", twice"
        }))
        .expect("record");
        let csv = super::to_csv(&[record]);
        let line = csv.lines().nth(1).expect("a row");
        assert!(line.starts_with("7,\"2026-12-06T10:00:00.000Z\",\"sign-in\",\"'=cmd"), "{line}");
        assert!(line.contains("\"said \"\"no\"\", twice\""), "{line}");
        assert_eq!(csv.lines().next(), Some(super::CSV_COLUMNS));
    }
}
