//! `rampart az-setup`: the commands and environment that point the real Azure CLI at the
//! signed-in gateway (docs/azure-cli.md explains them). A self-signed gateway's certificate,
//! pinned by fingerprint here, is written out as a PEM file, since az trusts only CA files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use rampart_client::Trust;

use crate::cli::AzSetupArgs;
use crate::profile::{Profile, config_dir};

pub async fn run(args: AzSetupArgs) -> Result<ExitCode> {
    let profile = Profile::require()?;
    let url = profile.server.trim_end_matches('/').to_string();
    let bundle = match &profile.trust {
        Trust::SystemRoots => None,
        Trust::CaFile(path) => Some(path.clone()),
        Trust::Fingerprint(_) => {
            let path = match args.ca_file {
                Some(p) => p,
                None => config_dir()?.join("az-gateway.pem"),
            };
            let (host, port) = host_port(&url)?;
            let chain = rampart_client::trust::gateway_certificates(&host, port, &profile.trust).await?;
            // Only the pinned certificate: az trusts the file for every host it talks to.
            write_pem(&path, &chain[..chain.len().min(1)])?;
            Some(path)
        }
    };
    print!("{}", script(&url, bundle.as_deref(), args.azure_cloud));
    Ok(ExitCode::SUCCESS)
}

/// `https://host:port` as (host, port); IPv6 addresses in brackets.
fn host_port(url: &str) -> Result<(String, u16)> {
    let rest =
        url.strip_prefix("https://").ok_or_else(|| anyhow!("the gateway's URL {url} is not https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse().with_context(|| format!("port in {url}"))?),
        _ => (authority, 443),
    };
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

fn write_pem(path: &Path, chain: &[Vec<u8>]) -> Result<()> {
    if chain.is_empty() {
        return Err(anyhow!("the gateway presented no certificate"));
    }
    let mut pem = String::new();
    for der in chain {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(pem.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// The shell lines, commented, for a gateway at `url`.
fn script(url: &str, bundle: Option<&Path>, azure_cloud: bool) -> String {
    let mut out = format!("# The Azure CLI (az 2.62 or newer) against the Rampart gateway at {url}.\n");
    out.push_str("# The bastion and ssh extensions (offline: az extension add --source WHEEL):\n");
    out.push_str("az extension add --name bastion\naz extension add --name ssh\n");
    if let Some(path) = bundle {
        let path = PathBuf::from(path);
        out.push_str("# Trust the gateway's certificate (HTTPS, then the tunnel's WebSocket):\n");
        out.push_str(&format!("export REQUESTS_CA_BUNDLE={}\n", path.display()));
        out.push_str(&format!("export WEBSOCKET_CLIENT_CA_BUNDLE={}\n", path.display()));
    }
    out.push_str("# MSAL must not ask Microsoft's hosts about this authority:\n");
    out.push_str("az config set core.instance_discovery=false\n");
    let root = format!("{url}/");
    if azure_cloud {
        out.push_str("# AzureCloud itself pointed at the gateway (what --auth-type AAD needs):\n");
        out.push_str(&format!(
            "az cloud update -n AzureCloud --endpoint-resource-manager {root} --endpoint-active-directory {url} \
             --endpoint-active-directory-resource-id {root} --endpoint-management {root}\n"
        ));
    } else {
        out.push_str(&format!("az cloud register -n Rampart --endpoint-resource-manager {root}\n"));
        out.push_str("az cloud set -n Rampart\n");
    }
    out.push_str(&format!(
        "# Sign in as a user (approve the code at {url}/portal/device) or as a service principal:\n"
    ));
    out.push_str("az login --use-device-code\n");
    out.push_str("# az login --service-principal -u APP_ID -p SECRET --tenant TENANT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(host_port("https://gw.example:8443").ok(), Some(("gw.example".into(), 8443)));
        assert_eq!(host_port("https://gw.example").ok(), Some(("gw.example".into(), 443)));
        assert_eq!(host_port("https://[::1]:9443/").ok(), Some(("::1".into(), 9443)));
        assert!(host_port("http://gw.example").is_err());
    }

    #[test]
    fn the_script_names_the_cloud_and_the_bundle() {
        let s = script("https://gw:8443", Some(Path::new("/tmp/gw.pem")), false);
        assert!(s.contains("az cloud register -n Rampart --endpoint-resource-manager https://gw:8443/\n"));
        assert!(s.contains("export WEBSOCKET_CLIENT_CA_BUNDLE=/tmp/gw.pem\n"));
        let s = script("https://gw:8443", None, true);
        assert!(s.contains("az cloud update -n AzureCloud") && !s.contains("REQUESTS_CA_BUNDLE"));
    }
}
