//! The store conformance suite against the SQLite store.

mod conformance;

use std::sync::Arc;

use rampart_store::{SqliteStore, Store};

/// A fresh, empty store in a temporary directory (kept while the guard lives).
async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("rampart.db")).await.expect("store opens");
    (Arc::new(store), dir)
}

conformance_tests!(sqlite());
