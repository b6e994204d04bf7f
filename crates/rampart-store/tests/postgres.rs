//! The store conformance suite against the PostgreSQL store, on a cluster this test starts.

mod conformance;
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use rampart_store::{PostgresStore, Store};
use support::postgres::PgCluster;

fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL for the tests: {e}"))
    })
}

/// A fresh, empty database of its own per test.
async fn postgres() -> (Arc<dyn Store>, ()) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("conformance_{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let url = tokio::task::spawn_blocking(move || cluster().create_database(&name))
        .await
        .expect("createdb ran")
        .expect("a database");
    let store = PostgresStore::connect(&url).await.expect("store connects");
    (Arc::new(store), ())
}

conformance_tests!(postgres());

/// Two processes' stores on one database (two nodes): a write through one drops the other's
/// cached reads within a second, and an event published by one reaches the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_see_each_others_writes_and_events() {
    use rampart_core::{BastionSettings, ResourceId};
    use rampart_store::prelude::*;
    let url = tokio::task::spawn_blocking(|| cluster().create_database("two_nodes"))
        .await
        .expect("ran")
        .expect("db");
    let a = PostgresStore::connect(&url).await.expect("node a");
    let b = PostgresStore::connect(&url).await.expect("node b");
    a.create_subscription("sub1", "default").await.expect("sub");
    let id = ResourceId::bastion("sub1", "rg", "b1");
    a.create_bastion(&id, &BastionSettings::new_default()).await.expect("bastion");
    // b reads (and caches) the setting, then a changes it.
    assert!(!b.bastion(&id).await.expect("read").expect("found").settings.enable_ip_connect);
    let mut events = b.subscribe();
    let mut settings = BastionSettings::new_default();
    settings.enable_ip_connect = true;
    a.update_bastion(&id, &settings).await.expect("update");
    let t = std::time::Instant::now();
    loop {
        if b.bastion(&id).await.expect("read").expect("found").settings.enable_ip_connect {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "node b still reads the old setting after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let stop = rampart_store::StoreEvent::StopSession {
        id: "s9".into(),
        reason: "disconnected".into(),
        by: "admin".into(),
    };
    a.publish(&stop).await.expect("publish");
    let got = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        loop {
            match events.recv().await {
                Ok(e) if e == stop => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(got, Ok(true), "node b got node a's event");
    a.close().await;
    b.close().await;
}
