//! A circuit breaker per shadow service. After `failures` connects in a row fail, copies to
//! the service fail at once (`circuit_open`) for a pause; when it ends, one copy probes with
//! a real connect: its success closes the breaker, its failure opens it again for twice the
//! pause, up to `longest_pause`. A shadow that is down then costs neither a DNS query nor a
//! connect timeout per copy, and copies waiting to fail do not fill the replay budget.

use std::{
    fmt::Display,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

// The runtime's clock, so tests with paused time move the breaker's pauses too.
use tokio::time::Instant;

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
    /// Connect; with `probe`, this connect is the probe that went out then, and decides
    /// whether the breaker closes.
    Go { probe: Option<Instant> },
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
            return Admission::Go { probe: None };
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
                Admission::Go { probe: Some(now) }
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

    /// A connect admitted with `probe` failed at `now`.
    pub fn connect_failed(
        &self,
        now: Instant,
        probe: Option<Instant>,
        service: &(impl Display + ?Sized),
    ) {
        let mut state = self.lock();
        state.failures_in_a_row = state.failures_in_a_row.saturating_add(1);
        // Only the probe still out counts as one: a probe given up and replaced, or one
        // that reports after another connect closed the breaker, is an ordinary failure.
        let probe = probe.is_some() && state.open_until.is_some() && state.probe_since == probe;
        let pause = if probe {
            (state.pause * 2).clamp(self.config.first_pause, self.config.longest_pause)
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
    const NORMAL: Admission = Admission::Go { probe: None };

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    /// Opens `breaker` at `now` with failures in a row.
    fn open(breaker: &Breaker, now: Instant) {
        for _ in 0..5 {
            breaker.connect_failed(now, None, "s");
        }
    }

    /// Lets the probe out at `now`; panics unless one may go.
    fn probe(breaker: &Breaker, now: Instant) -> Option<Instant> {
        match breaker.admit(now, LIMIT) {
            Admission::Go { probe: Some(at) } => Some(at),
            other => panic!("no probe: {other:?}"),
        }
    }

    fn refused_for(breaker: &Breaker, now: Instant) -> Duration {
        match breaker.admit(now, LIMIT) {
            Admission::Refused { for_ } => for_,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn it_opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(breaker.admit(t0, LIMIT), NORMAL);
            breaker.connect_failed(t0, None, "s");
        }
        breaker.connected("s");
        for _ in 0..4 {
            breaker.connect_failed(t0, None, "s");
        }
        assert_eq!(breaker.admit(t0, LIMIT), NORMAL);
        breaker.connect_failed(t0, None, "s");
        assert_eq!(refused_for(&breaker, t0), Duration::from_secs(1));
        // Connects admitted before it opened do not lengthen the pause.
        breaker.connect_failed(t0, None, "s");
        assert_eq!(
            refused_for(&breaker, t0 + Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn one_probe_per_pause_doubling_pauses_and_a_successful_probe_closes_it() {
        let breaker = breaker();
        let mut now = Instant::now();
        open(&breaker, now);
        let mut pauses = Vec::new();
        for _ in 0..7 {
            let pause = refused_for(&breaker, now);
            pauses.push(pause.as_secs());
            now += pause;
            let out = probe(&breaker, now);
            // While the probe is out, the others still fail at once.
            assert_eq!(refused_for(&breaker, now), Duration::ZERO);
            breaker.connect_failed(now, out, "s");
        }
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30]);
        now += Duration::from_secs(30);
        probe(&breaker, now);
        breaker.connected("s");
        assert_eq!(breaker.admit(now, LIMIT), NORMAL);
        // Closed again: the count starts over.
        breaker.connect_failed(now, None, "s");
        assert_eq!(breaker.admit(now, LIMIT), NORMAL);
    }

    #[test]
    fn a_probe_that_never_reports_is_given_up_and_its_late_report_changes_nothing() {
        let breaker = breaker();
        let now = Instant::now();
        open(&breaker, now);
        let after = now + Duration::from_secs(1);
        let lost = probe(&breaker, after);
        assert_eq!(refused_for(&breaker, after + LIMIT / 2), Duration::ZERO);
        let next = probe(&breaker, after + LIMIT);
        // The first probe reports late: not the one out, so the pause does not double.
        breaker.connect_failed(after + LIMIT, lost, "s");
        assert_eq!(refused_for(&breaker, after + LIMIT), Duration::ZERO);
        breaker.connect_failed(after + LIMIT, next, "s");
        assert_eq!(refused_for(&breaker, after + LIMIT), Duration::from_secs(2));
    }

    #[test]
    fn a_probe_that_fails_after_the_breaker_closed_does_not_reopen_it_without_a_pause() {
        let breaker = breaker();
        let now = Instant::now();
        open(&breaker, now);
        let after = now + Duration::from_secs(1);
        let out = probe(&breaker, after);
        // A connect admitted before the breaker opened gets through: reachable, closed.
        breaker.connected("s");
        // The probe's failure then is an ordinary one, far below the threshold.
        breaker.connect_failed(after, out, "s");
        assert_eq!(breaker.admit(after, LIMIT), NORMAL);
        // And when the breaker opens again, its pause starts at the first one, not zero.
        open(&breaker, after);
        assert_eq!(refused_for(&breaker, after), Duration::from_secs(1));
        let out = probe(&breaker, after + Duration::from_secs(1));
        breaker.connect_failed(after + Duration::from_secs(1), out, "s");
        assert_eq!(
            refused_for(&breaker, after + Duration::from_secs(1)),
            Duration::from_secs(2)
        );
    }
}
