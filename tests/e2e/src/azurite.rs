//! Microsoft's Azure Blob Storage emulator, npm `azurite`, on a loopback port with its data
//! in a temporary directory. Containers are made and inspected with an account SAS, and the
//! gateway is handed a container SAS, both signed here with the emulator's well-known
//! account key (HMAC-SHA256 by the `hmac` crate), as a storage account owner would make them.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use hmac::{Hmac, Mac};

use crate::{Process, free_port, repo_root};

/// The emulator's account and its published key (Azurite's README).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const VERSION: &str = "2022-11-02";

pub struct Azurite {
    pub process: Process,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn sign(text: &str) -> Result<String> {
    let key = base64::engine::general_purpose::STANDARD.decode(ACCOUNT_KEY)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).context("hmac key")?;
    mac.update(text.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn expiry() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(6)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Azurite {
    pub fn start() -> Result<Azurite> {
        let bin = repo_root().join("web/node_modules/.bin/azurite-blob");
        ensure!(
            bin.exists(),
            "{} is missing: the README's test command runs `npm ci` in web/",
            bin.display()
        );
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(dir.path())
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--loose", "--silent"]);
        let mut process = Process::spawn_quiet(cmd, "azurite")?;
        process.wait_for_line("successfully listens", Duration::from_secs(30))?;
        Ok(Azurite { process, port, _dir: dir })
    }

    fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// An account SAS for everything on blobs: what the test itself uses.
    fn account_sas(&self) -> Result<String> {
        let (sp, ss, srt, se) = ("racwdl", "b", "sco", expiry());
        let to_sign = format!("{ACCOUNT}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n\n{VERSION}\n\n");
        Ok(format!(
            "sv={VERSION}&ss={ss}&srt={srt}&sp={sp}&se={}&sig={}",
            encode(&se),
            encode(&sign(&to_sign)?)
        ))
    }

    /// A container SAS URL with `permissions` (in Azure's order, e.g. `racwdl`): what an
    /// operator gives `--session-recording-storage-url`.
    pub fn container_sas_url(&self, container: &str, permissions: &str) -> Result<String> {
        let se = expiry();
        let resource = format!("/blob/{ACCOUNT}/{container}");
        let to_sign = format!("{permissions}\n\n{se}\n{resource}\n\n\n\n{VERSION}\nc\n\n\n\n\n\n\n");
        Ok(format!(
            "{}/{container}?sv={VERSION}&sr=c&sp={permissions}&se={}&sig={}",
            self.account_url(),
            encode(&se),
            encode(&sign(&to_sign)?)
        ))
    }

    fn curl(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = Command::new("curl")
            .args(["-sS", "-f", "--max-time", "20"])
            .args(args)
            .output()
            .context("curl")?;
        ensure!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(out.stdout)
    }

    pub fn create_container(&self, container: &str) -> Result<()> {
        let url = format!("{}/{container}?restype=container&{}", self.account_url(), self.account_sas()?);
        self.curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("x-ms-version: {VERSION}"),
            "-H",
            "Content-Length: 0",
            &url,
        ])?;
        Ok(())
    }

    /// The names of the blobs in a container under `prefix`.
    pub fn list(&self, container: &str, prefix: &str) -> Result<Vec<String>> {
        let url = format!(
            "{}/{container}?restype=container&comp=list&prefix={}&{}",
            self.account_url(),
            encode(prefix),
            self.account_sas()?
        );
        let xml = String::from_utf8(self.curl(&["-H", &format!("x-ms-version: {VERSION}"), &url])?)?;
        Ok(xml
            .split("<Name>")
            .skip(1)
            .filter_map(|rest| rest.split("</Name>").next())
            .map(str::to_string)
            .collect())
    }

    pub fn get(&self, container: &str, blob: &str) -> Result<Vec<u8>> {
        let url = format!("{}/{container}/{blob}?{}", self.account_url(), self.account_sas()?);
        self.curl(&["-H", &format!("x-ms-version: {VERSION}"), &url])
    }

    pub fn put(&self, container: &str, blob: &str, bytes: &[u8]) -> Result<()> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), bytes)?;
        let url = format!("{}/{container}/{blob}?{}", self.account_url(), self.account_sas()?);
        let data = format!("@{}", file.path().display());
        self.curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("x-ms-version: {VERSION}"),
            "-H",
            "x-ms-blob-type: BlockBlob",
            "--data-binary",
            &data,
            &url,
        ])?;
        Ok(())
    }
}
