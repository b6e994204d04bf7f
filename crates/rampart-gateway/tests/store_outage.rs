//! PostgreSQL stopped for 3 s and started again under a gateway: live sessions keep flowing
//! (the data path never waits on the database), a new connection in the outage is refused with
//! "StoreUnavailable" within seconds (not a hang), and new connections work again within 5 s of
//! the database's return.

mod harness;

#[path = "../../rampart-store/tests/support/postgres.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::echo_target;
use harness::gateway::{TestGateway, echo};
use rampart_client::tunnel::{TunnelClient, TunnelError, TunnelProtocol};
use rampart_gateway::config::{Secret, StoreLocation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connection through the tunnel, and how its relay ended.
async fn open(tunnel: &Arc<TunnelClient>) -> (TcpStream, tokio::task::JoinHandle<Result<(), TunnelError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let user = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (local, _) = listener.accept().await.expect("accept");
    let tunnel = tunnel.clone();
    (user, tokio::spawn(async move { tunnel.relay(local).await.map(|_| ()) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_stops_no_live_session_and_new_ones_recover_within_5_s() {
    let cluster =
        Arc::new(tokio::task::spawn_blocking(pg::PgCluster::start).await.expect("ran").expect("postgres"));
    let url = cluster.create_database("outage").expect("database");
    let gw = TestGateway::start(move |c| c.store = StoreLocation::Postgres(Secret(url))).await;
    let target = echo_target().await;
    let tunnel = gw.tunnel(target, TunnelProtocol::Mux).await;
    let (mut live, _relay) = open(&tunnel).await;
    echo(&mut live, b"before the outage").await;

    // Traffic on the live session all through the outage, every chunk checked.
    let done = Arc::new(AtomicBool::new(false));
    let traffic = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut moved, mut n) = (0u64, 0u8);
            while !done.load(Ordering::SeqCst) {
                let chunk = vec![n; 64 * 1024];
                live.write_all(&chunk).await.expect("write during the outage");
                let mut back = vec![0u8; chunk.len()];
                tokio::time::timeout(Duration::from_secs(5), live.read_exact(&mut back))
                    .await
                    .expect("echo within 5 s during the outage")
                    .expect("read");
                assert!(back == chunk, "a chunk came back changed");
                moved += chunk.len() as u64;
                n = n.wrapping_add(1);
            }
            moved
        })
    };
    // A second session, to end while the database is away.
    let before: Vec<String> = gw.sessions().await.into_iter().map(|s| s.session_id).collect();
    let (mut ending, ending_relay) = open(&tunnel).await;
    echo(&mut ending, b"to end in the outage").await;
    let mut ending_id = None;
    for _ in 0..100 {
        ending_id = gw.sessions().await.into_iter().map(|s| s.session_id).find(|id| !before.contains(id));
        if ending_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ending_id = ending_id.expect("the second session is listed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopper = cluster.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.expect("ran").expect("postgres stops");
    let down = Instant::now();

    drop(ending);
    let _ = ending_relay.await;

    // A new connection now is refused, saying why, within seconds.
    let (_user, relay) = open(&tunnel).await;
    let refused =
        tokio::time::timeout(Duration::from_secs(10), relay).await.expect("answered in 10 s").expect("ran");
    match refused {
        Err(TunnelError::Refused { code, status, .. }) => {
            assert_eq!((code.as_str(), status), ("StoreUnavailable", 503));
        }
        other => panic!("a connection during the outage: {other:?}"),
    }
    assert!(down.elapsed() < Duration::from_secs(8), "refused after {:?}", down.elapsed());

    let left = Duration::from_secs(3).saturating_sub(down.elapsed());
    tokio::time::sleep(left).await;
    let starter = cluster.clone();
    tokio::task::spawn_blocking(move || starter.start_server())
        .await
        .expect("ran")
        .expect("postgres starts again");
    let up = Instant::now();

    // New connections work again within 5 s of the return.
    loop {
        let (mut user, relay) = open(&tunnel).await;
        let mut buf = [0u8; 5];
        let worked = user.write_all(b"again").await.is_ok()
            && tokio::time::timeout(Duration::from_secs(2), user.read_exact(&mut buf))
                .await
                .is_ok_and(|r| r.is_ok());
        if worked && &buf == b"again" {
            break;
        }
        drop(user);
        let _ = relay.await;
        assert!(
            up.elapsed() < Duration::from_secs(5),
            "no new connection within 5 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("a new connection worked {:?} after the database returned", up.elapsed());

    // The session that ended in the outage has its close record, written once the database
    // answered again.
    let close = gw.close_record(&ending_id).await;
    assert_eq!(close.reason_code.as_deref(), Some("ClientClosed"), "{close:?}");

    done.store(true, Ordering::SeqCst);
    let moved = traffic.await.expect("the live session carried traffic throughout");
    assert!(moved > 1024 * 1024, "only {moved} bytes moved");
}
