//! The offer's part of the ledger: every request a group with a shadow wins is observed once
//! and ends sampled out, queued or dropped; the weight is a probability per request; a copy
//! that finds the budget full is dropped at once on live capture and waited for offline.

use std::{
    net::SocketAddr,
    sync::{Arc, mpsc},
    time::{Duration, SystemTime},
};

use tokio::sync::mpsc::{UnboundedReceiver, error::TryRecvError};

use super::*;
use crate::{
    config::{Diagnostics, Mapping},
    http::{HttpEvent, HttpFlow, Limits},
    labels::MappingLabel,
    packet::Direction,
    replay::{
        job::{COPY_OVERHEAD, Job},
        stats::DropLabels,
    },
    route::{self, RouteTable},
};

const SHADOW: &str = "myservice-shadow";

/// The user's example, with the shadow Mapping changed by `edit`, and a group without a
/// shadow for `/other/`.
fn config(edit: impl FnOnce(&mut Mapping)) -> Arc<ActiveConfig> {
    let mut shadow = route::tests::shadow(SHADOW, "/myservice/", "myservice-shadow");
    edit(&mut shadow);
    let table = RouteTable::build(
        &[
            route::tests::mapping("myservice", "/myservice/", "myservice"),
            shadow,
            route::tests::mapping("other", "/other/", "other"),
        ],
        &mut Diagnostics::default(),
    );
    Arc::new(ActiveConfig {
        table,
        ..ActiveConfig::default()
    })
}

fn request(target: &str) -> Request {
    let wire = format!("GET {target} HTTP/1.1\r\nHost: myservice\r\n\r\n");
    let mut flow = HttpFlow::new(Limits::default());
    let mut out = Vec::new();
    flow.push(
        Direction::Request,
        wire.as_bytes(),
        SystemTime::UNIX_EPOCH,
        &mut out,
    );
    match out.into_iter().next() {
        Some(HttpEvent::Request(request)) => request,
        other => panic!("not one request: {other:?}"),
    }
}

fn flow() -> FlowKey {
    let client: SocketAddr = "198.18.0.1:40000".parse().unwrap();
    let server: SocketAddr = "198.18.0.2:80".parse().unwrap();
    FlowKey { client, server }
}

/// An offerer with a budget of `max_bytes`, its stats, and where its jobs land.
fn offerer(max_bytes: usize) -> (Offerer, ReplayStats, UnboundedReceiver<Job>) {
    let stats = ReplayStats::default();
    let (sender, jobs) = ReplaySender::to_receiver(stats.clone());
    (Offerer::new(stats.clone(), sender, max_bytes), stats, jobs)
}

