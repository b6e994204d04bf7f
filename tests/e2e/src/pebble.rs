//! Let's Encrypt's ACME test server, Debian's `pebble`, with its `pebble-challtestsrv` as the
//! DNS server that answers every name with 127.0.0.1, all on loopback ports. Pebble validates
//! TLS-ALPN-01 on the port it is given (the gateway's); its own HTTPS uses a certificate made
//! here by openssl, from a CA whose file the ACME client is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::{Process, free_port, wait_for_port};

pub struct Pebble {
    pub directory: String,
    /// The CA of Pebble's own HTTPS (for `--acme-ca-file`).
    pub https_ca: PathBuf,
    management: SocketAddr,
    dir: tempfile::TempDir,
    _pebble: Process,
    _dns: Process,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("openssl")?;
    ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

impl Pebble {
    /// Starts both, validating TLS-ALPN-01 challenges on 127.0.0.1:`tls_port`.
    pub fn start(tls_port: u16) -> Result<Pebble> {
        ensure!(
            Path::new("/usr/bin/pebble").exists(),
            "/usr/bin/pebble is missing: the README's test command installs Debian's pebble"
        );
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            d,
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pebble test CA"],
            ]
            .concat(),
        )?;
        openssl(
            d,
            &[&["req"][..], &ec, &["-keyout", "https.key", "-out", "https.csr", "-subj", "/CN=localhost"]]
                .concat(),
        )?;
        std::fs::write(
            d.join("ext.cnf"),
            "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )?;
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "https.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "https.pem",
            ],
        )?;

        let dns_port = free_port();
        let mut dns = Command::new("pebble-challtestsrv");
        dns.args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())]);
        let dns = Process::spawn_quiet(dns, "pebble-challtestsrv")?;

        let (port, management) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": d.join("https.pem"),
            "privateKey": d.join("https.key"),
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(d.join("pebble.json"), serde_json::to_vec_pretty(&config)?)?;
        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(d.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random pauses before validating, and no rejected nonces: a quick, steady test.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let pebble = Process::spawn_quiet(pebble, "pebble")?;
        let management = SocketAddr::from(([127, 0, 0, 1], management));
        let said = |what: &Process| format!("it said: {:?}", what.stderr_tail());
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(20))
            .and_then(|()| wait_for_port(management, Duration::from_secs(20)))
            .with_context(|| format!("pebble: {}; pebble-challtestsrv: {}", said(&pebble), said(&dns)))?;
        Ok(Pebble {
            directory: format!("https://127.0.0.1:{port}/dir"),
            https_ca: d.join("ca.pem"),
            management,
            dir,
            _pebble: pebble,
            _dns: dns,
        })
    }

    /// The root that certificates issued from now on chain to (a new one at every start), as a
    /// PEM file.
    pub fn issuing_root(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("issuing-root.pem");
        let out = Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(&self.https_ca)
            .arg(format!("https://{}/roots/0", self.management))
            .arg("-o")
            .arg(&path)
            .output()?;
        ensure!(out.status.success(), "pebble's root: {}", String::from_utf8_lossy(&out.stderr));
        Ok(path)
    }
}
