//! How a store's read cache learns that what it holds may be stale: an explicit part, so
//! that a backend shared by several gateway processes can swap the in-process one for a
//! notification channel (PostgreSQL `LISTEN`/`NOTIFY`) without touching the cache.

use std::sync::atomic::{AtomicU64, Ordering};

/// A generation counter that every committed write to a cached table moves on. A cached
/// value filled under an older generation is never served.
pub trait Invalidation: Send + Sync + std::fmt::Debug {
    /// The current generation.
    fn generation(&self) -> u64;
    /// Called after a committed write to a cached table (by this process; a shared backend
    /// also calls it when another process wrote).
    fn invalidate(&self);
}

/// Writes made by this process only: enough while one process writes its database (SQLite).
#[derive(Debug, Default)]
pub struct LocalInvalidation(AtomicU64);

impl Invalidation for LocalInvalidation {
    fn generation(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn invalidate(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// An invalidation that also tells this process's subscribers ([`crate::StoreEvent::CacheInvalidated`]),
/// so what depends on authorization inputs (live sessions) is decided again after a write.
/// (On PostgreSQL every node's listener does this for every node's writes.)
#[derive(Debug)]
pub struct AnnouncedInvalidation {
    inner: std::sync::Arc<dyn Invalidation>,
    events: tokio::sync::broadcast::Sender<crate::StoreEvent>,
}

impl AnnouncedInvalidation {
    pub fn new(
        inner: std::sync::Arc<dyn Invalidation>,
        events: tokio::sync::broadcast::Sender<crate::StoreEvent>,
    ) -> AnnouncedInvalidation {
        AnnouncedInvalidation { inner, events }
    }
}

impl Invalidation for AnnouncedInvalidation {
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    fn invalidate(&self) {
        self.inner.invalidate();
        // No subscriber is no error: nothing depends on it yet.
        let _ = self.events.send(crate::StoreEvent::CacheInvalidated);
    }
}
