//! Gateway settings: one typed struct, [`GatewayConfig`], built from layers with one
//! precedence: **flags, then `RAMPART_*` variables, then the TOML file, then defaults**. The
//! CLI turns its flags (clap reads each flag's variable when the flag is absent) into one
//! [`ConfigLayer`] and the file into another; [`GatewayConfig::from_layers`] applies them.
//! Nothing else in the gateway reads the environment. [`GatewayConfig::to_toml`] prints the
//! result as a file it would read, with secrets hidden (`rampart serve --print-config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a printed configuration shows instead of a secret.
pub const HIDDEN: &str = "<hidden>";

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTPS listen address (API, portal and tunnels share it).
    pub listen: SocketAddr,
    /// Where the store (when SQLite), TLS certificate and signing key live.
    pub data_dir: PathBuf,
    /// Which database: the embedded SQLite file in `data_dir`, or a PostgreSQL shared by
    /// several gateways.
    pub store: StoreLocation,
    /// This gateway's name among the nodes sharing its store (default: the host name).
    pub node_name: String,
    /// A real certificate and key (PEM); otherwise a self-signed one is generated.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A certificate from an ACME CA for this domain (instead of files or a generated one).
    pub acme: Option<crate::tls::AcmeSettings>,
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
    /// The PROXY protocol from trusted balancers (the user's address behind a layer-4
    /// balancer).
    pub proxy: crate::proxy_protocol::ProxyPolicy,
    /// How the process logs (read by the binary, which installs the logger).
    pub log: LogConfig,
    /// Which local accounts must sign in with a second factor.
    pub require_mfa: crate::mfa::Requirement,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `rampart.db` in the data directory (the default).
    Sqlite,
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=…]`; may hold a password.
    Postgres(Secret),
}

impl StoreLocation {
    /// As a setting: `sqlite`, or the URL with any password replaced by [`HIDDEN`].
    pub fn shown(&self) -> String {
        match self {
            StoreLocation::Sqlite => "sqlite".into(),
            StoreLocation::Postgres(url) => hide_password(&url.0),
        }
    }
}

/// The host name, or `rampart` when it cannot be read.
fn default_node_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| valid_node_name(h))
        .unwrap_or_else(|| "rampart".into())
}

fn valid_node_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A URL with its password (between `user:` and `@`) hidden.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // The host follows the last '@' (a password may hold '@'), and the path and query follow
    // the host; a password may also come as `?password=…`.
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{HIDDEN}@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={HIDDEN}"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsEndpoint {
    /// On the HTTPS port, at `/metrics`.
    Https,
    /// On its own plain-HTTP listener (e.g. 127.0.0.1:9100), at `/metrics`.
    Listen(SocketAddr),
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// A `tracing` filter (`info`, `rampart_gateway=debug,info`, …).
    pub filter: String,
}

impl GatewayConfig {
    /// The defaults, listening on `listen` with its data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        GatewayConfig {
            listen,
            data_dir,
            store: StoreLocation::Sqlite,
            node_name: default_node_name(),
            tls_cert: None,
            tls_key: None,
            acme: None,
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
            proxy: crate::proxy_protocol::ProxyPolicy::default(),
            log: LogConfig { json: false, filter: "info".into() },
            require_mfa: crate::mfa::Requirement::Off,
        }
    }
}

/// One layer of settings, every one optional: the flags (with their variables) or the file.
/// Durations are whole seconds. Its TOML form is the configuration file's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// `sqlite` or a `postgres://` URL.
    pub store: Option<String>,
    pub node_name: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub acme_domain: Option<String>,
    pub acme_email: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_ca_file: Option<PathBuf>,
    pub admin_password: Option<String>,
    pub access_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    pub tunnel_token_ttl: Option<u64>,
    pub login_max_failures: Option<u32>,
    pub login_window: Option<u64>,
    pub target_connect_timeout: Option<u64>,
    pub keepalive: Option<u64>,
    pub ssh_certificate_ttl: Option<u64>,
    pub drain_timeout: Option<u64>,
    /// `https`, `off`, or ADDR:PORT.
    pub metrics: Option<String>,
    pub proxy_protocol: Option<bool>,
    /// Comma-separated networks whose PROXY headers are believed.
    pub trusted_proxies: Option<String>,
    /// `off`, `all` (every local account) or `roles:NAME[,NAME…]`.
    pub require_mfa: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// A `tracing` filter.
    pub log: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not a valid configuration file: {1}")]
    File(String, String),
    #[error("tls_cert and tls_key go together: give both or neither")]
    HalfTls,
    #[error("{0}")]
    Acme(String),
    #[error("metrics '{0}': expected https, off or ADDR:PORT")]
    Metrics(String),
    #[error("trusted proxies: '{0}' is not a network (e.g. 10.0.0.0/24 or 10.0.0.5/32)")]
    TrustedProxy(String),
    #[error("--proxy-protocol needs --trusted-proxies: the balancers whose headers to believe")]
    NoTrustedProxies,
    #[error("log format '{0}': expected text or json")]
    LogFormat(String),
    #[error("node name '{0}': 1 to 63 letters, digits, '.', '_' or '-'")]
    NodeName(String),
    #[error("store '{0}': expected sqlite or a postgres:// URL")]
    Store(String),
    #[error("{0} must be at least 1 second")]
    Zero(&'static str),
    #[error("{0}")]
    RequireMfa(String),
}

