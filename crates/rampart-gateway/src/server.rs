//! Start-up (store, first-start bootstrap, TLS, bind), the accept loop and shutdown.

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rampart_core::rbac::OWNER;
use rampart_core::{BastionSettings, GatewayEndpoints, ResourceId, RoleAssignment, Scope};
use rampart_store::prelude::*;
use rampart_store::{PostgresStore, SqliteStore, StoreError};
use rampart_tunnel::stream;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::api::{self, ClientAddr};
use crate::auth::{self, AuthError, LoginLimiter, TokenKeys};
use crate::config::{GatewayConfig, StoreLocation};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("sign-in keys: {0}")]
    Auth(#[from] AuthError),
    #[error("SSH certificate authority: {0}")]
    SshCa(#[from] rampart_ssh::SshCaError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Shared state of a running gateway.
pub struct Gateway {
    pub(crate) store: Arc<dyn Store>,
    /// This node's name among those sharing the store.
    pub(crate) node: String,
    /// This process's hold on the node name (random per start).
    pub(crate) instance: String,
    pub(crate) keys: TokenKeys,
    pub(crate) config: GatewayConfig,
    pub(crate) limiter: LoginLimiter,
    /// Uses of shareable links per (link, address): a link opens a sign-in form to anyone.
    pub(crate) link_limiter: LoginLimiter,
    pub(crate) ssh_ca: rampart_ssh::SshCa,
    /// Verified against when a user name does not exist, so timing reveals nothing.
    pub(crate) dummy_hash: String,
    /// The one session lifecycle: every live session, its observers, its records.
    pub(crate) sessions: Arc<crate::lifecycle::Sessions>,
    /// The one admission path of every session.
    pub(crate) admission: crate::admission::AdmissionService,
    /// Browser SSH connections signed in and waiting for their terminal page.
    pub(crate) terminals: crate::portal::PendingTerminals,
    /// Browser terminals running on this node that operators may join.
    pub(crate) joins: crate::portal::Joins,
    /// Browser terminals running on this node whose users may move files.
    pub(crate) files: crate::portal::FilePoints,
    /// RD Gateway clients' `RDG_OUT_DATA` requests waiting for their `RDG_IN_DATA`.
    pub(crate) rd_gateway: crate::rd_gateway::Pending,
    /// az's WebSocket tokens already used on this node (each opens one connection).
    pub(crate) az_tokens: crate::azure::UsedTokens,
    /// Single sign-on's providers, discovered once per settings.
    pub(crate) providers: crate::federation::Providers,
    /// Set on SIGTERM: `/readyz` answers 503 and new tunnels are refused.
    pub(crate) draining: Arc<std::sync::atomic::AtomicBool>,
    /// `rampart node drain` for this node (through any node): drains as SIGTERM does.
    pub(crate) drain_requested: tokio::sync::Notify,
    /// Renders `/metrics`; `None` when metrics are off.
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Writes, reads and deletes recordings, wherever their bastion keeps them.
    pub(crate) recorder: Arc<crate::recording::Recorder>,
}

/// What start-up did, for the operator to read.
pub struct StartupReport {
    pub listen: SocketAddr,
    pub data_dir: String,
    pub cert_path: String,
    pub cert_generated: bool,
    pub fingerprint: String,
    /// The bootstrap admin's password, when this start generated it (shown once).
    pub generated_admin_password: Option<String>,
    pub admin_created: bool,
}

/// A gateway that is listening but not yet serving.
pub struct StartedGateway {
    pub report: StartupReport,
    state: Arc<Gateway>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    /// The certificate the acceptor serves, replaced while the gateway runs.
    certificate: Arc<tls::CurrentCertificate>,
}

/// Opens the configured store: the embedded SQLite file in the data directory (created if
/// missing), or PostgreSQL.
pub async fn open_store(config: &GatewayConfig) -> Result<Arc<dyn Store>, GatewayError> {
    create_data_dir(config)?;
    Ok(match &config.store {
        StoreLocation::Sqlite => Arc::new(SqliteStore::open(&config.data_dir.join("rampart.db")).await?),
        StoreLocation::Postgres(url) => Arc::new(PostgresStore::connect(&url.0).await?),
    })
}

fn create_data_dir(config: &GatewayConfig) -> Result<(), GatewayError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| GatewayError::DataDir { path: config.data_dir.display().to_string(), source })
}

