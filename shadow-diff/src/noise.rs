//! Which differences are the shadow's and which are noise. Production itself shows the
//! noise: two identical requests (same method, target, body and the header fields that
//! matter) answered differently differ in fields that change by nature (timestamps, request
//! ids). A field is flagged only when the shadow differs from production in it clearly more
//! often than production differs from itself, by Diffy's two thresholds.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::fields::{Difference, Fields};

/// When a field's difference rate is significant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Share of its difference rate that noise may not explain (default 0.20: Diffy's
    /// relative threshold of 20 %).
    pub relative: f64,
    /// Least excess of the difference rate over the noise rate (default 0.0003: Diffy's
    /// absolute threshold of 0.03 %).
    pub absolute: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            relative: 0.20,
            absolute: 0.0003,
        }
    }
}

/// What the counts say of one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldVerdict {
    /// The field's name.
    pub field: String,
    /// Share of compared requests where the shadow differed from production in it.
    pub difference_rate: f64,
    /// Share of identical production request pairs answered differently in it.
    pub noise_rate: f64,
    /// Whether the difference is the shadow's, beyond noise.
    pub flagged: bool,
}

/// The counts of one endpoint, bounded in fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Requests whose production and shadow responses were compared.
    pub compared: u64,
    /// Of those, how many differed in anything.
    pub different: u64,
    /// Pairs of identical production requests whose responses were compared.
    pub noise_compared: u64,
    by_field: BTreeMap<String, (u64, u64)>,
    /// Differences in fields beyond [`MAX_FIELDS`], not counted by name.
    pub fields_left_out: u64,
}

/// Most fields one endpoint counts by name: a response whose field names vary (ids as keys)
/// cannot grow the counts without end.
pub const MAX_FIELDS: usize = 512;
/// Longest field name counted as it is; a longer one (a JSON key of any length) is cut,
/// with a digest of the whole, so the counts stay small whatever the responses hold.
pub const MAX_FIELD_NAME: usize = 256;

/// `name`, cut to [`MAX_FIELD_NAME`] bytes at a character boundary, with a digest of the
/// whole name so that different long names stay different.
fn bounded_name(name: &str) -> std::borrow::Cow<'_, str> {
    use std::hash::{Hash as _, Hasher as _};
    if name.len() <= MAX_FIELD_NAME {
        return name.into();
    }
    let mut end = MAX_FIELD_NAME - 20;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    format!("{}…#{:016x}", &name[..end], hasher.finish()).into()
}

impl Tally {
    /// Counts the differences between production and the shadow for one request.
    pub fn shadow_compared(&mut self, differences: &[Difference]) {
        self.compared += 1;
        if !differences.is_empty() {
            self.different += 1;
        }
        for difference in differences {
            if let Some(counts) = self.field(&difference.field) {
                counts.0 += 1;
            }
        }
    }

    /// Counts the differences between two production responses to identical requests.
    pub fn noise_compared(&mut self, differences: &[Difference]) {
        self.noise_compared += 1;
        for difference in differences {
            if let Some(counts) = self.field(&difference.field) {
                counts.1 += 1;
            }
        }
    }

    fn field(&mut self, name: &str) -> Option<&mut (u64, u64)> {
        let name = bounded_name(name);
        if !self.by_field.contains_key(name.as_ref()) && self.by_field.len() >= MAX_FIELDS {
            self.fields_left_out += 1;
            return None;
        }
        Some(self.by_field.entry(name.into_owned()).or_default())
    }

    /// Each field that differed, with its rates and whether it is flagged.
    pub fn verdicts(&self, thresholds: Thresholds) -> Vec<FieldVerdict> {
        let rate = |count: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                count as f64 / of as f64
            }
        };
        self.by_field
            .iter()
            .filter(|(_, (shadow, _))| *shadow > 0)
            .map(|(field, (shadow, noise))| {
                let difference_rate = rate(*shadow, self.compared);
                let noise_rate = rate(*noise, self.noise_compared);
                let excess = difference_rate - noise_rate;
                FieldVerdict {
                    field: field.clone(),
                    difference_rate,
                    noise_rate,
                    flagged: excess > thresholds.absolute
                        && excess > thresholds.relative * difference_rate,
                }
            })
            .collect()
    }
}

/// The last production responses to distinct requests, by the requests' key, to compare
/// the next identical request's response with: bounded, oldest forgotten first.
#[derive(Debug)]
pub struct ProductionMemory {
    capacity: usize,
    /// Shared with whoever else holds the response (the daemon's pairing): never copied.
    responses: HashMap<u64, Arc<Fields>>,
    order: VecDeque<u64>,
}

