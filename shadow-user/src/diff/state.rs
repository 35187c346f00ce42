//! What the diff worker keeps: production's and the shadow's responses waiting for each
//! other (by copy id, bounded in number and age), and per shadow Mapping and endpoint the
//! counts of differences and noise, with a few recent samples of each differing field.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use shadow_diff::{
    Difference, Endpoints, Fields, ProductionMemory, Response, Tally, Thresholds, differences,
    request_key, text_diff,
};

use super::{
    curl,
    report::{EndpointReport, FieldReport, HeadReport, MappingReport, SampleReport},
};
use crate::{
    config::diff::DiffSettings,
    http::{KeptBody, KeptResponse, Request},
};

/// Halves waiting for their other side, at most.
pub const MAX_WAITING: usize = 4096;
/// How long a half waits for its other side: longer than any copy's timeout allows.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// Endpoints counted by name per Mapping; the rest count as `other`.
pub const MAX_ENDPOINTS: usize = 64;
/// Production responses remembered per Mapping to learn noise from.
pub const MEMORY: usize = 256;
/// Most fields of a response remembered to learn noise from: a larger one is not
/// remembered, so the memory stays under [`MEMORY`] times this many fields.
pub const MAX_REMEMBERED_FIELDS: usize = 2048;
/// Samples kept per field, the most recent.
pub const SAMPLES_PER_FIELD: usize = 3;
/// Once a field has its samples, a new one replaces the oldest at most this often.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Fields with samples per endpoint.
pub const FIELDS_WITH_SAMPLES: usize = 16;
/// Longest value, and longest textual diff, kept in a sample.
const MAX_SAMPLE_TEXT: usize = 512;
/// Most header fields of a head kept in a sample.
const MAX_SAMPLE_HEADERS: usize = 40;

/// Production's half of one copy, flattened once it arrived.
pub struct ProductionHalf {
    pub mapping: String,
    pub settings: Arc<DiffSettings>,
    /// The request production answered (head and body as captured).
    pub request: Request,
    /// The request's body came in pieces: what `request` holds is only its start.
    pub streamed: bool,
    pub response: Arc<KeptResponse>,
}

/// Production's half as it waits: flattened, with what its samples show.
struct Flattened {
    mapping: String,
    settings: Arc<DiffSettings>,
    endpoint: String,
    /// Shared with the noise memory, never copied.
    fields: Arc<Fields>,
    /// The request, for samples (`curl`), built only when one is taken.
    request: Request,
    /// The response as kept: compared by its bytes as sent when the other side's body was
    /// too long to keep.
    response: Arc<KeptResponse>,
    /// The reference instance gets this copy (the Mapping names one and the request was
    /// whole), so its answer is awaited.
    expects_reference: bool,
}

/// The answers to one copy that came so far.
#[derive(Default)]
struct Answers {
    production: Option<Flattened>,
    shadow: Option<KeptResponse>,
    reference: Reference,
}

/// The reference instance's answer, when the Mapping's diff has one.
#[derive(Default)]
enum Reference {
    #[default]
    Awaited,
    Answered(KeptResponse),
    /// It will not answer (the copy to it failed): the diff goes on without it.
    Gone,
}

impl Answers {
    /// Production's and the shadow's are in, and the reference's if one is awaited.
    fn complete(&self) -> bool {
        let reference_settled = |production: &Flattened| {
            !production.expects_reference || !matches!(self.reference, Reference::Awaited)
        };
        self.shadow.is_some() && self.production.as_ref().is_some_and(reference_settled)
    }
}

/// One field's recent samples, and when the last was taken.
struct Samples {
    taken: Instant,
    recent: VecDeque<SampleReport>,
}

#[derive(Default)]
struct EndpointDiff {
    tally: Tally,
    samples: BTreeMap<String, Samples>,
    /// Production's answers compared with the reference instance's (part of the noise).
    reference_compared: u64,
}

struct MappingDiff {
    endpoints: Endpoints,
    memory: ProductionMemory,
    by_endpoint: BTreeMap<String, EndpointDiff>,
    thresholds: Thresholds,
}

impl Default for MappingDiff {
    fn default() -> Self {
        MappingDiff {
            endpoints: Endpoints::new(MAX_ENDPOINTS),
            memory: ProductionMemory::new(MEMORY),
            by_endpoint: BTreeMap::new(),
            thresholds: Thresholds::default(),
        }
    }
}

/// What one pair came to, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    pub mapping: String,
    pub equal: bool,
}

/// The worker's state.
pub struct State {
    waiting: HashMap<u64, (Instant, Answers)>,
    /// Copies already gone, the most recent [`MAX_WAITING`]: their late answers are dropped.
    gone: HashSet<u64>,
    gone_order: VecDeque<u64>,
    order: VecDeque<(u64, Instant)>,
    mappings: BTreeMap<String, MappingDiff>,
    pub show_credentials: bool,
}

