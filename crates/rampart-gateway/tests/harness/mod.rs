//! The in-process harness: the admission service and the session lifecycle over a real
//! store in a temporary directory (no HTTP), and a whole gateway on an ephemeral loopback
//! port with a typed client, for tests that reach what the end-to-end suite reaches without
//! starting processes or waiting on clocks.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_core::rbac::OWNER;
use rampart_core::{
    BastionSettings, ClientKind, EndReason, GatewayEndpoints, Identity, Protocol, ResourceId, RoleAssignment,
    Scope,
};
use rampart_gateway::admission::{AdmissionService, Request, Target};
use rampart_gateway::lifecycle::{Direction, Session, SessionObserver, Sessions};
use rampart_store::SqliteStore;
use rampart_store::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub mod gateway;

/// What an observer saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Started { session: String, protocol: Protocol },
    Data { session: String, direction: Direction, bytes: Vec<u8> },
    Ended { session: String, reason: EndReason },
}

/// An observer that keeps everything it is told.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Seen>>);

impl Recorder {
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl SessionObserver for Recorder {
    fn started(&self, s: &Session, _: Option<Duration>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(Seen::Started { session: s.id.clone(), protocol: s.protocol });
        }
    }
    fn data(&self, s: &Session, direction: Direction, bytes: &[u8]) {
        if let Ok(mut v) = self.0.lock() {
            v.push(Seen::Data { session: s.id.clone(), direction, bytes: bytes.to_vec() });
        }
    }
    fn ended(&self, s: &Session, end: &EndReason) {
        if let Ok(mut v) = self.0.lock() {
            v.push(Seen::Ended { session: s.id.clone(), reason: end.clone() });
        }
    }
}

/// A store with one subscription, the bastion `default` reaching 127.0.0.0/8 by IP, `alice`
/// (Owner of the subscription) and `bob` (no role), and the admission service and lifecycle
/// over it.
pub struct Scene {
    _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub sessions: Arc<Sessions>,
    pub admission: AdmissionService,
    pub draining: Arc<AtomicBool>,
    pub recorder: Arc<Recorder>,
    pub bastion: ResourceId,
    pub alice: Identity,
    pub bob: Identity,
}

impl Scene {
    pub async fn new() -> Scene {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("rampart.db")).await.expect("store"));
        let sub =
            store.create_subscription("00000000-0000-0000-0000-000000000001", "default").await.expect("sub");
        let bastion = ResourceId::bastion(&sub.id, "default", "default");
        let mut settings = BastionSettings::new_default();
        settings.enable_ip_connect = true;
        settings.reachable_networks = vec!["127.0.0.0/8".parse().expect("network")];
        store.create_bastion(&bastion, &settings).await.expect("bastion");
        let alice = store.create_user("alice", None, "not-a-hash").await.expect("alice");
        let bob = store.create_user("bob", None, "not-a-hash").await.expect("bob");
        store
            .create_role_assignment(&RoleAssignment {
                id: "a1".into(),
                principal_id: alice.id.clone(),
                principal_name: alice.username.clone(),
                role: OWNER.into(),
                scope: Scope::Subscription(sub.id.clone()),
                condition: None,
                eligibility: None,
            })
            .await
            .expect("assignment");
        let recorder = Arc::new(Recorder::default());
        let sessions = Arc::new(Sessions::new(store.clone(), vec![recorder.clone()]));
        let draining = Arc::new(AtomicBool::new(false));
        // The gateway's own endpoint: an address nothing listens on.
        let endpoints =
            GatewayEndpoints { listen: vec!["127.0.0.1:1".parse().expect("addr")], local_ips: vec![] };
        let admission = AdmissionService::new(
            store.clone(),
            sessions.clone(),
            endpoints,
            Duration::from_secs(2),
            draining.clone(),
        );
        Scene {
            _dir: dir,
            store,
            sessions,
            admission,
            draining,
            recorder,
            bastion,
            alice: Identity::user(alice.id, alice.username),
            bob: Identity::user(bob.id, bob.username),
        }
    }

    /// A request of `who` for `target` by IP address, as a native tunnel.
    pub fn request(&self, who: &Identity, target: SocketAddr) -> Request {
        Request {
            identity: who.clone(),
            bastion: self.bastion.clone(),
            target: Target::Ip(target.ip()),
            port: target.port(),
            protocol: Protocol::TcpTunnel,
            client_kind: ClientKind::Native,
            client: "127.0.0.1:50000".parse().expect("addr"),
        }
    }

    pub async fn set(&self, change: impl FnOnce(&mut BastionSettings)) {
        let mut settings = self.store.bastion(&self.bastion).await.expect("read").expect("bastion").settings;
        change(&mut settings);
        self.store.update_bastion(&self.bastion, &settings).await.expect("update");
    }

    /// The audit records, oldest first.
    pub async fn audit(&self) -> Vec<rampart_core::AuditEntry> {
        self.store.audit_chain().await.expect("audit")
    }
}

/// A TCP echo server on an ephemeral loopback port; it runs until the test's runtime ends.
pub async fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A loopback port with nothing listening on it.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}