impl ProductionMemory {
    /// A memory of at most `capacity` responses.
    pub fn new(capacity: usize) -> Self {
        ProductionMemory {
            capacity,
            responses: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers `fields`, production's response to the request keyed `key`; returns how
    /// it differs from the response to the last identical request, if one is remembered.
    pub fn answered(
        &mut self,
        key: u64,
        fields: Arc<Fields>,
        options: &crate::fields::DiffOptions,
    ) -> Option<Vec<Difference>> {
        let before = self.responses.insert(key, fields);
        match before {
            Some(before) => {
                let now = &self.responses[&key];
                Some(crate::fields::differences(&before, now, options))
            }
            None => {
                self.order.push_back(key);
                if self.order.len() > self.capacity
                    && let Some(oldest) = self.order.pop_front()
                {
                    self.responses.remove(&oldest);
                }
                None
            }
        }
    }

    /// How many responses are remembered.
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }
}

/// The key of a request for noise: what makes two requests identical (method, target,
/// body and the header fields that change the answer), hashed.
pub fn request_key(method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    method.hash(&mut hasher);
    target.hash(&mut hasher);
    body.hash(&mut hasher);
    // Fields that pick a representation or an identity; tracing and timing fields do not.
    let mut kept: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_str()))
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "host" | "accept" | "accept-language" | "authorization" | "cookie" | "content-type"
            )
        })
        .collect();
    kept.sort();
    kept.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{DiffOptions, Response};

    fn differing(fields: &[&str]) -> Vec<Difference> {
        fields
            .iter()
            .map(|field| Difference {
                field: field.to_string(),
                production: Some("a".into()),
                shadow: Some("b".into()),
            })
            .collect()
    }

    #[test]
    fn long_field_names_are_cut_and_stay_apart() {
        let mut tally = Tally::default();
        let long = |c: char| format!("$.{}", c.to_string().repeat(10_000));
        tally.shadow_compared(&differing(&[&long('a'), &long('b'), "$.é"]));
        let names: Vec<String> = tally
            .verdicts(Thresholds::default())
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(names.len(), 3);
        assert!(
            names.iter().all(|n| n.len() <= MAX_FIELD_NAME + 4),
            "{names:?}"
        );
        assert!(names.contains(&"$.é".to_string()));
    }

    #[test]
    fn noise_cancels_a_field_and_a_real_difference_is_flagged() {
        let mut tally = Tally::default();
        // 1,000 requests: the timestamp differs on every one, the price on 5 %.
        for n in 0..1000 {
            let mut fields = vec!["$.at"];
            if n % 20 == 0 {
                fields.push("$.price");
            }
            tally.shadow_compared(&differing(&fields));
        }
        // Production against itself: the timestamp differs every time, the price never.
        for _ in 0..100 {
            tally.noise_compared(&differing(&["$.at"]));
        }
        let verdicts = tally.verdicts(Thresholds::default());
        let at = verdicts.iter().find(|v| v.field == "$.at").unwrap();
        assert!(!at.flagged && at.difference_rate == 1.0 && at.noise_rate == 1.0);
        let price = verdicts.iter().find(|v| v.field == "$.price").unwrap();
        assert!(price.flagged && (price.difference_rate - 0.05).abs() < 1e-9);
        assert_eq!((tally.compared, tally.different), (1000, 1000));
    }

    #[test]
    fn the_thresholds_decide_at_their_edges() {
        let verdict = |shadow: u64, noise: u64| {
            let mut tally = Tally::default();
            for n in 0..10_000 {
                let fields = if n < shadow { vec!["f"] } else { vec![] };
                tally.shadow_compared(&differing(&fields));
                let noisy = if n < noise { vec!["f"] } else { vec![] };
                tally.noise_compared(&differing(&noisy));
            }
            tally.verdicts(Thresholds::default())[0].flagged
        };
        // 3 in 10,000 is the absolute threshold itself: not beyond it.
        assert!(!verdict(3, 0));
        assert!(verdict(4, 0));
        // Noise explaining more than 80 % of the difference: not flagged.
        assert!(!verdict(1000, 850));
        assert!(verdict(1000, 700));
    }

    #[test]
    fn fields_are_counted_by_name_up_to_a_bound() {
        let mut tally = Tally::default();
        let names: Vec<String> = (0..MAX_FIELDS + 10).map(|n| format!("$.id{n}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        tally.shadow_compared(&differing(&refs));
        assert_eq!(tally.verdicts(Thresholds::default()).len(), MAX_FIELDS);
        assert_eq!(tally.fields_left_out, 10);
    }

    #[test]
    fn production_memory_compares_identical_requests_and_forgets_the_oldest() {
        let options = DiffOptions::default();
        let fields = |body: &str| {
            Arc::new(Fields::of(
                &Response {
                    status: 200,
                    headers: &[],
                    body: body.as_bytes(),
                    digest: None,
                },
                &options,
            ))
        };
        let mut memory = ProductionMemory::new(2);
        assert_eq!(memory.answered(1, fields(r#"{"at":1}"#), &options), None);
        let diffs = memory.answered(1, fields(r#"{"at":2}"#), &options).unwrap();
        assert_eq!(diffs[0].field, "$.at");
        memory.answered(2, fields("{}"), &options);
        memory.answered(3, fields("{}"), &options);
        assert_eq!(memory.len(), 2);
        // Request 1 was the oldest: forgotten.
        assert_eq!(memory.answered(1, fields("{}"), &options), None);
    }

    #[test]
    fn requests_differing_only_in_tracing_fields_are_identical() {
        let headers = |trace: &str, accept: &str| {
            vec![
                ("X-Request-Id".to_string(), trace.to_string()),
                ("Accept".to_string(), accept.to_string()),
            ]
        };
        let key = |h: &[(String, String)]| request_key("GET", "/a?x=1", h, b"");
        assert_eq!(key(&headers("1", "json")), key(&headers("2", "json")));
        assert_ne!(key(&headers("1", "json")), key(&headers("1", "html")));
        assert_ne!(
            request_key("GET", "/a", &[], b""),
            request_key("GET", "/b", &[], b"")
        );
    }
}
