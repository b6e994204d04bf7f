//! `rampart serve`: settings from flags, `RAMPART_*` variables and a TOML file (in that
//! order of precedence), then the gateway until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use rampart_gateway::Gateway;
use rampart_gateway::GatewayConfig;
use rampart_gateway::config::{MetricsEndpoint, Secret};
use serde::Deserialize;

use crate::cli::ServeArgs;

/// The TOML file: the same settings as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_password: Option<String>,
    access_token_ttl: Option<u64>,
    refresh_token_ttl: Option<u64>,
    tunnel_token_ttl: Option<u64>,
    login_max_failures: Option<u32>,
    login_window: Option<u64>,
    target_connect_timeout: Option<u64>,
    keepalive: Option<u64>,
    ssh_certificate_ttl: Option<u64>,
    drain_timeout: Option<u64>,
    metrics: Option<String>,
    log_format: Option<String>,
}

/// The gateway's settings, and whether logs are JSON.
fn gateway_config(args: ServeArgs) -> Result<(GatewayConfig, bool)> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not a valid configuration", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = args.listen.or(file.listen).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8443)));
    let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("rampart-data"));
    let mut c = GatewayConfig::new(listen, data_dir);
    c.tls_cert = args.tls_cert.or(file.tls_cert);
    c.tls_key = args.tls_key.or(file.tls_key);
    if c.tls_cert.is_some() != c.tls_key.is_some() {
        anyhow::bail!("tls_cert and tls_key go together: give both or neither");
    }
    c.admin_password = args.admin_password.or(file.admin_password).map(Secret);
    let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
        flag.or(file).map(Duration::from_secs).unwrap_or(default)
    };
    c.access_token_ttl = secs(args.access_token_ttl, file.access_token_ttl, c.access_token_ttl);
    c.refresh_token_ttl = secs(args.refresh_token_ttl, file.refresh_token_ttl, c.refresh_token_ttl);
    c.tunnel_token_ttl = secs(args.tunnel_token_ttl, file.tunnel_token_ttl, c.tunnel_token_ttl);
    c.login_window = secs(args.login_window, file.login_window, c.login_window);
    c.target_connect_timeout =
        secs(args.target_connect_timeout, file.target_connect_timeout, c.target_connect_timeout);
    c.keepalive = secs(args.keepalive, file.keepalive, c.keepalive);
    c.ssh_certificate_ttl = secs(args.ssh_certificate_ttl, file.ssh_certificate_ttl, c.ssh_certificate_ttl);
    c.drain_timeout = secs(args.drain_timeout, file.drain_timeout, c.drain_timeout);
    c.metrics = match args.metrics.or(file.metrics).as_deref().map(str::trim) {
        None | Some("https") | Some("on") => MetricsEndpoint::Https,
        Some("off") => MetricsEndpoint::Off,
        Some(addr) => MetricsEndpoint::Listen(
            addr.parse().with_context(|| format!("--metrics '{addr}': expected https, off or ADDR:PORT"))?,
        ),
    };
    c.login_max_failures =
        args.login_max_failures.or(file.login_max_failures).unwrap_or(c.login_max_failures);
    if c.keepalive.is_zero() || c.tunnel_token_ttl.is_zero() || c.access_token_ttl.is_zero() {
        anyhow::bail!("keepalive and token lifetimes must be at least 1 second");
    }
    let json = match args.log_format.or(file.log_format).as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => anyhow::bail!("log format '{other}': expected text or json"),
    };
    Ok((c, json))
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let (config, json_logs) = gateway_config(args)?;
    init_logging(json_logs);
    let store = rampart_gateway::open_sqlite_store(&config).await?;
    let started = Gateway::bind(config, store).await?;
    let r = &started.report;
    let mut out = std::io::stdout().lock();
    writeln!(out, "rampart gateway {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "data directory: {}", r.data_dir)?;
    let origin = if r.cert_generated { " (self-signed, generated now)" } else { "" };
    writeln!(out, "TLS certificate: {}{origin}", r.cert_path)?;
    writeln!(out, "TLS fingerprint: {}", r.fingerprint)?;
    if r.admin_created {
        match &r.generated_admin_password {
            Some(p) => writeln!(out, "bootstrap admin: user 'admin', password {p} (shown once: keep it)")?,
            None => writeln!(out, "bootstrap admin: user 'admin', password from RAMPART_ADMIN_PASSWORD")?,
        }
    }
    writeln!(out, "listening on https://{}", r.listen)?;
    writeln!(
        out,
        "sign in with: rampart login --server https://{} --username admin --fingerprint {}",
        r.listen, r.fingerprint
    )?;
    writeln!(
        out,
        "or in a browser: https://{}/ (the certificate is self-signed unless --tls-cert is given: check the fingerprint above)",
        r.listen
    )?;
    out.flush()?;
    drop(out);
    started.serve(super::stop_signal()).await;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}
