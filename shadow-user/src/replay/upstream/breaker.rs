//! A circuit breaker per shadow service. After `failures` connects in a row fail, copies to
//! the service fail at once (`circuit_open`) for a pause; when it ends, one copy probes with
//! a real connect: its success closes the breaker, its failure opens it again for twice the
//! pause, up to `longest_pause`. A shadow that is down then costs neither a DNS query nor a
//! connect timeout per copy, and copies waiting to fail do not fill the replay budget.

use std::{
    fmt::Display,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Connect failures in a row that open it.
    pub failures: u32,
    /// The first pause.
    pub first_pause: Duration,
    /// The longest pause, however many probes failed.
    pub longest_pause: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            first_pause: Duration::from_secs(1),
            longest_pause: Duration::from_secs(30),
        }
    }
}

/// What a caller about to connect may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Connect; `probe` if this connect decides whether the breaker closes.
    Go { probe: bool },
    /// Fail at once: the breaker is open for this long yet (zero while a probe is out).
    Refused { for_: Duration },
}

#[derive(Debug)]
pub(super) struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures_in_a_row: u32,
    /// While open: until when. `None`: closed.
    open_until: Option<Instant>,
    pause: Duration,
    /// When the probe of an ended pause went out, if one is out.
    probe_since: Option<Instant>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a connect may go at `now`. A probe that never reported (its copy was dropped
    /// mid-connect) is given up after `probe_limit`, and the next caller probes.
    pub fn admit(&self, now: Instant, probe_limit: Duration) -> Admission {
        let mut state = self.lock();
        let Some(until) = state.open_until else {
            return Admission::Go { probe: false };
        };
        if now < until {
            return Admission::Refused { for_: until - now };
        }
        match state.probe_since {
            Some(since) if now.saturating_duration_since(since) < probe_limit => {
                Admission::Refused {
                    for_: Duration::ZERO,
                }
            }
            _ => {
                state.probe_since = Some(now);
                Admission::Go { probe: true }
            }
        }
    }

    /// A connect succeeded: the breaker closes.
    pub fn connected(&self, service: &(impl Display + ?Sized)) {
        let mut state = self.lock();
        if state.open_until.is_some() {
            tracing::info!(%service, "shadow service reachable again: copies go out");
        }
        *state = State::default();
    }

    /// A connect admitted as `probe` (or not) failed at `now`.
    pub fn connect_failed(&self, now: Instant, probe: bool, service: &(impl Display + ?Sized)) {
        let mut state = self.lock();
        state.failures_in_a_row = state.failures_in_a_row.saturating_add(1);
        let pause = if probe {
            (state.pause * 2).min(self.config.longest_pause)
        } else if state.open_until.is_none() && state.failures_in_a_row >= self.config.failures {
            self.config.first_pause
        } else {
            // Closed and below the threshold, or a connect admitted before it opened.
            return;
        };
        state.pause = pause;
        state.open_until = Some(now + pause);
        state.probe_since = None;
        tracing::warn!(
            %service,
            failures = state.failures_in_a_row,
            ?pause,
            "shadow service unreachable: its copies are dropped as circuit_open until a probe connects"
        );
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still a valid one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(4);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    #[test]
    fn it_opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(breaker.admit(t0, LIMIT), Admission::Go { probe: false });
            breaker.connect_failed(t0, false, "s");
        }
        breaker.connected("s");
        for _ in 0..4 {
            breaker.connect_failed(t0, false, "s");
        }
        assert_eq!(breaker.admit(t0, LIMIT), Admission::Go { probe: false });
        breaker.connect_failed(t0, false, "s");
        assert_eq!(
            breaker.admit(t0, LIMIT),
            Admission::Refused {
                for_: Duration::from_secs(1)
            }
        );
        // Connects admitted before it opened do not lengthen the pause.
        breaker.connect_failed(t0, false, "s");
        assert_eq!(
            breaker.admit(t0 + Duration::from_millis(500), LIMIT),
            Admission::Refused {
                for_: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn one_probe_per_pause_doubling_pauses_and_a_successful_probe_closes_it() {
        let breaker = breaker();
        let mut now = Instant::now();
        for _ in 0..5 {
            breaker.connect_failed(now, false, "s");
        }
        let mut pauses = Vec::new();
        for _ in 0..7 {
            let Admission::Refused { for_ } = breaker.admit(now, LIMIT) else {
                panic!("open");
            };
            pauses.push(for_.as_secs());
            now += for_;
            assert_eq!(breaker.admit(now, LIMIT), Admission::Go { probe: true });
            // While the probe is out, the others still fail at once.
            assert_eq!(
                breaker.admit(now, LIMIT),
                Admission::Refused {
                    for_: Duration::ZERO
                }
            );
            breaker.connect_failed(now, true, "s");
        }
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30]);
        now += Duration::from_secs(30);
        assert_eq!(breaker.admit(now, LIMIT), Admission::Go { probe: true });
        breaker.connected("s");
        assert_eq!(breaker.admit(now, LIMIT), Admission::Go { probe: false });
        // Closed again: the count starts over.
        breaker.connect_failed(now, false, "s");
        assert_eq!(breaker.admit(now, LIMIT), Admission::Go { probe: false });
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up() {
        let breaker = breaker();
        let now = Instant::now();
        for _ in 0..5 {
            breaker.connect_failed(now, false, "s");
        }
        let after = now + Duration::from_secs(1);
        assert_eq!(breaker.admit(after, LIMIT), Admission::Go { probe: true });
        assert!(matches!(
            breaker.admit(after + LIMIT / 2, LIMIT),
            Admission::Refused { .. }
        ));
        assert_eq!(
            breaker.admit(after + LIMIT, LIMIT),
            Admission::Go { probe: true }
        );
    }
}
