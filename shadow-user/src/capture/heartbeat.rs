//! Whether the capture thread still reads: it beats once per pass of its loop (idle, a pass
//! waits at most 100 ms; busy, it reads at most one ring's worth, a fraction of a second),
//! and marks itself ended when it returns or panics. `/healthz` and
//! the daemon's main loop read it, so shadowing never stops without the pod noticing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The capture thread's life as its owner and the thread share it: asked to stop, and beating
/// while it runs.
#[derive(Debug, Clone, Default)]
pub struct ReaderControl {
    stop: Arc<AtomicBool>,
    heartbeat: Heartbeat,
}

impl ReaderControl {
    /// At the top of every pass of the reader's loop: beats, and says whether to go on.
    pub fn next_pass(&self) -> bool {
        self.heartbeat.beat();
        !self.stop.load(Ordering::Relaxed)
    }

    /// Asks the reader to return after its current pass.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }
}

/// A pause this long means the reader is stuck (its loop passes at least every 100 ms).
pub const STALL_LIMIT: Duration = Duration::from_secs(5);

/// What [`Heartbeat::state`] sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// No beat for this long, more than [`STALL_LIMIT`].
    Stalled(Duration),
    /// The thread returned or panicked.
    Ended,
}

/// Shared between the capture thread and its readers.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Beats>);

#[derive(Debug)]
struct Beats {
    since: Instant,
    /// Milliseconds from `since` to the last beat; [`ENDED`] once the thread is gone.
    last_ms: AtomicU64,
}

const ENDED: u64 = u64::MAX;

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Arc::new(Beats {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        }))
    }
}

impl Heartbeat {
    /// Called by the capture thread on every pass of its loop.
    pub fn beat(&self) {
        let now = self.0.since.elapsed().as_millis() as u64;
        // Never overwrite the end mark: a thread that beats while its guard drops is gone.
        let _ = self
            .0
            .last_ms
            .fetch_update(Ordering::Release, Ordering::Relaxed, |last| {
                (last != ENDED).then_some(now)
            });
    }

    /// Held by the capture thread for its whole life: dropping it, by returning or by
    /// unwinding from a panic, marks the thread ended.
    pub fn until_end(&self) -> EndGuard {
        EndGuard(self.clone())
    }

    pub fn state(&self) -> Liveness {
        self.state_at(Instant::now())
    }

    fn state_at(&self, now: Instant) -> Liveness {
        let last = self.0.last_ms.load(Ordering::Acquire);
        if last == ENDED {
            return Liveness::Ended;
        }
        let silent = now
            .saturating_duration_since(self.0.since)
            .saturating_sub(Duration::from_millis(last));
        if silent > STALL_LIMIT {
            Liveness::Stalled(silent)
        } else {
            Liveness::Alive
        }
    }
}

/// See [`Heartbeat::until_end`].
#[derive(Debug)]
pub struct EndGuard(Heartbeat);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.0.last_ms.store(ENDED, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_beyond_the_limit_is_a_stall_and_a_beat_ends_it() {
        let heartbeat = Heartbeat::default();
        let start = heartbeat.0.since;
        heartbeat.beat();
        assert_eq!(heartbeat.state_at(start + STALL_LIMIT), Liveness::Alive);
        let late = start + STALL_LIMIT + Duration::from_secs(2);
        assert!(matches!(heartbeat.state_at(late), Liveness::Stalled(d) if d > STALL_LIMIT));
        heartbeat.beat();
        assert_eq!(heartbeat.state(), Liveness::Alive);
    }

    #[test]
    fn a_thread_that_panics_or_returns_is_ended_and_stays_so() {
        for panics in [true, false] {
            let heartbeat = Heartbeat::default();
            let beating = heartbeat.clone();
            let thread = std::thread::spawn(move || {
                let _alive = beating.until_end();
                beating.beat();
                assert!(!panics, "the capture path broke");
            });
            assert_eq!(thread.join().is_err(), panics);
            assert_eq!(heartbeat.state(), Liveness::Ended);
            heartbeat.beat();
            assert_eq!(heartbeat.state(), Liveness::Ended, "no beat revives it");
        }
    }
}
