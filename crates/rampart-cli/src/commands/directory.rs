//! `rampart identity-provider …` and `rampart ad group …`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use rampart_client::api::{Method, urlencode};
use rampart_proto::directory::{GroupCreate, GroupView, IdentityProviderCreate, IdentityProviderView};

use crate::cli::{GroupCommand, IdentityProviderCommand};
use crate::output::print;
use crate::profile::Profile;

const PROVIDER_COLUMNS: &[(&str, &str)] =
    &[("Name", "name"), ("Issuer", "issuer"), ("ClientId", "clientId"), ("RedirectUri", "redirectUri")];
const GROUP_COLUMNS: &[(&str, &str)] = &[
    ("DisplayName", "displayName"),
    ("Id", "id"),
    ("IdentityProvider", "identityProvider"),
    ("Members", "members"),
];

pub async fn identity_provider(cmd: IdentityProviderCommand) -> Result<ExitCode> {
    let profile = Profile::require()?;
    let client = profile.client()?;
    let none: Option<&()> = None;
    match cmd {
        IdentityProviderCommand::Create {
            name,
            issuer,
            client_id,
            client_secret_stdin: _,
            groups_claim,
            username_claim,
            allowed_domains,
            ca_file,
            output,
        } => {
            let mut secret = String::new();
            std::io::stdin()
                .read_to_string(&mut secret)
                .context("cannot read the client secret from standard input")?;
            let client_secret = secret.trim_end_matches(['\n', '\r']).to_string();
            if client_secret.is_empty() {
                bail!("standard input held no client secret");
            }
            let ca_pem = match ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                ),
                None => None,
            };
            let body = IdentityProviderCreate {
                name,
                issuer,
                client_id,
                client_secret,
                username_claim: Some(username_claim),
                groups_claim: Some(groups_claim),
                allowed_domains: allowed_domains
                    .iter()
                    .flat_map(|d| d.split(','))
                    .map(str::to_string)
                    .collect(),
                ca_pem,
            };
            let created: Option<IdentityProviderView> =
                client.request(Method::POST, "/api/identityProviders", Some(&body)).await?;
            print(&created, output, PROVIDER_COLUMNS)?;
        }
        IdentityProviderCommand::List { output } => {
            let list: Option<Vec<IdentityProviderView>> =
                client.request(Method::GET, "/api/identityProviders", none).await?;
            print(&list.unwrap_or_default(), output, PROVIDER_COLUMNS)?;
        }
        IdentityProviderCommand::Show { name, output } => {
            let shown: Option<IdentityProviderView> = client
                .request(Method::GET, &format!("/api/identityProviders/{}", urlencode(&name)), none)
                .await?;
            print(&shown, output, PROVIDER_COLUMNS)?;
        }
        IdentityProviderCommand::Delete { name } => {
            let _: Option<serde_json::Value> = client
                .request(Method::DELETE, &format!("/api/identityProviders/{}", urlencode(&name)), none)
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn group(cmd: GroupCommand) -> Result<ExitCode> {
    let profile = Profile::require()?;
    let client = profile.client()?;
    match cmd {
        GroupCommand::Create { external_id, identity_provider, display_name, output } => {
            let body = GroupCreate { external_id, identity_provider, display_name };
            let created: Option<GroupView> = client.request(Method::POST, "/api/groups", Some(&body)).await?;
            print(&created, output, GROUP_COLUMNS)?;
        }
        GroupCommand::List { output } => {
            let none: Option<&()> = None;
            let list: Option<Vec<GroupView>> = client.request(Method::GET, "/api/groups", none).await?;
            print(&list.unwrap_or_default(), output, GROUP_COLUMNS)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
