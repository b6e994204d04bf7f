//! Reads the gateway makes for every new connection (the user, their role assignments, the
//! custom roles, the bastion, the machine), kept in memory between writes.
//!
//! Every write method of [`SqliteStore`](super::SqliteStore) that changes one of these tables
//! clears the whole cache once its write has committed, so a removed role assignment or a
//! changed setting applies to the very next connection, as before. A read that raced with a
//! write does not fill the cache: each fill carries the generation it started under, and a
//! write bumps it. The gateway is the only writer of its database file.

use std::collections::HashMap;
use std::sync::Mutex;

use rampart_core::{Bastion, Machine, RoleAssignment, RoleDefinition};

use crate::User;

/// Entries per kind; past this the kind is emptied (the cache is a convenience, not an index).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct Cached {
    generation: u64,
    pub users: HashMap<String, Option<User>>,
    pub assignments: HashMap<String, Vec<RoleAssignment>>,
    pub custom_roles: Option<Vec<RoleDefinition>>,
    pub bastions: HashMap<String, Option<Bastion>>,
    pub machines: HashMap<String, Option<Machine>>,
}

#[derive(Debug, Default)]
pub(super) struct ReadCache {
    state: Mutex<Cached>,
}

impl ReadCache {
    /// A cached value, if any.
    pub fn get<T>(&self, pick: impl FnOnce(&Cached) -> Option<T>) -> Option<T> {
        self.state.lock().ok().and_then(|s| pick(&s))
    }

    /// The generation to hand to [`ReadCache::fill`] after reading the database.
    pub fn generation(&self) -> u64 {
        self.state.lock().map(|s| s.generation).unwrap_or(u64::MAX)
    }

    /// Stores what a read found, unless a write happened since `generation`.
    pub fn fill(&self, generation: u64, put: impl FnOnce(&mut Cached)) {
        if let Ok(mut s) = self.state.lock()
            && s.generation == generation
        {
            if s.users.len() > MAX_ENTRIES
                || s.assignments.len() > MAX_ENTRIES
                || s.bastions.len() > MAX_ENTRIES
                || s.machines.len() > MAX_ENTRIES
            {
                let generation = s.generation;
                *s = Cached { generation, ..Cached::default() };
            }
            put(&mut s);
        }
    }

    /// Forgets everything; called after every committed write to the cached tables.
    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            let generation = s.generation.wrapping_add(1);
            *s = Cached { generation, ..Cached::default() };
        }
    }
}

/// Held by a write method from its first line to its end: clears the cache when taken and
/// again when dropped, whatever path the method returns by, so nothing read before the write
/// committed outlives it.
pub(super) struct WriteGuard<'a>(&'a ReadCache);

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
