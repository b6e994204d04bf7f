//! A whole gateway in this process on an ephemeral loopback port, with a typed client.

use std::sync::Arc;
use std::time::Duration;

use rampart_client::api::{ApiClient, AuditQuery};
use rampart_client::trust::Trust;
use rampart_client::tunnel::{TunnelClient, TunnelProtocol};
use rampart_gateway::config::{MetricsEndpoint, Secret};
use rampart_gateway::{Gateway, GatewayConfig};
use rampart_proto::api::{AuditRecord, BastionChange, Session};
use rampart_proto::tunnel::TunnelRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PASSWORD: &str = "harness-admin-password";

pub struct TestGateway {
    _dir: tempfile::TempDir,
    pub config: GatewayConfig,
    pub server: String,
    pub fingerprint: String,
    pub admin: ApiClient,
    pub subscription: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway whose `default` bastion reaches 127.0.0.0/8 by IP address, and signs
    /// in as its bootstrap admin. `configure` changes the settings first.
    pub async fn start(configure: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = GatewayConfig::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_path_buf());
        config.admin_password = Some(Secret(PASSWORD.into()));
        config.metrics = MetricsEndpoint::Off;
        configure(&mut config);
        let kept = config.clone();
        let store = rampart_gateway::open_store(&config).await.expect("store opens");
        let started = Gateway::bind(config, store).await.expect("gateway starts");
        let server = format!("https://{}", started.local_addr());
        let fingerprint = started.report.fingerprint.clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(started.serve(async move {
            let _ = stop.await;
        }));
        let admin = ApiClient::new(&server, Trust::Fingerprint(fingerprint.clone())).expect("client");
        admin.login("admin", PASSWORD).await.expect("admin signs in");
        let subscription = admin.subscriptions().await.expect("subscriptions").remove(0).id;
        let change = BastionChange {
            enable_ip_connect: Some(true),
            reachable_networks: Some(vec!["127.0.0.0/8".into()]),
            ..BastionChange::default()
        };
        admin.update_bastion(&subscription, "default", "default", &change).await.expect("bastion settings");
        TestGateway {
            _dir: dir,
            config: kept,
            server,
            fingerprint,
            admin,
            subscription,
            shutdown: Some(shutdown),
            served: Some(served),
        }
    }

    pub fn bastion_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/default/providers/Microsoft.Network/bastionHosts/default",
            self.subscription
        )
    }

    /// A client that is not signed in.
    pub fn anonymous(&self) -> ApiClient {
        ApiClient::new(&self.server, Trust::Fingerprint(self.fingerprint.clone())).expect("client")
    }

    /// A tunnel to `target` over `protocol`, as the admin.
    pub async fn tunnel(&self, target: std::net::SocketAddr, protocol: TunnelProtocol) -> Arc<TunnelClient> {
        self.tunnel_as(self.admin.clone(), target, protocol).await
    }

    /// A tunnel to `target` over `protocol`, as whoever `client` is signed in as.
    pub async fn tunnel_as(
        &self,
        client: ApiClient,
        target: std::net::SocketAddr,
        protocol: TunnelProtocol,
    ) -> Arc<TunnelClient> {
        let request = TunnelRequest {
            bastion_id: self.bastion_id(),
            target_ip_address: Some(target.ip().to_string()),
            target_resource_id: None,
            resource_port: target.port(),
        };
        TunnelClient::open_with(client, request, Duration::from_secs(30), protocol)
            .await
            .expect("tunnel granted")
    }

    pub async fn sessions(&self) -> Vec<Session> {
        let path = format!(
            "/api/subscriptions/{}/resourceGroups/default/bastionHosts/default/sessions",
            self.subscription
        );
        self.admin
            .request::<(), Vec<Session>>(http::Method::GET, &path, None)
            .await
            .expect("sessions")
            .unwrap_or_default()
    }

    pub async fn disconnect(&self, id: &str) {
        let path = format!(
            "/api/subscriptions/{}/resourceGroups/default/bastionHosts/default/sessions/{id}",
            self.subscription
        );
        self.admin
            .request::<(), serde_json::Value>(http::Method::DELETE, &path, None)
            .await
            .expect("disconnect");
    }

    pub async fn audit(&self) -> Vec<AuditRecord> {
        self.admin.audit(&AuditQuery { limit: Some(1000), ..AuditQuery::default() }).await.expect("audit")
    }

    /// The close record of a connection, waiting a little for it to be written.
    pub async fn close_record(&self, connection: &str) -> AuditRecord {
        for _ in 0..100 {
            let found =
                self.audit().await.into_iter().find(|r| {
                    r.event == "connection-close" && r.connection_id.as_deref() == Some(connection)
                });
            if let Some(r) = found {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no close record for {connection}");
    }

    /// Starts the drain, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }

    /// Stops the gateway the way SIGTERM does, and waits until it has stopped.
    pub async fn shut_down(&mut self) {
        self.begin_shutdown();
        if let Some(served) = self.served.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), served).await;
        }
    }
}

impl TestGateway {
    /// The audit log as stored, read after the gateway stopped.
    pub async fn stored_audit(&self) -> Vec<rampart_core::AuditEntry> {
        use rampart_store::prelude::*;
        let store =
            rampart_store::SqliteStore::open(&self._dir.path().join("rampart.db")).await.expect("store");
        let chain = store.audit_chain().await.expect("audit");
        store.close().await;
        chain
    }
}

/// A local TCP connection relayed through `tunnel`: the returned socket is the user's end.
pub async fn connect_through(tunnel: &Arc<TunnelClient>) -> (TcpStream, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let user = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (local, _) = listener.accept().await.expect("accept");
    let tunnel = tunnel.clone();
    let relay = tokio::spawn(async move {
        let _ = tunnel.relay(local).await;
    });
    (user, relay)
}

/// Writes `bytes` and reads them back from an echo target.
pub async fn echo(socket: &mut TcpStream, bytes: &[u8]) {
    socket.write_all(bytes).await.expect("write");
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(back, bytes);
}

/// Waits until the peer closes `socket` (EOF or reset).
pub async fn closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was not closed");
}