impl Gateway {
    /// Bootstraps an empty `store` (any backend), loads keys and TLS from the data directory
    /// and binds the listener.
    pub async fn bind(config: GatewayConfig, store: Arc<dyn Store>) -> Result<StartedGateway, GatewayError> {
        create_data_dir(&config)?;
        // Nodes sharing a store each append to a chain of their own (one node keeps the one
        // unnamed chain it always had).
        if matches!(config.store, StoreLocation::Postgres(_)) {
            store.set_audit_chain(&config.node_name);
        }
        store.integrity_check().await?;
        let (admin_created, generated_admin_password) = bootstrap(&store, &config).await?;
        let (keys, ssh_ca) = match &config.store {
            // One node: its keys are files in its data directory (mode 0600), and every
            // connection left open is its own.
            StoreLocation::Sqlite => {
                close_dangling_connections(&store).await?;
                (
                    TokenKeys::load_or_create(&config.data_dir.join("keys").join("token-signing.key"))?,
                    rampart_ssh::SshCa::load_or_create(&config.data_dir.join("keys").join("ssh-ca"))?,
                )
            }
            // Several nodes: every node signs with the same keys, kept in the store (the first
            // node to start makes them).
            StoreLocation::Postgres(_) => {
                let token = store.shared_secret("token-signing-key", &auth::random_secret(32)).await?;
                let ca = store.shared_secret("ssh-ca-key", &rampart_ssh::SshCa::generate_openssh()?).await?;
                (TokenKeys::from_secret(token.as_bytes()), rampart_ssh::SshCa::from_openssh(&ca)?)
            }
        };
        // An ACME certificate issued before is served at once; until the first is issued, the
        // generated one.
        let issued = config.acme.as_ref().and_then(|_| tls::acme::stored(&config.data_dir));
        let cert = match issued {
            Some(cert) => cert,
            None => tls::load_or_generate(
                &config.data_dir,
                config.tls_cert.as_deref(),
                config.tls_key.as_deref(),
            )?,
        };
        let source = match (&config.tls_cert, &config.tls_key, &config.acme) {
            (Some(cert), Some(key), _) => tls::Source::Files { cert: cert.clone(), key: key.clone() },
            (_, _, Some(_)) => tls::Source::Acme,
            _ => tls::Source::Generated { data_dir: config.data_dir.clone() },
        };
        let (tls_config, certificate) = tls::server_config(&cert, source)?;
        let acceptor = TlsAcceptor::from(tls_config);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
        let listen =
            listener.local_addr().map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
        let shared = !matches!(config.store, StoreLocation::Sqlite);
        // This process's hold on the node name (a second process given it is refused).
        let instance = uuid::Uuid::new_v4().to_string();
        crate::node::register(&store, &config.node_name, &instance, &listen.to_string(), shared).await?;
        let local_ips: Vec<IpAddr> =
            if_addrs::get_if_addrs().map(|ifs| ifs.iter().map(|i| i.ip()).collect()).unwrap_or_default();
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password(&auth::random_secret(16)))
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))??;
        let report = StartupReport {
            listen,
            data_dir: config.data_dir.display().to_string(),
            cert_path: cert.cert_path.display().to_string(),
            cert_generated: cert.generated,
            fingerprint: cert.fingerprint(),
            generated_admin_password,
            admin_created,
        };
        let endpoints = GatewayEndpoints { listen: vec![listen], local_ips };
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let recorder = Arc::new(crate::recording::Recorder::new(store.clone(), &config.data_dir));
        let observers: Vec<Arc<dyn crate::lifecycle::SessionObserver>> =
            vec![Arc::new(crate::lifecycle::MetricsObserver), recorder.clone()];
        let sessions = Arc::new(crate::lifecycle::Sessions::new(store.clone(), observers));
        let admission = crate::admission::AdmissionService::new(
            store.clone(),
            sessions.clone(),
            endpoints,
            config.target_connect_timeout,
            draining.clone(),
        );
        let state = Arc::new(Gateway {
            store,
            node: config.node_name.clone(),
            instance,
            keys,
            limiter: LoginLimiter::new(config.login_max_failures, config.login_window),
            link_limiter: LoginLimiter::new(
                crate::shareable::USES_PER_MINUTE,
                std::time::Duration::from_secs(60),
            ),
            ssh_ca,
            metrics: install_metrics(&config),
            config,
            dummy_hash,
            sessions,
            admission,
            terminals: Default::default(),
            providers: Default::default(),
            joins: Default::default(),
            files: Default::default(),
            rd_gateway: Default::default(),
            az_tokens: Default::default(),
            draining,
            drain_requested: tokio::sync::Notify::new(),
            recorder,
        });
        Ok(StartedGateway { report, state, listener, acceptor, certificate })
    }
}

/// A previous run that was killed (`kill -9`, power loss) left connections with an open
/// record and no close record: close them, so the audit log shows no session as still open.
async fn close_dangling_connections(store: &Arc<dyn Store>) -> Result<(), GatewayError> {
    let dangling = store.unclosed_connections().await?;
    for open in &dangling {
        store.append_audit(&open.closing(chrono::Utc::now(), "ended by gateway restart", None)).await?;
    }
    if !dangling.is_empty() {
        tracing::warn!(connections = dangling.len(), "closed connections left open by the previous run");
    }
    Ok(())
}

