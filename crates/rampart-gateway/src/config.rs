//! Gateway settings. The CLI fills them from flags, `RAMPART_*` variables and a TOML file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTPS listen address (API, portal and tunnels share it).
    pub listen: SocketAddr,
    /// Where the store, TLS certificate and signing key live.
    pub data_dir: PathBuf,
    /// A real certificate and key (PEM); otherwise a self-signed one is generated.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Password of the bootstrap `admin` on first start; generated and printed when absent.
    pub admin_password: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a tunnel grant opens new connections (the client renews it before then).
    pub tunnel_token_ttl: Duration,
    /// Failed sign-ins allowed per user name and client address within `login_window`.
    pub login_max_failures: u32,
    pub login_window: Duration,
    pub target_connect_timeout: Duration,
    /// Interval of the gateway's WebSocket pings on tunnel connections.
    pub keepalive: Duration,
    /// Lifetime of SSH user certificates for identity sign-in.
    pub ssh_certificate_ttl: Duration,
    /// On SIGTERM, how long live sessions may continue before they are ended.
    pub drain_timeout: Duration,
    /// Where `/metrics` (Prometheus) is served.
    pub metrics: MetricsEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsEndpoint {
    /// On the HTTPS port, at `/metrics`.
    Https,
    /// On its own plain-HTTP listener (e.g. 127.0.0.1:9100), at `/metrics`.
    Listen(SocketAddr),
    Off,
}

impl GatewayConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        GatewayConfig {
            listen,
            data_dir,
            tls_cert: None,
            tls_key: None,
            admin_password: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            tunnel_token_ttl: Duration::from_secs(10 * 60),
            login_max_failures: 5,
            login_window: Duration::from_secs(300),
            target_connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            ssh_certificate_ttl: Duration::from_secs(5 * 60),
            drain_timeout: Duration::from_secs(30),
            metrics: MetricsEndpoint::Https,
        }
    }
}
