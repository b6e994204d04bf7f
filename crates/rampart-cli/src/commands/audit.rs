//! `rampart audit list`.

use std::process::ExitCode;

use anyhow::Result;
use rampart_client::api::AuditQuery;

use crate::cli::AuditCommand;
use crate::output::print;
use crate::profile::Profile;

const AUDIT_COLUMNS: &[(&str, &str)] = &[
    ("Time", "time"),
    ("Event", "event"),
    ("User", "user"),
    ("Client", "clientAddress"),
    ("Target", "targetIp"),
    ("Port", "targetPort"),
    ("Result", "result"),
    ("Reason", "reasonCode"),
    ("ToTarget", "bytesToTarget"),
    ("FromTarget", "bytesFromTarget"),
    ("Ms", "durationMs"),
];

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::List { since, user, result, limit, output } = cmd;
    let profile = Profile::require()?;
    let records = profile.client()?.audit(&AuditQuery { since, user, result, limit: Some(limit) }).await?;
    print(&records, output, AUDIT_COLUMNS)?;
    Ok(ExitCode::SUCCESS)
}
