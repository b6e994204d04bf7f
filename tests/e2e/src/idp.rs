//! A real, certified OpenID provider for the single sign-on tests: the npm package
//! `oidc-provider` run by `web/tests/idp/provider.mjs` on a loopback port, over HTTPS with a
//! certificate from a CA made here (so the gateway trusts it with `--ca-file`, as it would a
//! company's private CA). Accounts and their groups live in a JSON file the test rewrites.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::{Process, free_port, repo_root};

pub const CLIENT_ID: &str = "rampart-gateway";
pub const CLIENT_SECRET: &str = "e2e-client-secret-0123456789abcdef";

pub struct Idp {
    pub process: Process,
    pub port: u16,
    pub issuer: String,
    /// The CA the provider's certificate chains to.
    pub ca_file: PathBuf,
    accounts: PathBuf,
    redirect_uris: Vec<String>,
    dir: tempfile::TempDir,
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("openssl")?;
    ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

impl Idp {
    /// Registers this provider with the gateway as `name`, as an administrator would
    /// (`identity-provider create`, the client secret on stdin, the provider's CA file).
    pub fn register_with(&self, gw: &crate::Gateway, name: &str) -> Result<()> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = gw
            .cli()
            .args(["identity-provider", "create", "--name", name, "--issuer", &self.issuer])
            .args(["--client-id", CLIENT_ID, "--client-secret-stdin", "--ca-file"])
            .arg(&self.ca_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{CLIENT_SECRET}")?;
        }
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "identity-provider create: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    /// Starts the provider with one confidential client that may use the code, refresh and
    /// device grants and return to `redirect_uris`.
    pub fn start(redirect_uris: &[String]) -> Result<Idp> {
        ensure!(
            repo_root().join("web/node_modules/oidc-provider").exists(),
            "web/node_modules/oidc-provider is missing: the README's test command runs `npm ci` in web/"
        );
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Rampart test corporate CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
        )?;
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "idp.key",
                "-out",
                "idp.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        )?;
        std::fs::write(d.join("ext"), "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n")?;
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "idp.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "idp.pem",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        )?;
        let accounts = d.join("accounts.json");
        std::fs::write(&accounts, "{}")?;
        let port = free_port();
        let (process, issuer) = Self::spawn(d, port, &accounts, redirect_uris)?;
        Ok(Idp {
            process,
            port,
            issuer,
            ca_file: d.join("ca.pem"),
            accounts,
            redirect_uris: redirect_uris.to_vec(),
            dir,
        })
    }

    fn spawn(
        d: &std::path::Path,
        port: u16,
        accounts: &std::path::Path,
        redirect_uris: &[String],
    ) -> Result<(Process, String)> {
        let clients = serde_json::json!([{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": ["code"],
        }]);
        // The provider is a fixture, not what is tested: a start that stalls (one did once, on
        // a loaded CI machine, after loading its modules) is retried, each failure reported.
        let mut failures = Vec::new();
        // Longer each time: a start that is slow (not stalled) under load gets its chance.
        for wait in [20, 30, 40] {
            let mut cmd = Command::new("node");
            cmd.arg(repo_root().join("web/tests/idp/provider.mjs"))
                .current_dir(repo_root().join("web"))
                .env("IDP_PORT", port.to_string())
                .env("IDP_CERT", d.join("idp.pem"))
                .env("IDP_KEY", d.join("idp.key"))
                .env("IDP_ACCOUNTS", accounts)
                .env("IDP_CLIENTS", clients.to_string());
            let mut process = Process::spawn_quiet(cmd, "oidc-provider")?;
            match process.wait_for_line("idp listening on", Duration::from_secs(wait)) {
                Ok(_) => return Ok((process, format!("https://127.0.0.1:{port}"))),
                Err(e) => {
                    eprintln!("the OpenID provider did not start: {e:#}");
                    process.terminate().ok();
                    failures.push(format!("{e:#}"));
                }
            }
        }
        bail!("the OpenID provider did not start in 3 tries: {}", failures.join(" | "))
    }

    /// Restarts the provider: same address and accounts, a new signing key (rotation); its
    /// sessions and refresh tokens are gone, as after a real provider's restart.
    pub fn restart(&mut self) -> Result<()> {
        self.process.terminate().ok();
        let (process, _) = Self::spawn(self.dir.path(), self.port, &self.accounts, &self.redirect_uris)?;
        self.process = process;
        Ok(())
    }

    /// Sets every account and its groups (read again by the provider at each sign-in and
    /// refresh).
    pub fn set_accounts(&self, accounts: &[(&str, &[&str])]) -> Result<()> {
        let map: BTreeMap<&str, serde_json::Value> = accounts
            .iter()
            .map(|(name, groups)| {
                (*name, serde_json::json!({ "groups": groups, "email": format!("{name}@example.com") }))
            })
            .collect();
        std::fs::write(&self.accounts, serde_json::to_string(&map)?)?;
        Ok(())
    }
}