impl State {
    pub fn new(show_credentials: bool) -> Self {
        State {
            waiting: HashMap::new(),
            gone: HashSet::new(),
            gone_order: VecDeque::new(),
            order: VecDeque::new(),
            mappings: BTreeMap::new(),
            show_credentials,
        }
    }

    /// Production's half of copy `id`: flattened, learnt from for noise, and compared if the
    /// shadow's half is there.
    pub fn production(
        &mut self,
        id: u64,
        half: ProductionHalf,
        now: Instant,
        out: &mut Vec<Compared>,
    ) {
        let ProductionHalf {
            mapping,
            settings,
            request,
            streamed,
            response,
        } = half;
        let fields = Arc::new(Fields::of(&as_response(&response), &settings.options));
        let state = self.mappings.entry(mapping.clone()).or_default();
        state.thresholds = settings.thresholds;
        let endpoint = state
            .endpoints
            .name(request.method_str(), request.target_str());
        // Identical requests answered differently by production itself show the noise. A
        // request whose body was only partly kept cannot be told identical to another.
        if !streamed && fields.len() <= MAX_REMEMBERED_FIELDS {
            let headers = request_headers(&request);
            let key = request_key(
                request.method_str(),
                request.target_str(),
                &headers,
                request.body(),
            );
            if let Some(noise) = state
                .memory
                .answered(key, fields.clone(), &settings.options)
            {
                state
                    .by_endpoint
                    .entry(endpoint.clone())
                    .or_default()
                    .tally
                    .noise_compared(&noise);
            }
        }
        let flattened = Flattened {
            expects_reference: settings.reference.is_some() && !streamed,
            mapping,
            settings,
            endpoint,
            fields,
            request,
            response,
        };
        // A second production half for one id cannot happen; the first stays.
        self.record(id, now, out, |answers| {
            answers.production.get_or_insert(flattened);
        });
    }

    /// The shadow's half of copy `id`.
    pub fn shadow(
        &mut self,
        id: u64,
        response: KeptResponse,
        now: Instant,
        out: &mut Vec<Compared>,
    ) {
        self.record(id, now, out, |answers| {
            answers.shadow.get_or_insert(response);
        });
    }

    /// The reference instance's answer to copy `id`.
    pub fn reference(
        &mut self,
        id: u64,
        response: KeptResponse,
        now: Instant,
        out: &mut Vec<Compared>,
    ) {
        self.record(id, now, out, |answers| {
            answers.reference = Reference::Answered(response);
        });
    }

    /// The reference instance will not answer copy `id`.
    pub fn reference_gone(&mut self, id: u64, now: Instant, out: &mut Vec<Compared>) {
        self.record(id, now, out, |answers| answers.reference = Reference::Gone);
    }

    /// Adds an answer to copy `id` (none to a copy already gone), and compares if all are in.
    fn record(
        &mut self,
        id: u64,
        now: Instant,
        out: &mut Vec<Compared>,
        add: impl FnOnce(&mut Answers),
    ) {
        if let Some(answers) = self.answers(id, now) {
            add(answers);
        }
        self.settle(id, now, out);
    }

    /// Copy `id` will never be compared (the shadow did not answer, or production's answer
    /// was not kept): what came of it goes, and what comes later is not kept.
    pub fn gone(&mut self, id: u64) {
        self.waiting.remove(&id);
        if self.gone.insert(id) {
            self.gone_order.push_back(id);
            if self.gone_order.len() > MAX_WAITING
                && let Some(oldest) = self.gone_order.pop_front()
            {
                self.gone.remove(&oldest);
            }
        }
    }

    /// The answers to copy `id` so far, waiting from `now` if none came before; `None` for
    /// a copy already gone.
    fn answers(&mut self, id: u64, now: Instant) -> Option<&mut Answers> {
        if self.gone.contains(&id) {
            return None;
        }
        if !self.waiting.contains_key(&id) {
            // Settled copies leave their ids in `order`; sweep them once they dominate, so
            // it stays within twice the waiting bound whatever the rate.
            if self.order.len() >= 2 * MAX_WAITING.max(self.waiting.len()) {
                let waiting = &self.waiting;
                self.order
                    .retain(|(id, since)| waiting.get(id).is_some_and(|(at, _)| at == since));
            }
            self.order.push_back((id, now));
        }
        Some(
            &mut self
                .waiting
                .entry(id)
                .or_insert_with(|| (now, Answers::default()))
                .1,
        )
    }