/// The ledger of the shadow Mapping: (observed, sampled out, in flight, dropped by reason).
fn ledger(stats: &ReplayStats) -> (u64, u64, i64, Vec<(Undelivered, u64)>) {
    let label = MappingLabel {
        mapping: SHADOW.to_owned(),
    };
    let dropped = Undelivered::ALL
        .iter()
        .map(|reason| {
            let labels = DropLabels {
                mapping: SHADOW.to_owned(),
                reason: *reason,
            };
            (*reason, stats.dropped.get_or_create(&labels).get())
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    (
        stats.observed.get_or_create(&label).get(),
        stats.sampled_out.get_or_create(&label).get(),
        stats.in_flight.get_or_create(&label).get(),
        dropped,
    )
}

fn shadowed(id: u64) -> Option<Shadowed> {
    Some(Shadowed {
        mapping: SHADOW.to_owned(),
        id,
        diff: None,
    })
}

/// Enough budget for `copies` copies of [`request`]`("/myservice/a")`, and no more.
fn room_for(copies: usize) -> usize {
    let one = job::cost(&copy::build(
        &request("/myservice/a"),
        config(|_| ()).table.groups()[0].shadow.as_ref().unwrap(),
    ));
    copies * one + one / 2
}

#[test]
fn requests_no_shadow_takes_are_not_counted() {
    let (mut offerer, stats, mut jobs) = offerer(1 << 20);
    let config = config(|_| ());
    for target in ["/other/a", "/nothing/matches"] {
        assert_eq!(
            offerer.offer(flow(), &config, &request(target)),
            (Offered::NotShadowed, None)
        );
        assert!(!offerer.unconfirmed(&config, &request(target)));
    }
    assert_eq!(ledger(&stats), (0, 0, 0, vec![]));
    assert_eq!(jobs.try_recv().err(), Some(TryRecvError::Empty));
}

#[test]
fn every_request_is_copied_at_weight_100_with_its_own_id_and_the_copy_edits() {
    let (mut offerer, stats, mut jobs) = offerer(1 << 20);
    let config = config(|_| ());
    for id in 1..=3 {
        assert_eq!(
            offerer.offer(flow(), &config, &request("/myservice/a")),
            (Offered::Queued, shadowed(id))
        );
    }
    assert_eq!(ledger(&stats), (3, 0, 3, vec![]));
    for id in 1..=3 {
        let job = jobs.try_recv().expect("a job per copy");
        assert_eq!((job.id, job.flow, job.mapping()), (id, flow(), SHADOW));
        assert_eq!(
            job.copy.head.as_ref(),
            b"GET /myservice/a HTTP/1.1\r\nHost: myservice-shadow\r\n\r\n"
        );
    }
    assert_eq!(
        stats.queued_bytes.get() as usize,
        0,
        "the jobs, done, gave their budget back"
    );
}

#[test]
fn weight_0_samples_every_request_out_and_copies_none() {
    let (mut offerer, stats, mut jobs) = offerer(1 << 20);
    let config = config(|shadow| shadow.weight = 0);
    for _ in 0..100 {
        assert_eq!(
            offerer.offer(flow(), &config, &request("/myservice/a")),
            (Offered::SampledOut, shadowed(0))
        );
    }
    assert_eq!(ledger(&stats), (100, 100, 0, vec![]));
    assert_eq!(jobs.try_recv().err(), Some(TryRecvError::Empty));
}

/// How many of `n` draws at `weight` say "copy".
fn copies_of(weight: u8, n: u32) -> u32 {
    let (mut offerer, _, _) = offerer(1 << 20);
    (0..n).map(|_| u32::from(offerer.sample(weight))).sum()
}

#[test]
fn the_weight_is_the_probability_of_each_request_to_the_percent() {
    // 100,000 draws: one percent is 1,000 of them, about 30 standard deviations at these
    // weights, so a weight read one percent off (a `<=` for a `<`) fails, while the bound
    // of 6 standard deviations leaves a correct draw a failure chance under 1e-8.
    let n = 100_000;
    for weight in [1u8, 30, 99] {
        let expected = f64::from(n) * f64::from(weight) / 100.0;
        let sd = (expected * (1.0 - f64::from(weight) / 100.0)).sqrt();
        let got = f64::from(copies_of(weight, n));
        assert!(
            (got - expected).abs() < 6.0 * sd,
            "weight {weight}: {got} of {n}, expected {expected} ± {}",
            6.0 * sd
        );
    }
    assert_eq!(copies_of(0, 10_000), 0);
    assert_eq!(copies_of(100, 10_000), 10_000);
}

#[test]
fn sampled_out_and_copied_requests_add_up_to_the_observed() {
    let (mut offerer, stats, mut jobs) = offerer(1 << 20);
    let config = config(|shadow| shadow.weight = 50);
    let mut ids = Vec::new();
    for _ in 0..200 {
        match offerer.offer(flow(), &config, &request("/myservice/a")) {
            (Offered::Queued, Some(Shadowed { id, .. })) => ids.push(id),
            (Offered::SampledOut, Some(Shadowed { id: 0, .. })) => {}
            other => panic!("{other:?}"),
        }
    }
    let (observed, sampled_out, in_flight, dropped) = ledger(&stats);
    assert_eq!(
        (observed, in_flight, dropped),
        (200, ids.len() as i64, vec![])
    );
    assert_eq!(sampled_out + ids.len() as u64, 200);
    assert!(
        (60..140).contains(&ids.len()),
        "{} of 200 at weight 50",
        ids.len()
    );
    // Ids count copies only, from 1, in order.
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        std::iter::from_fn(|| jobs.try_recv().ok()).count(),
        ids.len()
    );
}

#[test]
fn a_copy_that_finds_the_budget_full_is_dropped_at_once_and_counted() {
    let (mut offerer, stats, mut jobs) = offerer(room_for(1));
    let config = config(|_| ());
    assert_eq!(
        offerer.offer(flow(), &config, &request("/myservice/a")).0,
        Offered::Queued
    );
    // The first copy holds its share while it waits in the engine's queue.
    let held = jobs.try_recv().expect("the first copy");
    assert_eq!(
        offerer.offer(flow(), &config, &request("/myservice/a")),
        (Offered::Dropped, shadowed(2))
    );
    let (offered, _, body) = offerer.offer_streamed(flow(), &config, &request("/myservice/a"));
    assert_eq!(offered, Offered::Dropped);
    assert!(body.is_none(), "no body sender for a dropped copy");
    assert_eq!(ledger(&stats), (3, 0, 1, vec![(Undelivered::QueueFull, 2)]));
    drop(held);
    assert_eq!(
        offerer.offer(flow(), &config, &request("/myservice/a")).0,
        Offered::Queued,
        "the budget came back"
    );
}

#[test]
fn a_request_production_never_confirmed_is_observed_and_dropped_as_unconfirmed() {
    let (mut offerer, stats, mut jobs) = offerer(1 << 20);
    let config = config(|_| ());
    assert!(offerer.unconfirmed(&config, &request("/myservice/a")));
    assert_eq!(
        ledger(&stats),
        (1, 0, 0, vec![(Undelivered::Unconfirmed, 1)])
    );
    assert_eq!(jobs.try_recv().err(), Some(TryRecvError::Empty));
}

/// Runs `offer` on a thread of its own; `None` if it has not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    offer: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(offer());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn offline_a_copy_waits_for_room_and_one_larger_than_the_budget_is_dropped() {
    let (offerer, stats, mut jobs) = offerer(room_for(1));
    let mut offerer = offerer.waiting();
    let config = config(|_| ());
    assert_eq!(
        offerer.offer(flow(), &config, &request("/myservice/a")).0,
        Offered::Queued
    );
    let held = jobs.try_recv().expect("the first copy");
    // The second waits while the first holds the budget, and goes once it is done.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
    });
    let offered = within(Duration::from_secs(10), {
        let config = config.clone();
        move || {
            let outcome = offerer.offer(flow(), &config, &request("/myservice/a")).0;
            (outcome, offerer)
        }
    });
    release.join().unwrap();
    let (outcome, mut offerer) = offered.expect("the copy went once the budget had room");
    assert_eq!(outcome, Offered::Queued);
    drop(jobs.try_recv().expect("the second copy"));
    // A copy larger than the whole budget never fits: dropped, not waited for.
    let huge = format!("/myservice/{}", "x".repeat(2 * COPY_OVERHEAD));
    let outcome = within(Duration::from_secs(10), move || {
        offerer.offer(flow(), &config, &request(&huge)).0
    });
    assert_eq!(outcome, Some(Offered::Dropped));
    // Two copies handed over and dropped unsent by the test (counted as shut down, as a
    // stopped engine's would be), one dropped for want of room.
    assert_eq!(
        ledger(&stats),
        (
            3,
            0,
            0,
            vec![(Undelivered::QueueFull, 1), (Undelivered::Shutdown, 2)]
        )
    );
}
