//! `rampart network bastion create|show|list|update|delete|tunnel`.

use std::process::ExitCode;

use anyhow::Result;
use rampart_proto::api::BastionChange;

use crate::cli::{BastionCommand, BastionSettingsArgs, HostKeyCommand, SessionCommand};
use crate::output::print;
use crate::profile::Profile;
use rampart_client::api::{ApiClient, Method, urlencode};

const BASTION_COLUMNS: &[(&str, &str)] = &[
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("Sku", "sku.name"),
    ("NativeClient", "enableTunneling"),
    ("IpConnect", "enableIpConnect"),
    ("ReachableNetworks", "reachableNetworks"),
];

fn change(s: BastionSettingsArgs) -> BastionChange {
    BastionChange {
        sku: s.sku,
        enable_tunneling: s.enable_tunneling,
        enable_ip_connect: s.enable_ip_connect,
        reachable_networks: s.reachable_networks.map(|list| {
            list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect()
        }),
        idle_timeout_seconds: s.idle_timeout,
        max_session_duration_seconds: s.max_session_duration,
        disable_copy_paste: s.disable_copy_paste,
        enable_shareable_link: s.enable_shareable_link,
        file_transfer: s.file_transfer,
        file_transfer_max_mb: s.file_transfer_max_mb,
        enable_session_recording: s.enable_session_recording,
        allow_unrecorded_tunnels: s.allow_unrecorded_tunnels,
        session_recording_storage_url: s.session_recording_storage_url,
        recording_retention_days: s.recording_retention_days,
    }
}

const SESSION_COLUMNS: &[(&str, &str)] = &[
    ("SessionId", "sessionId"),
    ("User", "userName"),
    ("Client", "clientAddress"),
    ("Target", "targetIpAddress"),
    ("Port", "targetPort"),
    ("Protocol", "protocol"),
    ("Seconds", "durationSeconds"),
    ("ToTarget", "bytesToTarget"),
    ("FromTarget", "bytesFromTarget"),
];

/// The profile and its signed-in client, for the commands on things under a bastion.
async fn under_bastion() -> Result<(Profile, ApiClient)> {
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    Ok((profile, client))
}

/// The API path of something under a bastion (`sessions`, `hostKeys`).
fn bastion_part(profile: &Profile, b: &crate::cli::ResourceRef, part: &str) -> Result<String> {
    let sub = profile.subscription(b.subscription.as_deref())?;
    Ok(format!("/api/subscriptions/{sub}/resourceGroups/{}/bastionHosts/{}/{part}", b.resource_group, b.name))
}

const RECORDING_COLUMNS: &[(&str, &str)] = &[
    ("Id", "id"),
    ("User", "user"),
    ("Target", "target"),
    ("Protocol", "protocol"),
    ("Start", "start"),
    ("End", "end"),
    ("SizeBytes", "sizeBytes"),
];