/// Records a connection refused before TLS (a PROXY header from someone untrusted, or none
/// from a trusted balancer); a connection that only went away is logged.
async fn refuse_connection(gw: &Gateway, peer: SocketAddr, e: &crate::proxy_protocol::ProxyHeaderError) {
    if matches!(e, crate::proxy_protocol::ProxyHeaderError::Unread { .. }) {
        tracing::debug!(%peer, error = %e, "connection closed before its PROXY header");
        return;
    }
    tracing::warn!(%peer, error = %e, "connection refused");
    let mut entry = rampart_core::AuditEntry::new(
        chrono::Utc::now(),
        rampart_core::AuditEvent::ConnectionOpen,
        rampart_core::AuditResult::Refused,
    );
    entry.client_address = Some(peer.to_string());
    entry.reason_code = Some(e.code().to_string());
    entry.reason = Some(e.to_string());
    if let Err(err) = gw.store.append_audit(&entry).await {
        tracing::error!(error = %err, "cannot record a refused connection");
    }
}

/// Installs the Prometheus recorder (once per process) unless metrics are off.
fn install_metrics(config: &GatewayConfig) -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    if config.metrics == crate::config::MetricsEndpoint::Off {
        return None;
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("rampart_connect_seconds".into()),
            &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
        )
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    Some(handle)
}

/// First start: subscription `default`, resource group `default`, bastion `default`, and
/// user `admin`. Each step runs only if its part of the store is empty, so a start that
/// was interrupted completes on the next one.
/// Where a generated bootstrap password waits until a start has shown it (mode 0600).
const UNSHOWN_PASSWORD: &str = "bootstrap-admin-password";

