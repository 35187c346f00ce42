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
    Arc::new(DiffSettings::default())
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
        (Some("\"u6\""), Some("\"U6\"")),
        "the newest first, values as JSON: all at one instant, the field keeps its first three \
         (rounds 0, 3 and 6: users 0, 3 and 6), a new one at most every second"
    );
    assert_eq!(sample.request, "curl -X 'GET' 'http://shop/users/6'");
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

/// Requests that never repeat: production's memory learns no noise from them. `reference`:
/// the Mapping's diff has a reference instance, which answers each copy as production does.
fn unique_requests(reference: bool) -> Vec<(String, bool)> {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let now = Instant::now();
    let settings = Arc::new(DiffSettings {
        reference: reference.then(|| crate::config::service::parse("ref:80").unwrap()),
        ..DiffSettings::default()
    });
    for id in 1..=100u64 {
        let wire = format!("GET /items/{id} HTTP/1.1\r\nHost: shop\r\n\r\n");
        let body = format!("{{\"id\":{id}}}");
        let production = ProductionHalf {
            mapping: "m".into(),
            settings: settings.clone(),
            request: request(wire.as_bytes()),
            streamed: false,
            response: Arc::new(answer(200, 3 * id, &body)),
        };
        // The reference may answer before production, after the shadow, or not at all.
        match id % 3 {
            0 if reference => {
                state.reference(id, answer(200, 3 * id + 1, &body), now, &mut compared)
            }
            _ => {}
        }
        state.production(id, production, now, &mut compared);
        state.shadow(id, answer(200, 3 * id + 2, &body), now, &mut compared);
        match id % 3 {
            1 if reference => {
                state.reference(id, answer(200, 3 * id + 1, &body), now, &mut compared)
            }
            2 if reference => state.reference_gone(id, now, &mut compared),
            _ => {}
        }
    }
    assert_eq!(
        compared.len(),
        100,
        "every copy compared, with or without the reference"
    );
    assert_eq!(state.waiting(), 0);
    let report = state.report();
    let endpoint = &report[0].endpoints[0];
    assert_eq!(endpoint.noise_compared, endpoint.reference_compared);
    assert_eq!(endpoint.reference_compared, if reference { 67 } else { 0 });
    endpoint
        .fields
        .iter()
        .map(|f| (f.field.clone(), f.flagged))
        .collect()
}

#[test]
fn a_reference_instance_shows_the_noise_of_requests_that_never_repeat() {
    let noisy = |fields: &[(String, bool)]| {
        fields
            .iter()
            .filter(|(_, flagged)| *flagged)
            .map(|(field, _)| field.clone())
            .collect::<Vec<_>>()
    };
    // Without it, nothing tells the time stamps and ids from a regression.
    assert_eq!(
        noisy(&unique_requests(false)),
        ["$.at", "$.request_id", "header.x-request-id"]
    );
    // With it, they are production's own noise.
    assert!(noisy(&unique_requests(true)).is_empty());
}

#[test]
fn settled_copies_do_not_pile_up_in_the_waiting_order() {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let now = Instant::now();
    for id in 0..5 * state::MAX_WAITING as u64 {
        state.shadow(id, answer(200, id, "1"), now, &mut compared);
        state.gone(id);
    }
    assert_eq!(state.waiting(), 0);
    assert!(
        state.order_len() <= 2 * state::MAX_WAITING,
        "{}",
        state.order_len()
    );
}

#[test]
fn late_answers_to_a_copy_already_gone_are_not_kept() {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let now = Instant::now();
    state.gone(5);
    state.shadow(5, answer(200, 1, "1"), now, &mut compared);
    state.reference(5, answer(200, 2, "1"), now, &mut compared);
    assert_eq!(state.waiting(), 0);
    assert!(compared.is_empty());
}

#[test]
fn a_body_kept_whole_and_its_digested_twin_compare_equal() {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let now = Instant::now();
    let body = "{\"a\":[1,2,3]}";
    let production = ProductionHalf {
        mapping: "m".into(),
        settings: settings(),
        request: request(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
        streamed: false,
        response: Arc::new(kept(200, &[], body)),
    };
    // The shadow's side found no room in the budget: only its length and digest.
    let mut keeper = BodyKeeper::new(1 << 20, SharedBudget::new(0));
    keeper.push(body.as_bytes());
    let digested = KeptResponse {
        status: 200,
        headers: Vec::new(),
        body: keeper.finish(),
    };
    assert!(matches!(
        digested.body,
        crate::http::KeptBody::Digest { .. }
    ));
    state.production(1, production, now, &mut compared);
    state.shadow(1, digested, now, &mut compared);
    assert_eq!(compared.len(), 1);
    assert!(compared[0].equal, "{:#?}", state.report());
}

#[test]
fn response_cookies_are_redacted_in_samples_unless_asked() {
    for (show, shown) in [(false, "REDACTED"), (true, "session=s3cret")] {
        let mut state = State::new(show);
        let mut compared = Vec::new();
        let now = Instant::now();
        let production = ProductionHalf {
            mapping: "m".into(),
            settings: settings(),
            request: request(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
            streamed: false,
            response: Arc::new(kept(200, &[("Set-Cookie", "session=s3cret")], "1")),
        };
        state.production(1, production, now, &mut compared);
        state.shadow(
            1,
            kept(500, &[("Set-Cookie", "session=s3cret")], "1"),
            now,
            &mut compared,
        );
        let report = state.report();
        let sample = &report[0].endpoints[0].fields[0].samples[0];
        assert_eq!(sample.production_head.headers[0].1, shown);
        assert_eq!(sample.shadow_head.headers[0].1, shown);
    }
}

#[test]
fn a_field_takes_a_new_sample_at_most_every_second_once_it_has_its_three() {
    let mut state = State::new(false);
    let mut compared = Vec::new();
    let start = Instant::now();
    let half = |n: u64| ProductionHalf {
        mapping: "m".into(),
        settings: settings(),
        request: request(format!("GET /a/{n} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()),
        streamed: false,
        response: Arc::new(kept(200, &[], &format!("{{\"n\":{n}}}"))),
    };
    let at = |ms: u64| start + Duration::from_millis(ms);
    for (id, ms) in [(1, 0), (2, 10), (3, 20), (4, 500), (5, 1100)] {
        state.production(id, half(id), at(ms), &mut compared);
        state.shadow(id, kept(200, &[], "{\"n\":0}"), at(ms), &mut compared);
    }
    let report = state.report();
    let samples: Vec<String> = report[0].endpoints[0].fields[0]
        .samples
        .iter()
        .map(|s| s.production.clone().unwrap())
        .collect();
    // Copy 4 came within the second after the third sample: none taken; copy 5 after it.
    assert_eq!(samples, ["5", "3", "2"]);
}