async fn recordings(cmd: crate::cli::RecordingCommand) -> Result<ExitCode> {
    use crate::cli::RecordingCommand;
    use rampart_proto::recording::{RecordingVerification, RecordingView};
    let (profile, client) = under_bastion().await?;
    let path = |b: &crate::cli::ResourceRef| bastion_part(&profile, b, "recordings");
    match cmd {
        RecordingCommand::List { bastion, user, target, search, since, output } => {
            let mut query: Vec<String> = Vec::new();
            for (k, v) in [("user", user), ("target", target), ("search", search), ("since", since)] {
                if let Some(v) = v {
                    query.push(format!("{k}={}", urlencode(&v)));
                }
            }
            let qs = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
            let list: Option<Vec<RecordingView>> =
                client.request::<(), _>(Method::GET, &format!("{}{qs}", path(&bastion)?), None).await?;
            print(&list.unwrap_or_default(), output, RECORDING_COLUMNS)?;
        }
        RecordingCommand::Show { bastion, ids, output } => {
            let url = format!("{}/{}", path(&bastion)?, urlencode(&ids));
            let shown: Option<RecordingView> = client.request::<(), _>(Method::GET, &url, None).await?;
            print(&shown, output, RECORDING_COLUMNS)?;
        }
        RecordingCommand::Export { bastion, ids, output_file } => {
            let url = format!("{}/{}/content", path(&bastion)?, urlencode(&ids));
            let bytes = client.request_bytes(&url).await?;
            std::fs::write(&output_file, bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output_file.display()))?;
            eprintln!("wrote {}", output_file.display());
        }
        RecordingCommand::Verify { bastion, ids } => {
            let mut all_valid = true;
            let mut out = Vec::new();
            for id in ids {
                let url = format!("{}/{}/verify", path(&bastion)?, urlencode(&id));
                let checked: Option<RecordingVerification> =
                    client.request::<(), _>(Method::GET, &url, None).await?;
                if let Some(c) = checked {
                    all_valid &= c.valid;
                    out.push(c);
                }
            }
            print(&out, crate::cli::OutputFormat::Json, &[])?;
            if !all_valid {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn sessions(cmd: SessionCommand) -> Result<ExitCode> {
    let (profile, client) = under_bastion().await?;
    let path = |b: &crate::cli::ResourceRef| bastion_part(&profile, b, "sessions");
    match cmd {
        SessionCommand::List { bastion, output } => {
            let list: Option<Vec<rampart_proto::api::Session>> =
                client.request::<(), _>(Method::GET, &path(&bastion)?, None).await?;
            print(&list.unwrap_or_default(), output, SESSION_COLUMNS)?;
        }
        SessionCommand::Delete { bastion, ids } => {
            for id in ids {
                let url = format!("{}/{}", path(&bastion)?, urlencode(&id));
                client.request::<(), serde_json::Value>(Method::DELETE, &url, None).await?;
                eprintln!("disconnected session {id}");
            }
        }
        SessionCommand::Join { bastion, ids, mode } => {
            let interact = mode == crate::cli::JoinMode::Interact;
            let url = format!(
                "{}/{}/join?mode={}",
                path(&bastion)?,
                urlencode(&ids),
                if interact { "interact" } else { "view" }
            );
            let banner = if interact { "joined (you may type)" } else { "joined (view only)" };
            return super::join::run(&client, &url, interact, banner).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

const LINK_COLUMNS: &[(&str, &str)] =
    &[("Id", "id"), ("Vm", "vm.id"), ("ExpiresAt", "expiresAt"), ("CreatedBy", "createdBy"), ("Link", "bsl")];

async fn shareable_links(cmd: crate::cli::ShareableLinkCommand) -> Result<ExitCode> {
    use crate::cli::ShareableLinkCommand;
    use rampart_proto::shareable::{
        LinkedVm, ShareableLinkDelete, ShareableLinkList, ShareableLinkRequest, ShareableLinkTokens, VmRef,
    };
    let (profile, client) = under_bastion().await?;
    let vms = |ids: Vec<String>| -> Vec<LinkedVm> {
        ids.into_iter().map(|id| LinkedVm { vm: VmRef { id } }).collect()
    };
    match cmd {
        ShareableLinkCommand::Create { bastion, vms: ids, expires_in, output } => {
            let body = ShareableLinkRequest { vms: vms(ids), expires_in };
            let url = bastion_part(&profile, &bastion, "createShareableLinks")?;
            let made: Option<ShareableLinkList> = client.request(Method::POST, &url, Some(&body)).await?;
            print(&made.unwrap_or_default().value, output, LINK_COLUMNS)?;
            eprintln!("each link is shown only now: the gateway keeps its hash, not the link");
        }
        ShareableLinkCommand::List { bastion, vms: ids, output } => {
            let body = ShareableLinkRequest { vms: vms(ids), expires_in: None };
            let url = bastion_part(&profile, &bastion, "getShareableLinks")?;
            let list: Option<ShareableLinkList> = client.request(Method::POST, &url, Some(&body)).await?;
            print(&list.unwrap_or_default().value, output, LINK_COLUMNS)?;
        }
        ShareableLinkCommand::Delete { bastion, ids, vms: vm_ids, tokens } => {
            let mut deleted = Vec::new();
            if !ids.is_empty() || !vm_ids.is_empty() {
                let body = ShareableLinkDelete { vms: vms(vm_ids), ids };
                let url = bastion_part(&profile, &bastion, "deleteShareableLinks")?;
                let gone: Option<ShareableLinkList> = client.request(Method::POST, &url, Some(&body)).await?;
                deleted.extend(gone.unwrap_or_default().value);
            }
            if !tokens.is_empty() {
                let body = ShareableLinkTokens { tokens };
                let url = bastion_part(&profile, &bastion, "deleteShareableLinksByToken")?;
                let gone: Option<ShareableLinkList> = client.request(Method::POST, &url, Some(&body)).await?;
                deleted.extend(gone.unwrap_or_default().value);
            }
            for l in &deleted {
                eprintln!("deleted shareable link {} to {}", l.id, l.vm.id);
            }
            if deleted.is_empty() {
                eprintln!("no link matched: nothing deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const HOST_KEY_COLUMNS: &[(&str, &str)] =
    &[("Target", "target"), ("Kind", "kind"), ("PinnedAt", "pinnedAt"), ("Key", "key")];

async fn host_keys(cmd: HostKeyCommand) -> Result<ExitCode> {
    let (profile, client) = under_bastion().await?;
    let path = |b: &crate::cli::ResourceRef| bastion_part(&profile, b, "hostKeys");
    match cmd {
        HostKeyCommand::List { bastion, output } => {
            let list: Option<Vec<rampart_proto::api::PinnedHostKey>> =
                client.request::<(), _>(Method::GET, &path(&bastion)?, None).await?;
            print(&list.unwrap_or_default(), output, HOST_KEY_COLUMNS)?;
        }
        HostKeyCommand::Forget { bastion, target, kind } => {
            let mut url = format!("{}?target={}", path(&bastion)?, urlencode(&target));
            if let Some(kind) = &kind {
                url.push_str(&format!("&kind={}", urlencode(kind)));
            }
            client.request::<(), serde_json::Value>(Method::DELETE, &url, None).await?;
            eprintln!("forgot the key pinned for {target}; the next session pins the one it is shown");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cmd: BastionCommand) -> Result<ExitCode> {
    let cmd = match cmd {
        BastionCommand::Tunnel(args) => return super::tunnel::run(args).await,
        BastionCommand::Ssh(args) => return super::ssh::ssh(args).await,
        BastionCommand::Rdp(args) => return super::rdp::run(args).await,
        BastionCommand::Session(cmd) => return sessions(cmd).await,
        BastionCommand::HostKey(cmd) => return host_keys(cmd).await,
        BastionCommand::Recording(cmd) => return recordings(cmd).await,
        BastionCommand::ShareableLink(cmd) => return shareable_links(cmd).await,
        other => other,
    };
    let mut profile = Profile::require()?;
    let client = profile.client()?;
    profile.ensure_subscription(&client).await?;
    match cmd {
        BastionCommand::Create { bastion: b, settings, output } => {
            let sub = profile.subscription(b.subscription.as_deref())?;
            let created = client.create_bastion(&sub, &b.resource_group, &b.name, &change(settings)).await?;
            print(&created, output, BASTION_COLUMNS)?;
        }
        BastionCommand::Show { bastion: b, output } => {
            let sub = profile.subscription(b.subscription.as_deref())?;
            print(&client.bastion(&sub, &b.resource_group, &b.name).await?, output, BASTION_COLUMNS)?;
        }
        BastionCommand::List { resource_group, subscription, output } => {
            let sub = profile.subscription(subscription.as_deref())?;
            print(&client.bastions(&sub, resource_group.as_deref()).await?, output, BASTION_COLUMNS)?;
        }
        BastionCommand::Update { bastion: b, settings, output } => {
            let sub = profile.subscription(b.subscription.as_deref())?;
            let change = change(settings);
            if change == BastionChange::default() {
                anyhow::bail!(
                    "nothing to update: give --sku, --enable-tunneling, --enable-ip-connect, --reachable-networks, --idle-timeout or --max-session-duration"
                );
            }
            let updated = client.update_bastion(&sub, &b.resource_group, &b.name, &change).await?;
            print(&updated, output, BASTION_COLUMNS)?;
        }
        BastionCommand::Delete { bastion: b } => {
            let sub = profile.subscription(b.subscription.as_deref())?;
            client.delete_bastion(&sub, &b.resource_group, &b.name).await?;
            eprintln!("deleted bastion '{}' in resource group '{}'", b.name, b.resource_group);
        }
        BastionCommand::Tunnel(_)
        | BastionCommand::Ssh(_)
        | BastionCommand::Rdp(_)
        | BastionCommand::Session(_)
        | BastionCommand::HostKey(_)
        | BastionCommand::Recording(_)
        | BastionCommand::ShareableLink(_) => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}
