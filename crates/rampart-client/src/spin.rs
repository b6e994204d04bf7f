//! A short spin before the tunnel's thread sleeps, so a quick answer finds it awake.
//!
//! A round trip through `rampart tunnel` crosses four processes (the application, this client,
//! the gateway, the target), and each hop costs the kernel a sleep and a wake-up of the next
//! one: most of the round trip on loopback, and the same for `ssh -L` (BENCHMARKS.md). While
//! its last wait ended within [`BUDGET`], this client's thread checks its sockets for up to
//! that long before it sleeps; an answer that arrives meanwhile is read without the sleep and
//! the wake-up. One wait longer than that (a real network's round trip, a person typing) turns
//! the spin off until a wait is short again, so a slower peer or an idle tunnel costs at most
//! one budget of CPU.
//!
//! The check is an epoll set of its own holding the tunnel's sockets (the gateway connection
//! and each local one), asked without waiting; the runtime's own epoll then finds the same
//! readiness. It helps only where one thread owns the runtime's I/O, so the tunnel commands
//! run on a current-thread runtime ([`enable`]).

use std::cell::Cell;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};

/// How long the thread checks for an answer before it sleeps.
pub const BUDGET: Duration = Duration::from_micros(100);

static SET: OnceLock<OwnedFd> = OnceLock::new();

thread_local! {
    /// When this thread last began to wait, and whether its last wait was quick.
    static WAIT: Cell<(Option<Instant>, bool)> = const { Cell::new((None, false)) };
}

/// Turns the spin on for this process (the tunnel commands, on a current-thread runtime).
/// Without epoll (not Linux, or refused) the spin stays off and nothing else changes.
pub fn enable() {
    if let Ok(set) = epoll::create(epoll::CreateFlags::CLOEXEC) {
        let _ = SET.set(set);
    }
}

/// Adds a socket of the tunnel to the set the spin checks. It leaves the set by itself when
/// the socket closes.
pub fn watch(socket: impl AsFd) {
    if let Some(set) = SET.get() {
        // Level-triggered: unread data ends the spin at once (the runtime has work).
        let _ = epoll::add(set, socket, epoll::EventData::new_u64(0), epoll::EventFlags::IN);
    }
}

/// The runtime's `on_thread_park`: spins for up to [`BUDGET`] while answers are quick.
pub fn before_park() {
    let Some(set) = SET.get() else { return };
    let started = Instant::now();
    let quick = WAIT.with(|w| w.get().1);
    WAIT.with(|w| w.set((Some(started), quick)));
    if !quick {
        return;
    }
    let now = Timespec { tv_sec: 0, tv_nsec: 0 };
    let mut events = Vec::with_capacity(1);
    while started.elapsed() < BUDGET {
        match epoll::wait(set, spare_capacity(&mut events), Some(&now)) {
            Ok(0) => std::hint::spin_loop(),
            _ => return,
        }
    }
}

/// The runtime's `on_thread_unpark`: notes whether this wait was quick.
pub fn after_unpark() {
    WAIT.with(|w| {
        if let (Some(started), _) = w.get() {
            w.set((None, started.elapsed() <= BUDGET));
        }
    });
}
