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
