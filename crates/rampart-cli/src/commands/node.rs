//! `rampart node list|drain`.

use std::process::ExitCode;

use anyhow::Result;
use rampart_client::api::Method;
use rampart_proto::api::Node;

use crate::cli::NodeCommand;
use crate::output::print;
use crate::profile::Profile;

const NODE_COLUMNS: &[(&str, &str)] = &[
    ("Name", "name"),
    ("Address", "address"),
    ("State", "state"),
    ("LastHeartbeat", "lastHeartbeat"),
    ("AgeSeconds", "heartbeatAgeSeconds"),
    ("Sessions", "sessions"),
];

pub async fn run(cmd: NodeCommand) -> Result<ExitCode> {
    let client = Profile::require()?.client()?;
    match cmd {
        NodeCommand::List { output } => {
            let nodes: Vec<Node> =
                client.request::<(), _>(Method::GET, "/api/nodes", None).await?.unwrap_or_default();
            print(&nodes, output, NODE_COLUMNS)?;
        }
        NodeCommand::Drain { name } => {
            let path = format!("/api/nodes/{}/drain", rampart_client::api::urlencode(&name));
            client.request::<(), serde_json::Value>(Method::POST, &path, None).await?;
            println!("node '{name}' is draining: it takes no new work and stops once its sessions end");
        }
    }
    Ok(ExitCode::SUCCESS)
}
