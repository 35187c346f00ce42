use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use super::{
    state::{MAX_WAIT, ProductionHalf, State},
    *,
};
use crate::{
    config::diff::DiffSettings,
    http::{BodyKeeper, HttpEvent, HttpFlow, Limits, Request, SharedBudget},
    packet::Direction,
};

/// The request `wire` holds, as capture produces it.
pub(super) fn request(wire: &[u8]) -> Request {
    let mut flow = HttpFlow::new(Limits::default());
    let mut out = Vec::new();
    flow.push(Direction::Request, wire, SystemTime::now(), &mut out);
    let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
    flow.acked(
        Direction::Request,
        wire.len() as u64,
        0..answer.len() as u64,
        &mut out,
    );
    flow.push(Direction::Response, answer, SystemTime::now(), &mut out);
    out.into_iter()
        .find_map(|event| match event {
            HttpEvent::Request(request) => Some(request),
            _ => None,
        })
        .expect("a request")
}

fn kept(status: u16, headers: &[(&str, &str)], body: &str) -> KeptResponse {
    let mut keeper = BodyKeeper::new(1 << 20, SharedBudget::new(1 << 30));
    keeper.push(body.as_bytes());
    KeptResponse {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: keeper.finish(),
    }
}

fn settings() -> Arc<DiffSettings> {
    Arc::new(DiffSettings {
        weight: 100,
        options: Default::default(),
        thresholds: Default::default(),
    })
}

