//! A short spin before the tunnel's thread sleeps, so a quick answer finds it awake.
//!
//! A round trip through `rampart tunnel` crosses four processes (the application, this client,
//! the gateway, the target), and each hop costs the kernel a sleep and a wake-up of the next
//! one: most of the round trip on loopback, and the same for `ssh -L` (BENCHMARKS.md). While
//! its last wait ended within [`BUDGET`], this client's thread checks its sockets for up to
//! that long before it sleeps; an answer that arrives meanwhile is read without the sleep and
//! the wake-up. One wait longer than that (a real network's round trip, a person typing) turns
//! the spin off until a wait is short again, and a spin that comes back empty-handed (what
//! woke the runtime was a timer or a socket becoming writable, which the set does not see)
//! makes the next 1, 2, 4, … 64 parks sleep at once: a slower peer or an idle tunnel costs at
//! most a budget now and then.
//!
//! The check is an epoll set of its own holding the tunnel's sockets (the gateway connection
//! and each local one), asked without waiting; the runtime's own epoll then finds the same
//! readiness. It helps only where one thread owns the runtime's I/O, so the tunnel commands
//! run on a current-thread runtime ([`enable`]).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{Timespec, epoll};

/// How long the thread checks for an answer before it sleeps.
pub const BUDGET: Duration = Duration::from_micros(100);

static SET: OnceLock<OwnedFd> = OnceLock::new();

/// Parks skipped at most after spins that found nothing.
const MAX_BACKOFF: u32 = 64;

/// When to spin: the last wait was short, and no recent spin came back empty-handed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Policy {
    /// The last wait (park to unpark) ended within [`BUDGET`].
    quick: bool,
    /// Parks to let pass without a spin, and how many the next miss skips.
    skip: u32,
    backoff: u32,
}

impl Policy {
    /// Whether this park spins.
    fn park(&mut self) -> bool {
        if !self.quick {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// A spin ended: `hit` if one of the tunnel's sockets became readable. A miss (something
    /// the set cannot see woke the runtime, or nothing did) doubles the parks skipped next.
    fn spun(&mut self, hit: bool) {
        if hit {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, MAX_BACKOFF);
            self.skip = self.backoff;
        }
    }

    fn unpark(&mut self, waited: Duration) {
        self.quick = waited <= BUDGET;
    }
}

thread_local! {
    /// When this thread last began to wait, and its policy.
    static WAIT: Cell<(Option<Instant>, Policy)> = const {
        Cell::new((None, Policy { quick: false, skip: 0, backoff: 0 }))
    };
}

/// Turns the spin on for this process (the tunnel commands, on a current-thread runtime).
/// Without epoll (not Linux, or refused) the spin stays off and nothing else changes.
pub fn enable() {
    if let Ok(set) = epoll::create(epoll::CreateFlags::CLOEXEC) {
        let _ = SET.set(set);
    }
}

/// Adds a socket of the tunnel (or its listener) to the set the spin checks. It leaves the
/// set by itself when the socket closes.
pub fn watch(socket: impl AsFd) {
    if let Some(set) = SET.get() {
        // Level-triggered: unread data ends the spin at once (the runtime has work). A socket
        // left unread (a full local reader) thus turns the spin off, which costs nothing.
        let _ = epoll::add(set, socket, epoll::EventData::new_u64(0), epoll::EventFlags::IN);
    }
}

/// The runtime's `on_thread_park`: spins for up to [`BUDGET`] while answers are quick.
pub fn before_park() {
    let Some(set) = SET.get() else { return };
    let started = Instant::now();
    let (_, mut policy) = WAIT.with(Cell::get);
    let spin = policy.park();
    if spin {
        let now = Timespec { tv_sec: 0, tv_nsec: 0 };
        let mut events = [MaybeUninit::<epoll::Event>::uninit()];
        let mut hit = false;
        while !hit && started.elapsed() < BUDGET {
            match epoll::wait(set, &mut events, Some(&now)) {
                Ok(([], _)) => std::hint::spin_loop(),
                _ => hit = true,
            }
        }
        policy.spun(hit);
    }
    WAIT.with(|w| w.set((Some(started), policy)));
}

/// The runtime's `on_thread_unpark`: notes whether this wait was quick.
pub fn after_unpark() {
    WAIT.with(|w| {
        if let (Some(started), mut policy) = w.get() {
            policy.unpark(started.elapsed());
            w.set((None, policy));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_only_after_a_quick_wait_and_backs_off_after_misses() {
        let mut p = Policy::default();
        assert!(!p.park(), "the first wait of a tunnel is not known to be quick");
        p.unpark(Duration::from_micros(30));
        assert!(p.park());
        p.spun(true);
        assert!(p.park(), "a spin that caught its answer keeps spinning");
        // Misses: 1, 2, 4, … parks pass without a spin, up to MAX_BACKOFF.
        for skipped in [1, 2, 4, 8, 16, 32, 64, 64] {
            p.spun(false);
            for _ in 0..skipped {
                assert!(!p.park());
            }
            assert!(p.park(), "after {skipped} skipped parks the spin is tried again");
        }
        p.spun(true);
        p.spun(false);
        assert_eq!(p.skip, 1, "a hit forgets earlier misses");
        p.unpark(Duration::from_millis(5));
        p.skip = 0;
        assert!(!p.park(), "a slow answer turns the spin off");
    }
}