async fn bootstrap(
    store: &Arc<dyn Store>,
    config: &GatewayConfig,
) -> Result<(bool, Option<String>), GatewayError> {
    // Nodes starting together on an empty shared store race here: a name another node took
    // a moment earlier (a conflict) means that node is bootstrapping, and this one goes on.
    if store.list_subscriptions().await?.is_empty() {
        match store.create_subscription(&uuid::Uuid::new_v4().to_string(), "default").await {
            Ok(sub) => {
                let id = ResourceId::bastion(&sub.id, "default", "default");
                store.create_bastion(&id, &BastionSettings::new_default()).await?;
            }
            Err(StoreError::Conflict(_)) => {
                tracing::info!("another node is creating the default subscription")
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A generated password waits in the data directory until a start has shown it, so a first
    // start that fails after making the admin (its port taken, say) does not lock anyone out.
    let unshown = config.data_dir.join(UNSHOWN_PASSWORD);
    if store.user_count().await? > 0 {
        if let Ok(password) = std::fs::read_to_string(&unshown) {
            return Ok((true, Some(password.trim().to_string())));
        }
        // A store from before role assignments existed: its admin becomes Owner as on a
        // first start, so upgrading locks nobody out.
        if store.role_assignments(None, None).await?.is_empty()
            && let Some(admin) = store.user_by_name("admin").await?
        {
            make_owner_everywhere(store, &admin).await?;
        }
        return Ok((false, None));
    }
    let (password, generated) = match &config.admin_password {
        Some(p) if !p.0.is_empty() => (p.0.clone(), None),
        _ => {
            let p = auth::random_secret(18);
            (p.clone(), Some(p))
        }
    };
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))??;
    let admin = match store.create_user("admin", Some("Bootstrap administrator"), &hash).await {
        Ok(admin) => admin,
        Err(StoreError::Conflict(_)) => {
            tracing::info!("another node created the bootstrap admin");
            return Ok((false, None));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(p) = &generated {
        crate::tls::write_private(&unshown, p.as_bytes())?;
    }
    make_owner_everywhere(store, &admin).await?;
    Ok((true, generated))
}

/// Makes `user` Owner of every subscription (the bootstrap admin).
async fn make_owner_everywhere(
    store: &Arc<dyn Store>,
    user: &rampart_store::User,
) -> Result<(), GatewayError> {
    for sub in store.list_subscriptions().await? {
        let made = store
            .create_role_assignment(&RoleAssignment {
                id: uuid::Uuid::new_v4().to_string(),
                principal_id: user.id.clone(),
                principal_name: user.username.clone(),
                role: OWNER.to_string(),
                scope: Scope::Subscription(sub.id),
                condition: None,
                eligibility: None,
            })
            .await;
        match made {
            // Another node starting at the same moment made the same assignment.
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl StartedGateway {
    pub fn local_addr(&self) -> SocketAddr {
        self.report.listen
    }

    /// Serves until `shutdown` completes; then drains: `/readyz` turns 503 and new tunnels are
    /// refused at once, live sessions go on until they end or the drain timeout passes, then
    /// they are ended with a reason, and the store is closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        // Serving means the start-up report was shown: the bootstrap password has been seen.
        let _ = std::fs::remove_file(self.state.config.data_dir.join(UNSHOWN_PASSWORD));
        let app = crate::portal::router(self.state.clone())
            .merge(api::router(self.state.clone()))
            .layer(axum::middleware::map_response(strict_transport_security));
        let sweeper = {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    state.sessions.sweep().await;
                }
            })
        };
        let heartbeat = tokio::spawn(crate::node::heartbeat(self.state.clone()));
        let events = tokio::spawn(crate::node::follow_events(self.state.clone()));
        let retention = tokio::spawn(crate::recording::retention::keep_sweeping(self.state.clone()));
        let certificate = tokio::spawn(tls::keep_current(self.certificate.clone()));
        let acme = self.state.config.acme.clone().map(|settings| {
            tokio::spawn(tls::keep_issued(
                self.certificate.clone(),
                settings,
                self.state.config.data_dir.clone(),
            ))
        });
        if let crate::config::MetricsEndpoint::Listen(addr) = self.state.config.metrics {
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!(%addr, "metrics on their own listener");
                    tokio::spawn(
                        axum::serve(listener, api::metrics_router(self.state.clone())).into_future(),
                    );
                }
                Err(e) => tracing::error!(%addr, error = %e, "cannot listen for metrics"),
            }
        }
        tokio::pin!(shutdown);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown, if drain_deadline.is_none() => {
                    self.state.draining.store(true, std::sync::atomic::Ordering::SeqCst);
                    let timeout = self.state.config.drain_timeout;
                    tracing::info!(sessions = self.state.sessions.count(), ?timeout, "draining");
                    drain_deadline = Some(tokio::time::Instant::now() + timeout);
                    continue;
                }
                () = self.state.drain_requested.notified(), if drain_deadline.is_none() => {
                    tracing::info!("drain requested through the API");
                    self.state.draining.store(true, std::sync::atomic::Ordering::SeqCst);
                    let timeout = self.state.config.drain_timeout;
                    tracing::info!(sessions = self.state.sessions.count(), ?timeout, "draining");
                    drain_deadline = Some(tokio::time::Instant::now() + timeout);
                    continue;
                }
                () = tokio::time::sleep(Duration::from_millis(100)), if drain_deadline.is_some() => {
                    let expired = drain_deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                    if self.state.sessions.count() == 0 || expired {
                        break;
                    }
                    continue;
                }
            };
            tcp.set_nodelay(true).ok();
            let acceptor = self.acceptor.clone();
            let app = app.clone();
            let keepalive = self.state.config.keepalive;
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tcp = tcp;
                let peer =
                    match crate::proxy_protocol::client_address(&mut tcp, peer, &state.config.proxy).await {
                        Ok(client) => client,
                        Err(e) => {
                            refuse_connection(&state, peer, &e).await;
                            return;
                        }
                    };
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                // A CA's TLS-ALPN-01 validation: the handshake was the answer.
                if tls.get_ref().1.alpn_protocol() == Some(tls::acme::ACME_TLS_ALPN) {
                    tracing::info!(%peer, "answered an ACME TLS-ALPN-01 validation");
                    return;
                }
                let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    crate::azure::collapse_slashes(&mut req);
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // Tunnel protocol v2 carries every connection of a tunnel as a stream of one
                // HTTP/2 connection: room for many streams, windows and frames sized for bulk
                // data, and pings that find a dead client.
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(stream::MAX_STREAMS)
                    .initial_stream_window_size(stream::STREAM_WINDOW)
                    .initial_connection_window_size(stream::CONNECTION_WINDOW)
                    .max_frame_size(stream::MAX_FRAME)
                    .keep_alive_interval(Some(keepalive))
                    .keep_alive_timeout(keepalive);
                if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        // Sessions still running at the deadline are ended, with the reason, and given a
        // moment to write their close records.
        self.state.sessions.stop_all(&rampart_core::EndReason::Drained);
        let waited = tokio::time::Instant::now();
        while self.state.sessions.count() > 0 && waited.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sweeper.abort();
        heartbeat.abort();
        events.abort();
        retention.abort();
        certificate.abort();
        if let Some(acme) = acme {
            acme.abort();
        }
        if self.state.sessions.write_unwritten_closes().await > 0 {
            tracing::error!("some close records could not be written: the store is away");
        }
        crate::node::stopped(&self.state).await;
        tracing::info!("stopped");
        self.state.store.close().await;
    }
}

/// Every HTTPS answer tells browsers to come back over HTTPS only, for a year (HSTS).
async fn strict_transport_security(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert(http::header::STRICT_TRANSPORT_SECURITY, http::HeaderValue::from_static("max-age=31536000"));
    response
}