/// A JSON answer with the noise every response has: a timestamp and a request id.
fn answer(status: u16, serial: u64, body: &str) -> KeptResponse {
    let at = format!("2026-12-07T10:00:{:02}.{serial:06}Z", serial % 60);
    let json = format!("{{\"data\":{body},\"at\":\"{at}\",\"request_id\":\"r{serial:x}\"}}");
    let id = format!("{:016x}", serial.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    kept(
        status,
        &[("Content-Type", "application/json"), ("X-Request-Id", &id)],
        &json,
    )
}

#[test]
fn only_the_shadows_real_differences_are_flagged_noise_learnt_from_production_is_not() {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let now = Instant::now();
    let mut serial = 0;
    let mut next = || {
        serial += 1;
        serial
    };
    for round in 0..200u64 {
        // A few users and orders, so production answers identical requests often.
        let user = round % 7;
        let order = round % 5;
        let exchanges = [
            (
                format!("GET /users/{user} HTTP/1.1\r\nHost: shop\r\n\r\n"),
                (200, format!("{{\"id\":{user},\"name\":\"u{user}\"}}")),
                // The shadow's bug: a wrong name on every third request.
                (
                    200,
                    match round % 3 {
                        0 => format!("{{\"id\":{user},\"name\":\"U{user}\"}}"),
                        _ => format!("{{\"id\":{user},\"name\":\"u{user}\"}}"),
                    },
                ),
            ),
            (
                format!(
                    "POST /orders/{order} HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\n{{}}"
                ),
                (200, format!("{{\"order\":{order}}}")),
                // A changed status code.
                (201, format!("{{\"order\":{order}}}")),
            ),
            (
                "GET /health HTTP/1.1\r\nHost: shop\r\n\r\n".to_string(),
                (200, "true".to_string()),
                (200, "true".to_string()),
            ),
        ];
        for (wire, (p_status, p_body), (s_status, s_body)) in exchanges {
            let id = next();
            let production = ProductionHalf {
                mapping: "shop-shadow".into(),
                settings: settings(),
                request: request(wire.as_bytes()),
                streamed: false,
                response: Arc::new(answer(p_status, next(), &p_body)),
            };
            // Either side may answer first.
            let shadow = answer(s_status, next(), &s_body);
            if id % 2 == 0 {
                state.production(id, production, now, &mut compared);
                state.shadow(id, shadow, now, &mut compared);
            } else {
                state.shadow(id, shadow, now, &mut compared);
                state.production(id, production, now, &mut compared);
            }
        }
    }
    assert_eq!(compared.len(), 600);
    assert_eq!(state.waiting(), 0);
    let report = state.report();
    assert_eq!(report.len(), 1);
    let mapping = &report[0];
    let flagged: Vec<(&str, &str)> = mapping
        .endpoints
        .iter()
        .flat_map(|e| {
            e.fields
                .iter()
                .filter(|f| f.flagged)
                .map(move |f| (e.endpoint.as_str(), f.field.as_str()))
        })
        .collect();
    assert_eq!(
        flagged,
        [
            ("GET /users/{id}", "$.data.name"),
            ("POST /orders/{id}", "status"),
        ],
        "{mapping:#?}"
    );
    assert_eq!(mapping.flagged, 2);
    let users = &mapping.endpoints[1];
    assert_eq!(users.endpoint, "GET /users/{id}");
    assert_eq!((users.compared, users.noise_compared), (200, 193));
    let field = |name: &str| users.fields.iter().find(|f| f.field == name).unwrap();
    // Noise: differs on every response, production's own answers too.
    for noisy in ["$.at", "$.request_id", "header.x-request-id"] {
        let noisy = field(noisy);
        assert!(!noisy.flagged && noisy.noise_rate == 1.0, "{noisy:?}");
        assert!(noisy.samples.is_empty(), "samples only for flagged fields");
    }
    let name = field("$.data.name");
    assert!((name.difference_rate - 67.0 / 200.0).abs() < 1e-9);
    assert_eq!(name.noise_rate, 0.0);
    let sample = &name.samples[0];
    assert_eq!(
        (sample.production.as_deref(), sample.shadow.as_deref()),
        (Some("\"u2\""), Some("\"U2\"")),
        "the newest first: round 198, user 2, values as JSON"
    );
    assert_eq!(sample.request, "curl -X 'GET' 'http://shop/users/2'");
    assert_eq!(sample.shadow_head.status, 200);
    assert_eq!(name.samples.len(), state::SAMPLES_PER_FIELD);
    let health = &mapping.endpoints[0];
    assert_eq!(health.endpoint, "GET /health");
    assert!(health.fields.iter().all(|f| !f.flagged));
}

#[test]
fn halves_without_their_other_side_wait_boundedly() {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let start = Instant::now();
    let half = || ProductionHalf {
        mapping: "m".into(),
        settings: settings(),
        request: request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        streamed: false,
        response: Arc::new(answer(200, 1, "1")),
    };
    state.production(1, half(), start, &mut compared);
    state.production(2, half(), start, &mut compared);
    state.shadow(3, answer(200, 2, "1"), start, &mut compared);
    // The copy of 2 failed: production's half stops waiting at once.
    state.gone(2);
    assert_eq!(state.waiting(), 2);
    assert_eq!(state.expire(start + MAX_WAIT / 2), 0);
    assert_eq!(state.expire(start + MAX_WAIT), 2);
    assert_eq!(state.waiting(), 0);
    // By number: the oldest go first.
    for id in 0..state::MAX_WAITING as u64 + 10 {
        state.shadow(id + 10, answer(200, id, "1"), start, &mut compared);
    }
    assert_eq!(state.expire(start), 10);
    assert_eq!(state.waiting(), state::MAX_WAITING);
    assert!(compared.is_empty());
}

#[test]
fn the_differ_compares_on_its_own_thread_and_counts_in_its_metrics() {
    let differ = Differ::default();
    let mut registry = Registry::default();
    differ.register_in(&mut registry);
    let production = || ProductionHalf {
        mapping: "m".into(),
        settings: settings(),
        request: request(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
        streamed: false,
        response: Arc::new(kept(200, &[], "{\"a\":1}")),
    };
    differ.production(1, production());
    differ.shadow(1, kept(200, &[], "{\"a\":1}"));
    differ.shadow(2, kept(200, &[], "{\"a\":2}"));
    differ.production(2, production());
    differ.production(3, production());
    differ.gone(3);
    differ.not_kept(4);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        if text.contains("diff_compared_total{mapping=\"m\",outcome=\"different\"} 1")
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for line in [
        "diff_compared_total{mapping=\"m\",outcome=\"equal\"} 1",
        "diff_compared_total{mapping=\"m\",outcome=\"different\"} 1",
        "diff_lost_total{reason=\"not_kept\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let report = differ.report();
    assert_eq!((report[0].compared, report[0].different), (2, 1));
}