    /// Compares copy `id`'s answers once all that are awaited are in: the reference's with
    /// production's (noise), then the shadow's with production's.
    fn settle(&mut self, id: u64, now: Instant, out: &mut Vec<Compared>) {
        if !self
            .waiting
            .get(&id)
            .is_some_and(|(_, answers)| answers.complete())
        {
            return;
        }
        let Some((_, answers)) = self.waiting.remove(&id) else {
            return;
        };
        let (Some(production), Some(shadow)) = (answers.production, answers.shadow) else {
            return;
        };
        if let Reference::Answered(reference) = &answers.reference
            && production.expects_reference
        {
            self.reference_noise(&production, reference);
        }
        out.push(self.compare(&production, &shadow, now));
    }

    /// Where the reference instance (production's version, run again) answered differently
    /// from production, the fields are noise, as Diffy's secondary shows it.
    fn reference_noise(&mut self, production: &Flattened, reference: &KeptResponse) {
        let (production_fields, reference) = comparable(production, reference);
        let noise = differences(&production_fields, &reference, &production.settings.options);
        let state = self.mappings.entry(production.mapping.clone()).or_default();
        let endpoint = state
            .by_endpoint
            .entry(production.endpoint.clone())
            .or_default();
        endpoint.tally.noise_compared(&noise);
        endpoint.reference_compared += 1;
    }

    /// Forgets halves that waited too long; returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut expired = 0;
        while let Some(&(id, since)) = self.order.front() {
            let over = self.waiting.len() > MAX_WAITING;
            if !over && now.duration_since(since) < MAX_WAIT {
                break;
            }
            self.order.pop_front();
            if self.waiting.get(&id).is_some_and(|(at, _)| *at == since) {
                self.waiting.remove(&id);
                expired += 1;
            }
        }
        expired
    }

    fn compare(&mut self, production: &Flattened, shadow: &KeptResponse, now: Instant) -> Compared {
        let (fields, shadow_fields) = comparable(production, shadow);
        let Flattened {
            mapping,
            settings,
            endpoint,
            ..
        } = production;
        let show_credentials = self.show_credentials;
        let options = &settings.options;
        let found = differences(&fields, &shadow_fields, options);
        let state = self.mappings.entry(mapping.clone()).or_default();
        let thresholds = state.thresholds;
        let endpoint = state.by_endpoint.entry(endpoint.clone()).or_default();
        endpoint.tally.shadow_compared(&found);
        // Samples are built only for fields that take one now: every copy of a noisy
        // service differs, and building each would cost more than the diff.
        let sample = |difference: &Difference| SampleReport {
            production: difference.production.as_deref().map(cut),
            shadow: difference.shadow.as_deref().map(cut),
            production_head: head_report(&production.response, show_credentials),
            shadow_head: head_report(shadow, show_credentials),
            request: curl::command(&production.request, show_credentials),
            text_diff: match difference.field.as_str() {
                "body" => text_diff(&fields, &shadow_fields, 40).map(|t| cut(&t)),
                _ => None,
            },
        };
        for difference in &found {
            endpoint.keep_sample(&difference.field, now, thresholds, || sample(difference));
        }
        Compared {
            mapping: mapping.clone(),
            equal: found.is_empty(),
        }
    }

    /// Halves waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Entries of the waiting order, settled ones not yet swept included.
    #[cfg(test)]
    pub fn order_len(&self) -> usize {
        self.order.len()
    }

    /// The report of every Mapping.
    pub fn report(&self) -> Vec<MappingReport> {
        self.mappings
            .iter()
            .map(|(name, state)| {
                let endpoints: Vec<EndpointReport> = state
                    .by_endpoint
                    .iter()
                    .map(|(endpoint, diff)| diff.report(endpoint, state.thresholds))
                    .collect();
                MappingReport {
                    mapping: name.clone(),
                    compared: endpoints.iter().map(|e| e.compared).sum(),
                    different: endpoints.iter().map(|e| e.different).sum(),
                    flagged: endpoints
                        .iter()
                        .flat_map(|e| &e.fields)
                        .filter(|f| f.flagged)
                        .count(),
                    relative_threshold: state.thresholds.relative,
                    absolute_threshold: state.thresholds.absolute,
                    endpoints,
                }
            })
            .collect()
    }

    /// Fields flagged now, per Mapping.
    pub fn flagged(&self) -> Vec<(String, usize)> {
        self.report()
            .into_iter()
            .map(|mapping| (mapping.mapping, mapping.flagged))
            .collect()
    }
}