impl ConfigLayer {
    /// Parses a configuration file's text; `name` is how errors call it.
    pub fn from_toml(name: &str, text: &str) -> Result<ConfigLayer, ConfigError> {
        // toml's own text quotes the offending line, which may hold a password: only its
        // message and where.
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            ConfigError::File(name.to_string(), format!("{}{at}", e.message()))
        })
    }

    /// This layer over `below`: each setting from here when set, else from there.
    pub fn over(self, below: ConfigLayer) -> ConfigLayer {
        macro_rules! pick {
            ($($field:ident),+) => { ConfigLayer { $($field: self.$field.or(below.$field)),+ } };
        }
        pick!(
            listen,
            data_dir,
            store,
            node_name,
            tls_cert,
            tls_key,
            acme_domain,
            acme_email,
            acme_directory,
            acme_ca_file,
            admin_password,
            access_token_ttl,
            refresh_token_ttl,
            tunnel_token_ttl,
            login_max_failures,
            login_window,
            target_connect_timeout,
            keepalive,
            ssh_certificate_ttl,
            drain_timeout,
            metrics,
            proxy_protocol,
            trusted_proxies,
            require_mfa,
            log_format,
            log
        )
    }
}

impl GatewayConfig {
    /// The settings from `flags` (flags and their variables) over `file`, over the defaults.
    pub fn from_layers(flags: ConfigLayer, file: ConfigLayer) -> Result<GatewayConfig, ConfigError> {
        let l = flags.over(file);
        let listen = l.listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8443)));
        let data_dir = l.data_dir.unwrap_or_else(|| PathBuf::from("rampart-data"));
        let mut c = GatewayConfig::new(listen, data_dir);
        if l.tls_cert.is_some() != l.tls_key.is_some() {
            return Err(ConfigError::HalfTls);
        }
        c.tls_cert = l.tls_cert;
        c.tls_key = l.tls_key;
        c.acme = crate::tls::acme::settings(
            l.acme_domain.as_deref(),
            l.acme_email.clone(),
            l.acme_directory.clone(),
            l.acme_ca_file.clone(),
            c.tls_cert.is_some(),
        )
        .map_err(ConfigError::Acme)?;
        c.store = match l.store.as_deref().map(str::trim) {
            None | Some("") | Some("sqlite") => StoreLocation::Sqlite,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StoreLocation::Postgres(Secret(url.to_string()))
            }
            Some(other) => return Err(ConfigError::Store(hide_password(other))),
        };
        if let Some(name) = l.node_name {
            if !valid_node_name(&name) {
                return Err(ConfigError::NodeName(name.chars().take(80).collect()));
            }
            c.node_name = name;
        }
        c.admin_password = l.admin_password.filter(|p| !p.is_empty()).map(Secret);
        if let Some(mfa) = &l.require_mfa {
            c.require_mfa = mfa.parse().map_err(ConfigError::RequireMfa)?;
        }
        let secs = |v: Option<u64>, default: Duration| v.map(Duration::from_secs).unwrap_or(default);
        c.access_token_ttl = secs(l.access_token_ttl, c.access_token_ttl);
        c.refresh_token_ttl = secs(l.refresh_token_ttl, c.refresh_token_ttl);
        c.tunnel_token_ttl = secs(l.tunnel_token_ttl, c.tunnel_token_ttl);
        c.login_window = secs(l.login_window, c.login_window);
        c.target_connect_timeout = secs(l.target_connect_timeout, c.target_connect_timeout);
        c.keepalive = secs(l.keepalive, c.keepalive);
        c.ssh_certificate_ttl = secs(l.ssh_certificate_ttl, c.ssh_certificate_ttl);
        c.drain_timeout = secs(l.drain_timeout, c.drain_timeout);
        c.login_max_failures = l.login_max_failures.unwrap_or(c.login_max_failures);
        c.metrics = match l.metrics.as_deref().map(str::trim) {
            None | Some("https") | Some("on") => MetricsEndpoint::Https,
            Some("off") => MetricsEndpoint::Off,
            Some(addr) => {
                MetricsEndpoint::Listen(addr.parse().map_err(|_| ConfigError::Metrics(addr.into()))?)
            }
        };
        c.proxy.enabled = l.proxy_protocol.unwrap_or(false);
        for item in l
            .trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::TrustedProxy(item.chars().take(64).collect()))?;
            c.proxy.trusted.push(net);
        }
        if c.proxy.enabled && c.proxy.trusted.is_empty() {
            return Err(ConfigError::NoTrustedProxies);
        }
        c.log.json = match l.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(ConfigError::LogFormat(other.into())),
        };
        if let Some(filter) = l.log.filter(|f| !f.trim().is_empty()) {
            c.log.filter = filter;
        }
        for (name, d) in [
            ("keepalive", c.keepalive),
            ("tunnel_token_ttl", c.tunnel_token_ttl),
            ("access_token_ttl", c.access_token_ttl),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(c)
    }

    /// Every setting as one complete layer, secrets left out.
    pub fn to_layer(&self) -> ConfigLayer {
        ConfigLayer {
            listen: Some(self.listen),
            data_dir: Some(self.data_dir.clone()),
            store: Some(self.store.shown()),
            node_name: Some(self.node_name.clone()),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            acme_domain: self.acme.as_ref().map(|a| a.domain.clone()),
            acme_email: self.acme.as_ref().and_then(|a| a.email.clone()),
            acme_directory: self.acme.as_ref().map(|a| a.directory.clone()),
            acme_ca_file: self.acme.as_ref().and_then(|a| a.ca_file.clone()),
            // Never printed, not even masked: a printed file used as is must not set a password.
            admin_password: None,
            access_token_ttl: Some(self.access_token_ttl.as_secs()),
            refresh_token_ttl: Some(self.refresh_token_ttl.as_secs()),
            tunnel_token_ttl: Some(self.tunnel_token_ttl.as_secs()),
            login_max_failures: Some(self.login_max_failures),
            login_window: Some(self.login_window.as_secs()),
            target_connect_timeout: Some(self.target_connect_timeout.as_secs()),
            keepalive: Some(self.keepalive.as_secs()),
            ssh_certificate_ttl: Some(self.ssh_certificate_ttl.as_secs()),
            drain_timeout: Some(self.drain_timeout.as_secs()),
            metrics: Some(match &self.metrics {
                MetricsEndpoint::Https => "https".into(),
                MetricsEndpoint::Off => "off".into(),
                MetricsEndpoint::Listen(a) => a.to_string(),
            }),
            proxy_protocol: Some(self.proxy.enabled),
            trusted_proxies: Some(
                self.proxy.trusted.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
            ),
            require_mfa: Some(match &self.require_mfa {
                crate::mfa::Requirement::Off => "off".into(),
                crate::mfa::Requirement::AllLocal => "all".into(),
                crate::mfa::Requirement::Roles(r) => format!("roles:{}", r.join(",")),
            }),
            log_format: Some(if self.log.json { "json" } else { "text" }.into()),
            log: Some(self.log.filter.clone()),
        }
    }

    /// The settings in effect as a TOML file, secrets left out (a comment says which are set).
    pub fn to_toml(&self) -> String {
        let mut text =
            String::from("# rampart serve: the settings in effect (flags > RAMPART_* > file > defaults)\n");
        if self.admin_password.is_some() {
            text.push_str(&format!("# admin_password = {HIDDEN} (set; never printed)\n"));
        }
        match toml::to_string(&self.to_layer()) {
            Ok(body) => text.push_str(&body),
            Err(e) => text.push_str(&format!("# cannot print the configuration: {e}\n")),
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file = ConfigLayer::from_toml(
            "rampart.toml",
            "listen = \"127.0.0.1:9443\"\nkeepalive = 5\ndrain_timeout = 7\nmetrics = \"off\"\n",
        )
        .expect("valid");
        let flags = ConfigLayer { keepalive: Some(9), ..ConfigLayer::default() };
        let c = GatewayConfig::from_layers(flags, file).expect("valid");
        assert_eq!(c.keepalive, Duration::from_secs(9), "the flag wins");
        assert_eq!(c.drain_timeout, Duration::from_secs(7), "the file wins over the default");
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(c.metrics, MetricsEndpoint::Off);
        assert_eq!(c.access_token_ttl, Duration::from_secs(900), "the default");
    }

    #[test]
    fn bad_settings_are_named() {
        let err = ConfigLayer::from_toml("x.toml", "listn = \"a\"").expect_err("unknown key");
        assert!(err.to_string().contains("listn"), "{err}");
        let half = ConfigLayer { tls_cert: Some("c.pem".into()), ..ConfigLayer::default() };
        assert_eq!(
            GatewayConfig::from_layers(half, ConfigLayer::default()).err(),
            Some(ConfigError::HalfTls)
        );
        let zero = ConfigLayer { keepalive: Some(0), ..ConfigLayer::default() };
        assert_eq!(
            GatewayConfig::from_layers(zero, ConfigLayer::default()).err(),
            Some(ConfigError::Zero("keepalive"))
        );
        let metrics = ConfigLayer { metrics: Some("9100".into()), ..ConfigLayer::default() };
        assert!(matches!(
            GatewayConfig::from_layers(metrics, ConfigLayer::default()),
            Err(ConfigError::Metrics(_))
        ));
    }

    #[test]
    fn the_printed_configuration_hides_secrets_and_reads_back_the_same() {
        let flags = ConfigLayer {
            admin_password: Some("s3cret-pass".into()),
            keepalive: Some(12),
            ..ConfigLayer::default()
        };
        let c = GatewayConfig::from_layers(flags, ConfigLayer::default()).expect("valid");
        let printed = c.to_toml();
        assert!(!printed.contains("s3cret-pass"), "{printed}");
        assert!(printed.contains(HIDDEN), "{printed}");
        let again = GatewayConfig::from_layers(
            ConfigLayer::from_toml("printed", &printed).expect("reads back"),
            ConfigLayer::default(),
        )
        .expect("valid");
        assert_eq!(again.to_layer(), c.to_layer(), "every printed setting reads back the same");
        assert!(again.admin_password.is_none(), "a printed file sets no password");
        assert!(format!("{c:?}").contains("redacted") && !format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn passwords_in_store_urls_and_bad_files_are_never_shown() {
        assert_eq!(hide_password("postgres://u:p@ss@host:5432/db"), "postgres://u:<hidden>@host:5432/db");
        assert_eq!(
            hide_password("postgres://u@host/db?sslmode=require&password=s3cret"),
            "postgres://u@host/db?sslmode=require&password=<hidden>"
        );
        assert_eq!(hide_password("postgres://u@host/db"), "postgres://u@host/db");
        let err = ConfigLayer::from_toml("x.toml", "admin_pasword = \"hunter2-secret\"\n")
            .expect_err("unknown key");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err =
            ConfigLayer::from_toml("x.toml", "store = \"postgres://u:hunter2@h/db\n").expect_err("syntax");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_postgres_store_url_is_taken_and_its_password_never_printed() {
        let flags = ConfigLayer {
            store: Some("postgres://rampart:pw-123@db:5432/rampart".into()),
            ..ConfigLayer::default()
        };
        let c = GatewayConfig::from_layers(flags, ConfigLayer::default()).expect("valid");
        assert!(matches!(&c.store, StoreLocation::Postgres(url) if url.0.contains("pw-123")));
        let printed = c.to_toml();
        assert!(printed.contains("postgres://rampart:<hidden>@db:5432/rampart"), "{printed}");
        assert!(!printed.contains("pw-123") && !format!("{c:?}").contains("pw-123"));
        let bad = ConfigLayer { store: Some("mysql://u:secret@h/db".into()), ..ConfigLayer::default() };
        let err = GatewayConfig::from_layers(bad, ConfigLayer::default()).expect_err("not a store");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(
            GatewayConfig::from_layers(ConfigLayer::default(), ConfigLayer::default()).map(|c| c.store).ok(),
            Some(StoreLocation::Sqlite)
        );
    }
}
