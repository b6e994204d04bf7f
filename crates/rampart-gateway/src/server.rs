//! Start-up (store, first-start bootstrap, TLS, bind), the accept loop and shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rampart_core::rbac::OWNER;
use rampart_core::{BastionSettings, GatewayEndpoints, ResourceId, RoleAssignment, Scope};
use rampart_store::prelude::*;
use rampart_store::{SqliteStore, StoreError};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::api::{self, ClientAddr};
use crate::auth::{self, AuthError, LoginLimiter, TokenKeys};
use crate::config::GatewayConfig;
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
    pub(crate) keys: TokenKeys,
    pub(crate) config: GatewayConfig,
    pub(crate) endpoints: GatewayEndpoints,
    pub(crate) limiter: LoginLimiter,
    pub(crate) ssh_ca: rampart_ssh::SshCa,
    /// Verified against when a user name does not exist, so timing reveals nothing.
    pub(crate) dummy_hash: String,
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
}

impl Gateway {
    /// Opens the store, bootstraps an empty one, loads TLS and binds the listener.
    pub async fn bind(config: GatewayConfig) -> Result<StartedGateway, GatewayError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| GatewayError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.data_dir.join("rampart.db")).await?);
        let (admin_created, generated_admin_password) = bootstrap(&store, &config).await?;
        let keys = TokenKeys::load_or_create(&config.data_dir.join("keys").join("token-signing.key"))?;
        let ssh_ca = rampart_ssh::SshCa::load_or_create(&config.data_dir.join("keys").join("ssh-ca"))?;
        let cert =
            tls::load_or_generate(&config.data_dir, config.tls_cert.as_deref(), config.tls_key.as_deref())?;
        let acceptor = TlsAcceptor::from(tls::server_config(&cert)?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
        let listen =
            listener.local_addr().map_err(|source| GatewayError::Bind { addr: config.listen, source })?;
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
        let state = Arc::new(Gateway {
            store,
            keys,
            endpoints: GatewayEndpoints { listen: vec![listen], local_ips },
            limiter: LoginLimiter::new(config.login_max_failures, config.login_window),
            ssh_ca,
            config,
            dummy_hash,
        });
        Ok(StartedGateway { report, state, listener, acceptor })
    }
}

/// First start: subscription `default`, resource group `default`, bastion `default`, and
/// user `admin`. Each step runs only if its part of the store is empty, so a start that
/// was interrupted completes on the next one.
async fn bootstrap(
    store: &Arc<dyn Store>,
    config: &GatewayConfig,
) -> Result<(bool, Option<String>), GatewayError> {
    if store.list_subscriptions().await?.is_empty() {
        let sub = store.create_subscription(&uuid::Uuid::new_v4().to_string(), "default").await?;
        let id = ResourceId::bastion(&sub.id, "default", "default");
        store.create_bastion(&id, &BastionSettings::new_default()).await?;
    }
    if store.user_count().await? > 0 {
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
    let admin = store.create_user("admin", Some("Bootstrap administrator"), &hash).await?;
    make_owner_everywhere(store, &admin).await?;
    Ok((true, generated))
}

/// Makes `user` Owner of every subscription (the bootstrap admin).
async fn make_owner_everywhere(
    store: &Arc<dyn Store>,
    user: &rampart_store::User,
) -> Result<(), GatewayError> {
    for sub in store.list_subscriptions().await? {
        store
            .create_role_assignment(&RoleAssignment {
                id: uuid::Uuid::new_v4().to_string(),
                principal_id: user.id.clone(),
                principal_name: user.username.clone(),
                role: OWNER.to_string(),
                scope: Scope::Subscription(sub.id),
                condition: None,
            })
            .await?;
    }
    Ok(())
}

impl StartedGateway {
    pub fn local_addr(&self) -> SocketAddr {
        self.report.listen
    }

    /// Serves until `shutdown` completes, then stops accepting and closes the store.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let app = api::router(self.state.clone());
        tokio::pin!(shutdown);
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
                () = &mut shutdown => break,
            };
            tcp.set_nodelay(true).ok();
            let acceptor = self.acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
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
                let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
                });
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        tracing::info!("shutting down: no longer accepting connections");
        self.state.store.close().await;
    }
}
