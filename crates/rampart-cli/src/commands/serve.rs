//! `rampart serve`: settings from flags, `RAMPART_*` variables and a TOML file (in that
//! order of precedence, applied by the gateway's `config`), then the gateway until SIGTERM
//! or Ctrl-C; `--print-config` prints them instead.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rampart_gateway::Gateway;
use rampart_gateway::GatewayConfig;
use rampart_gateway::config::{ConfigLayer, LogConfig};

use crate::cli::ServeArgs;

/// The settings: flags (clap reads each flag's `RAMPART_*` variable when the flag is absent)
/// over the TOML file over the defaults, by `GatewayConfig::from_layers`.
fn gateway_config(args: ServeArgs) -> Result<GatewayConfig> {
    let file = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            ConfigLayer::from_toml(&path.display().to_string(), &text)?
        }
        None => ConfigLayer::default(),
    };
    let flags = ConfigLayer {
        listen: args.listen,
        data_dir: args.data_dir,
        store: args.store,
        node_name: args.node_name,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        acme_domain: args.acme_domain,
        acme_email: args.acme_email,
        acme_directory: args.acme_directory,
        acme_ca_file: args.acme_ca_file,
        admin_password: args.admin_password,
        access_token_ttl: args.access_token_ttl,
        refresh_token_ttl: args.refresh_token_ttl,
        tunnel_token_ttl: args.tunnel_token_ttl,
        login_max_failures: args.login_max_failures,
        login_window: args.login_window,
        target_connect_timeout: args.target_connect_timeout,
        keepalive: args.keepalive,
        ssh_certificate_ttl: args.ssh_certificate_ttl,
        drain_timeout: args.drain_timeout,
        metrics: args.metrics,
        proxy_protocol: args.proxy_protocol,
        trusted_proxies: args.trusted_proxies,
        require_mfa: args.require_mfa,
        log_format: args.log_format,
        log: args.log,
    };
    Ok(GatewayConfig::from_layers(flags, file)?)
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let print_config = args.print_config;
    let config = gateway_config(args)?;
    if print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&config.log);
    let store = rampart_gateway::open_store(&config).await?;
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

fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.filter).unwrap_or_else(|e| {
        eprintln!("log filter '{}' is not valid ({e}); logging at info", log.filter);
        tracing_subscriber::EnvFilter::new("info")
    });
    let json = log.json;
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}