impl EndpointDiff {
    /// Keeps a sample of `field`, built by `build` only if it is kept: until the field has
    /// [`SAMPLES_PER_FIELD`], then at most one every [`SAMPLE_EVERY`]. With samples for too
    /// many fields, those of a field that is not flagged make room.
    fn keep_sample(
        &mut self,
        field: &str,
        now: Instant,
        thresholds: Thresholds,
        build: impl FnOnce() -> SampleReport,
    ) {
        match self.samples.get(field) {
            Some(samples)
                if samples.recent.len() >= SAMPLES_PER_FIELD
                    && now.duration_since(samples.taken) < SAMPLE_EVERY =>
            {
                return;
            }
            None if self.samples.len() >= FIELDS_WITH_SAMPLES => {
                let evicted = self
                    .tally
                    .verdicts(thresholds)
                    .into_iter()
                    .find(|v| !v.flagged && self.samples.contains_key(&v.field));
                match evicted {
                    Some(verdict) => {
                        self.samples.remove(&verdict.field);
                    }
                    None => return,
                }
            }
            _ => {}
        }
        let samples = self
            .samples
            .entry(field.to_string())
            .or_insert_with(|| Samples {
                taken: now,
                recent: VecDeque::new(),
            });
        if samples.recent.len() >= SAMPLES_PER_FIELD {
            samples.recent.pop_front();
        }
        samples.recent.push_back(build());
        samples.taken = now;
    }

    fn report(&self, endpoint: &str, thresholds: Thresholds) -> EndpointReport {
        let fields = self
            .tally
            .verdicts(thresholds)
            .into_iter()
            .map(|verdict| FieldReport {
                samples: match verdict.flagged {
                    true => self
                        .samples
                        .get(&verdict.field)
                        .map(|s| s.recent.iter().rev().cloned().collect())
                        .unwrap_or_default(),
                    false => Vec::new(),
                },
                field: verdict.field,
                difference_rate: verdict.difference_rate,
                noise_rate: verdict.noise_rate,
                flagged: verdict.flagged,
            })
            .collect();
        EndpointReport {
            endpoint: endpoint.to_string(),
            compared: self.tally.compared,
            equal: self.tally.compared - self.tally.different,
            different: self.tally.different,
            noise_compared: self.tally.noise_compared,
            reference_compared: self.reference_compared,
            fields_left_out: self.tally.fields_left_out,
            fields,
        }
    }
}

/// A kept response as the differ reads it.
fn as_response(kept: &KeptResponse) -> Response<'_> {
    match &kept.body {
        KeptBody::Whole(bytes) => Response::whole(kept.status, &kept.headers, bytes.bytes()),
        KeptBody::Digest { length, sha256 } => {
            Response::digested(kept.status, &kept.headers, *length, *sha256)
        }
    }
}

/// A response head for samples; `Set-Cookie` values (sessions) redacted unless
/// `show_credentials`.
fn head_report(kept: &KeptResponse, show_credentials: bool) -> HeadReport {
    let value = |name: &str, value: &str| match show_credentials
        || !name.eq_ignore_ascii_case("set-cookie")
    {
        true => cut(value),
        false => "REDACTED".into(),
    };
    HeadReport {
        status: kept.status,
        headers: kept
            .headers
            .iter()
            .take(MAX_SAMPLE_HEADERS)
            .map(|(name, v)| (name.clone(), value(name, v)))
            .collect(),
    }
}

/// Production's fields and `other`'s (the shadow's or the reference's), flattened the same
/// way: when exactly one body was too long to keep, both are compared as sent (production's
/// copied only then).
fn comparable<'p>(production: &'p Flattened, other: &KeptResponse) -> (Cow<'p, Fields>, Fields) {
    let options = &production.settings.options;
    let mut fields = Cow::Borrowed(production.fields.as_ref());
    let mut other_fields = Fields::of(&as_response(other), options);
    let digested = |kept: &KeptResponse| matches!(kept.body, KeptBody::Digest { .. });
    if digested(&production.response) != digested(other) {
        as_sent(fields.to_mut(), &production.response);
        as_sent(&mut other_fields, other);
    }
    (fields, other_fields)
}

/// `fields` with the body compared by the length and digest of `kept`'s body as sent.
fn as_sent(fields: &mut Fields, kept: &KeptResponse) {
    use sha2::Digest as _;
    let coding = kept
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, value)| value.as_str());
    let (length, digest) = match &kept.body {
        KeptBody::Whole(bytes) => (
            bytes.bytes().len() as u64,
            sha2::Sha256::digest(bytes.bytes()).into(),
        ),
        KeptBody::Digest { length, sha256 } => (*length, *sha256),
    };
    fields.body_as_sent(length, &digest, coding);
}

fn request_headers(request: &Request) -> Vec<(String, String)> {
    (0..request.headers.len())
        .map(|i| {
            (
                String::from_utf8_lossy(request.header_name(i)).into_owned(),
                String::from_utf8_lossy(request.header_value(i)).into_owned(),
            )
        })
        .collect()
}

/// `text`, cut to [`MAX_SAMPLE_TEXT`] bytes (at a character boundary) with an ellipsis.
fn cut(text: &str) -> String {
    if text.len() <= MAX_SAMPLE_TEXT {
        return text.to_string();
    }
    let mut end = MAX_SAMPLE_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
