//! `rampart audit list`.

use std::process::ExitCode;

use anyhow::Result;
use rampart_client::api::{AuditQuery, Method};
use rampart_proto::api::AuditVerification;

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
    let profile = Profile::require()?;
    let client = profile.client()?;
    match cmd {
        AuditCommand::List { since, user, result, target, limit, output } => {
            let records =
                client.audit(&AuditQuery { since, user, result, target, limit: Some(limit) }).await?;
            print(&records, output, AUDIT_COLUMNS)?;
        }
        AuditCommand::Verify => {
            let v: AuditVerification = client
                .request::<(), _>(Method::GET, "/api/audit/verify", None)
                .await?
                .ok_or_else(|| anyhow::anyhow!("empty answer"))?;
            println!("audit log intact: {} records verified", v.verified_records);
            let named: Vec<_> = v.chains.iter().filter(|c| c.node.is_some()).collect();
            if named.is_empty() {
                if let Some(hash) = v.last_hash {
                    // Only an anchor kept elsewhere reveals records cut from the end of the log.
                    println!("last record hash: {hash} (keep it elsewhere; a later verify must reach it)");
                }
            } else {
                // One chain per node: each one's last hash is the anchor to keep.
                for c in &v.chains {
                    let name = c.node.as_deref().unwrap_or("(before nodes)");
                    let hash = c.last_hash.as_deref().unwrap_or("-");
                    println!("chain {name}: {} records, last hash {hash}", c.records);
                }
                println!("(keep each last hash elsewhere; a later verify must reach them)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
