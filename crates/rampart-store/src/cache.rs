//! Reads the gateway makes for every new connection (the user, their role assignments, the
//! custom roles, the bastion, the machine), kept in memory between writes.
//!
//! Every write method of a store (SQLite's, PostgreSQL's) that changes one of these tables
//! clears the whole cache once its write has committed, so a removed role assignment or a
//! changed setting applies to the very next connection, as before. A read that raced with a
//! write does not fill the cache: each fill carries the generation it started under, and a
//! write moves it on. The generation is the store's [`Invalidation`]: in-process for SQLite,
//! whose one writer is the gateway; a shared backend swaps in one fed by other writers too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_core::{Bastion, Machine, RoleAssignment, RoleDefinition};

use crate::User;
use crate::invalidation::Invalidation;

/// Entries per kind; past this the kind is emptied (the cache is a convenience, not an index).
const MAX_ENTRIES: usize = 4096;
/// The most a cached read is served for: a backstop should an invalidation from another node
/// ever be lost (a notification sent while a listener reconnected), not the mechanism.
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct Cached {
    /// The invalidation generation these entries were read under.
    generation: u64,
    /// When the first of them was read.
    filled_at: Option<std::time::Instant>,
    pub users: HashMap<String, Option<User>>,
    /// The groups of a principal, by its ID.
    pub groups: HashMap<String, Vec<String>>,
    pub assignments: HashMap<String, Vec<RoleAssignment>>,
    pub custom_roles: Option<Vec<RoleDefinition>>,
    pub bastions: HashMap<String, Option<Bastion>>,
    pub machines: HashMap<String, Option<Machine>>,
}

#[derive(Debug)]
pub(crate) struct ReadCache {
    state: Mutex<Cached>,
    invalidation: Arc<dyn Invalidation>,
}

impl ReadCache {
    pub fn new(invalidation: Arc<dyn Invalidation>) -> ReadCache {
        let generation = invalidation.generation();
        ReadCache { state: Mutex::new(Cached { generation, ..Cached::default() }), invalidation }
    }

    /// A cached value, if any and still current.
    pub fn get<T>(&self, pick: impl FnOnce(&Cached) -> Option<T>) -> Option<T> {
        let current = self.invalidation.generation();
        let mut s = self.state.lock().ok()?;
        if s.generation != current || s.filled_at.is_some_and(|t| t.elapsed() > MAX_AGE) {
            *s = Cached { generation: current, ..Cached::default() };
            return None;
        }
        pick(&s)
    }

    /// The generation to hand to [`ReadCache::fill`] after reading the database.
    pub fn generation(&self) -> u64 {
        self.invalidation.generation()
    }

    /// Stores what a read found, unless a write happened since `generation`.
    pub fn fill(&self, generation: u64, put: impl FnOnce(&mut Cached)) {
        if generation != self.invalidation.generation() {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            if s.generation != generation
                || s.users.len() > MAX_ENTRIES
                || s.assignments.len() > MAX_ENTRIES
                || s.bastions.len() > MAX_ENTRIES
                || s.machines.len() > MAX_ENTRIES
            {
                *s = Cached { generation, ..Cached::default() };
            }
            s.filled_at.get_or_insert_with(std::time::Instant::now);
            put(&mut s);
        }
    }

    /// Forgets everything; called after every committed write to the cached tables.
    pub fn clear(&self) {
        self.invalidation.invalidate();
    }
}

/// Held by a write method from its first line to its end: clears the cache when taken and
/// again when dropped, whatever path the method returns by, so nothing read before the write
/// committed outlives it.
pub(crate) struct WriteGuard<'a>(&'a ReadCache);

impl ReadCache {
    pub fn write_guard(&self) -> WriteGuard<'_> {
        self.clear();
        WriteGuard(self)
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}
