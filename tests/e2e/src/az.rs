//! The real Azure CLI (`az`, from PyPI, with its `bastion` and `ssh` extensions) pointed at a
//! test gateway as a custom cloud. `tests/azure-cli/install.sh` installs it; the README's test
//! command exports `RAMPART_AZ` (the program) and `RAMPART_AZ_EXTENSION_DIR`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

use crate::Gateway;

/// One az profile (its own config directory) against one gateway.
pub struct Az {
    program: PathBuf,
    extensions: PathBuf,
    config: tempfile::TempDir,
    ca: PathBuf,
    pub url: String,
}

impl Az {
    /// A fresh profile with the gateway registered as the `Rampart` cloud and made current;
    /// `Err` (the caller prints it and skips) when az is not installed, saying why.
    pub fn new(gw: &Gateway) -> Result<Result<Az, String>> {
        Self::with_cloud(gw, false)
    }

    /// A fresh profile whose `AzureCloud` is pointed at the gateway: the set-up `az network
    /// bastion ssh --auth-type AAD` needs (its `ssh` extension picks the certificate's scope
    /// by cloud name).
    pub fn as_azure_cloud(gw: &Gateway) -> Result<Result<Az, String>> {
        Self::with_cloud(gw, true)
    }

    fn with_cloud(gw: &Gateway, azure_cloud: bool) -> Result<Result<Az, String>> {
        let (Some(program), Some(extensions)) =
            (std::env::var_os("RAMPART_AZ"), std::env::var_os("RAMPART_AZ_EXTENSION_DIR"))
        else {
            return Ok(Err(
                "RAMPART_AZ and RAMPART_AZ_EXTENSION_DIR are not set: the README's test command \
                           installs az with tests/azure-cli/install.sh"
                    .into(),
            ));
        };
        let program = PathBuf::from(program);
        if !program.exists() {
            return Ok(Err(format!("{} is missing", program.display())));
        }
        let config = tempfile::tempdir()?;
        // A fresh profile asks Microsoft's storage for az's latest version once a day: say it
        // was just asked, so az sends nothing beyond loopback.
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f");
        let version = r#"{"azure-cli": {"local": "2.91.0"}, "core": {"local": "2.91.0"}, "telemetry": {"local": "1.1.0"}}"#;
        std::fs::write(
            config.path().join("versionCheck.json"),
            format!(r#"{{"versions": {version}, "update_time": "{now}"}}"#),
        )?;
        let az = Az {
            program,
            extensions: PathBuf::from(extensions),
            config,
            ca: gw.data_dir.join("tls/cert.pem"),
            url: gw.url(),
        };
        az.ok(&["config", "set", "core.instance_discovery=false"])?;
        let root = format!("{}/", az.url);
        if azure_cloud {
            let endpoints = [
                ("--endpoint-resource-manager", root.as_str()),
                ("--endpoint-active-directory", az.url.as_str()),
                ("--endpoint-active-directory-resource-id", root.as_str()),
                ("--endpoint-management", root.as_str()),
            ];
            let mut args = vec!["cloud", "update", "-n", "AzureCloud"];
            args.extend(endpoints.iter().flat_map(|(flag, value)| [*flag, *value]));
            az.ok(&args)?;
        } else {
            az.ok(&["cloud", "register", "-n", "Rampart", "--endpoint-resource-manager", &root])?;
            az.ok(&["cloud", "set", "-n", "Rampart"])?;
        }
        Ok(Ok(az))
    }

    /// An az command with this profile and the gateway's certificate trusted.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.env("AZURE_CONFIG_DIR", self.config.path())
            .env("AZURE_EXTENSION_DIR", &self.extensions)
            .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
            .env("AZURE_CORE_NO_COLOR", "true")
            .env("AZURE_CORE_SURVEY_MESSAGE", "false")
            .env("REQUESTS_CA_BUNDLE", &self.ca)
            .env("WEBSOCKET_CLIENT_CA_BUNDLE", &self.ca)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `az ARGS` to completion (killed after two minutes).
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        crate::output_within(child, std::time::Duration::from_secs(120))
    }

    /// `az ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "az {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `az ARGS`, which must fail; its stderr.
    pub fn refused(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if out.status.success() {
            bail!("az {} succeeded: {}", args.join(" "), String::from_utf8_lossy(&out.stdout));
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Signs in as a service principal (`ad sp create-for-rbac`'s output).
    pub fn login_service_principal(&self, created: &serde_json::Value) -> Result<String> {
        let field = |k: &str| created[k].as_str().unwrap_or_default().to_string();
        self.ok(&[
            "login",
            "--service-principal",
            "-u",
            &field("appId"),
            "-p",
            &field("password"),
            "--tenant",
            &field("tenant"),
        ])
    }
}
