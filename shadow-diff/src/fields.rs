//! A response flattened into named fields — `status`, `header.<name>`, and the body: for a
//! JSON body each leaf by its path (`$.items[3].price`), for any other body its length and
//! digest — and the fields two responses differ in. Flattening first (as Diffy does) makes
//! a difference something with a name that can be counted across requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::decode::{DecodeError, decoded_body, decoded_digest};

/// Longest decoded body a digest reads through (64 MiB): past it, a body is "too long".
const DIGEST_CAP: u64 = 64 << 20;
/// Longest text body kept for a textual diff.
const MAX_TEXT_BYTES: usize = 64 << 10;
/// How long a textual diff may take: past it, `similar` gives a coarser diff.
const TEXT_DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(20);

/// A body's length and the start of its digest, as a field value.
fn digest_text(length: u64, digest: &[u8; 32]) -> String {
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{length} bytes, sha256 {hex}…")
}

/// A body's value when compared as sent: length and digest, and its content coding.
fn as_sent(length: u64, digest: &[u8; 32], coding: Option<&str>) -> String {
    let coded = coding.map_or(String::new(), |coding| format!(" ({coding})"));
    format!("{}{coded} as sent", digest_text(length, digest))
}

/// Header fields that differ between two servers by nature, never compared: the moment,
/// the software, the framing and encoding (bodies are compared decoded), hop-by-hop fields.
pub const DEFAULT_IGNORED_HEADERS: [&str; 11] = [
    "date",
    "server",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "age",
];

/// A response as the diff needs it; the body with its framing (chunks) already undone.
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    /// The status code.
    pub status: u16,
    /// Header fields as received, names in any case.
    pub headers: &'a [(String, String)],
    /// The body, de-chunked, still content-encoded.
    pub body: &'a [u8],
    /// Set when the body was too long to keep: its length and SHA-256, de-chunked and
    /// still content-encoded, which it is compared by instead of `body`.
    pub digest: Option<(u64, [u8; 32])>,
}

impl<'a> Response<'a> {
    /// A response whose body was kept whole.
    pub fn whole(status: u16, headers: &'a [(String, String)], body: &'a [u8]) -> Self {
        Response {
            status,
            headers,
            body,
            digest: None,
        }
    }

    /// A response whose body was too long to keep: `length` bytes with digest `sha256`.
    pub fn digested(
        status: u16,
        headers: &'a [(String, String)],
        length: u64,
        sha256: [u8; 32],
    ) -> Self {
        Response {
            status,
            headers,
            body: &[],
            digest: Some((length, sha256)),
        }
    }
}

/// How a Mapping's responses are compared.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffOptions {
    /// Header names (lowercase) not compared.
    pub ignore_headers: BTreeSet<String>,
    /// JSON paths not compared, each with its subtree; `*` stands for one key or index
    /// (`$.items[*].etag`).
    pub ignore_paths: Vec<String>,
    /// JSON arrays at these paths are compared as sets: order does not matter.
    pub set_arrays: Vec<String>,
    /// JSON arrays at these paths (first) are compared element by element matched on the
    /// key field (second) of their objects.
    pub keyed_arrays: Vec<(String, String)>,
    /// Numbers within this relative difference are equal (0: exactly equal).
    pub numeric_tolerance: f64,
    /// Longest decoded body compared field by field; a longer one is compared by length and
    /// digest.
    pub max_body_bytes: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            ignore_headers: DEFAULT_IGNORED_HEADERS.map(String::from).into(),
            ignore_paths: Vec::new(),
            set_arrays: Vec::new(),
            keyed_arrays: Vec::new(),
            numeric_tolerance: 0.0,
            max_body_bytes: 1 << 20,
        }
    }
}

/// One field's value.
#[derive(Clone, Debug, PartialEq)]
enum Leaf {
    /// A string, a boolean, null, an empty container, a header value, a status.
    Text(String),
    /// A JSON number, compared with the numeric tolerance.
    Number(f64),
}

impl std::fmt::Display for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leaf::Text(text) => f.write_str(text),
            Leaf::Number(number) => write!(f, "{number}"),
        }
    }
}

/// A response flattened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields {
    /// By name; hashed, as the paths of a long body share long prefixes that a sorted map
    /// would compare again and again.
    leaves: HashMap<String, Leaf>,
    /// A text body that is not JSON, kept for a textual diff of samples.
    text: Option<String>,
}

/// One field two responses differ in; `None` where a response lacks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// `status`, `header.<name>`, `body`, or a JSON path.
    pub field: String,
    /// The first response's value (production's).
    pub production: Option<String>,
    /// The second response's value (the shadow's, or a second production response's).
    pub shadow: Option<String>,
}

impl Fields {
    /// `response` flattened as `options` say.
    pub fn of(response: &Response<'_>, options: &DiffOptions) -> Fields {
        let mut fields = Fields::default();
        fields
            .leaves
            .insert("status".into(), Leaf::Text(response.status.to_string()));
        let mut headers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (name, value) in response.headers {
            let name = name.to_ascii_lowercase();
            if !options.ignore_headers.contains(&name) {
                headers.entry(name).or_default().push(value.trim());
            }
        }
        for (name, values) in headers {
            fields
                .leaves
                .insert(format!("header.{name}"), Leaf::Text(values.join(", ")));
        }
        let header = |wanted: &str| {
            response
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.as_str())
        };
        let encoding = header("content-encoding");
        if let Some((length, digest)) = response.digest {
            let leaf = as_sent(length, &digest, encoding);
            fields.leaves.insert("body".into(), Leaf::Text(leaf));
            return fields;
        }
        let body = match decoded_body(response.body, encoding, options.max_body_bytes) {
            Ok(body) => body,
            // Too long to keep: compared by length and digest, read through.
            Err(DecodeError::TooLong(_)) => {
                let leaf = match decoded_digest(response.body, encoding, DIGEST_CAP) {
                    Ok((length, digest)) => digest_text(length, &digest),
                    Err(err) => format!("({err})"),
                };
                fields.leaves.insert("body".into(), Leaf::Text(leaf));
                return fields;
            }
            Err(err) => {
                fields
                    .leaves
                    .insert("body".into(), Leaf::Text(format!("({err})")));
                return fields;
            }
        };
        if body.is_empty() {
            return fields;
        }
        let content_type = header("content-type").unwrap_or("").to_ascii_lowercase();
        let looks_like_json = content_type.contains("json")
            || body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{' || *b == b'[');
        if looks_like_json && let Ok(value) = serde_json::from_slice::<Value>(&body) {
            let mut flattener = Flattener {
                options,
                out: &mut fields.leaves,
            };
            flattener.value("$", &value);
            return fields;
        }
        let digest: [u8; 32] = Sha256::digest(&body).into();
        fields.leaves.insert(
            "body".into(),
            Leaf::Text(digest_text(body.len() as u64, &digest)),
        );
        let textual = content_type.starts_with("text/")
            || content_type.contains("xml")
            || content_type.contains("javascript");
        // Text is kept for the samples' textual diff only while it is short.
        if textual
            && body.len() <= MAX_TEXT_BYTES
            && let Ok(text) = String::from_utf8(body)
        {
            fields.text = Some(text);
        }
        fields
    }

    /// Compares the body by `length` and `digest` of its bytes as sent (de-chunked, still
    /// content-encoded) instead of its fields: for a response whose other side's body was
    /// too long to keep, so both are compared the same way.
    pub fn body_as_sent(&mut self, length: u64, digest: &[u8; 32], coding: Option<&str>) {
        self.leaves
            .retain(|name, _| name == "status" || name.starts_with("header."));
        self.text = None;
        self.leaves
            .insert("body".into(), Leaf::Text(as_sent(length, digest, coding)));
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }
}

/// The fields `production` and `shadow` differ in, in field order.
pub fn differences(production: &Fields, shadow: &Fields, options: &DiffOptions) -> Vec<Difference> {
    let only_in_shadow = shadow
        .leaves
        .keys()
        .filter(|name| !production.leaves.contains_key(*name));
    let mut found: Vec<Difference> = production
        .leaves
        .keys()
        .chain(only_in_shadow)
        .filter_map(|name| {
            let (a, b) = (production.leaves.get(name), shadow.leaves.get(name));
            let equal = match (a, b) {
                (Some(Leaf::Number(x)), Some(Leaf::Number(y))) => {
                    numbers_equal(*x, *y, options.numeric_tolerance)
                }
                (a, b) => a == b,
            };
            (!equal).then(|| Difference {
                field: name.clone(),
                production: a.map(Leaf::to_string),
                shadow: b.map(Leaf::to_string),
            })
        })
        .collect();
    found.sort_by(|a, b| a.field.cmp(&b.field));
    found
}

/// A unified diff of two text bodies, at most `max_lines` lines; `None` unless both are text.
pub fn text_diff(production: &Fields, shadow: &Fields, max_lines: usize) -> Option<String> {
    let (a, b) = (production.text.as_ref()?, shadow.text.as_ref()?);
    let diff = similar::TextDiff::configure()
        .timeout(TEXT_DIFF_DEADLINE)
        .diff_lines(a.as_str(), b.as_str());
    let unified = diff
        .unified_diff()
        .context_radius(2)
        .header("production", "shadow")
        .to_string();
    Some(
        unified
            .lines()
            .take(max_lines)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn numbers_equal(x: f64, y: f64, tolerance: f64) -> bool {
    if x == y {
        return true;
    }
    let scale = x.abs().max(y.abs());
    (x - y).abs() <= tolerance * scale
}

/// Writes the leaves of a JSON value under their paths.
struct Flattener<'o> {
    options: &'o DiffOptions,
    out: &'o mut HashMap<String, Leaf>,
}

impl Flattener<'_> {
    fn value(&mut self, path: &str, value: &Value) {
        if self.options.ignore_paths.iter().any(|p| covers(p, path)) {
            return;
        }
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    self.value(&child_path(path, key), child);
                }
            }
            Value::Array(items) if !items.is_empty() => self.array(path, items),
            Value::Number(number) => {
                let leaf = number
                    .as_f64()
                    .map_or_else(|| Leaf::Text(number.to_string()), Leaf::Number);
                self.out.insert(path.to_string(), leaf);
            }
            Value::String(text) => {
                self.out
                    .insert(path.to_string(), Leaf::Text(format!("{text:?}")));
            }
            other => {
                self.out
                    .insert(path.to_string(), Leaf::Text(other.to_string()));
            }
        }
    }

    fn array(&mut self, path: &str, items: &[Value]) {
        if self.options.set_arrays.iter().any(|p| matches(p, path)) {
            // As a multiset: the elements, each written canonically, sorted.
            let mut elements: Vec<String> = items.iter().map(Value::to_string).collect();
            elements.sort();
            self.out.insert(
                path.to_string(),
                Leaf::Text(format!("[{}]", elements.join(","))),
            );
            return;
        }
        let key = self
            .options
            .keyed_arrays
            .iter()
            .find(|(p, _)| matches(p, path))
            .map(|(_, key)| key.as_str());
        for (index, item) in items.iter().enumerate() {
            let segment = match key.and_then(|key| item.get(key)) {
                Some(id) => format!("[{key}={}]", id_text(id), key = key.unwrap_or_default()),
                None => format!("[{index}]"),
            };
            self.value(&format!("{path}{segment}"), item);
        }
    }
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `parent.key`, or `parent["key"]` for a key that is not a plain name.
fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{key:?}]")
    }
}

/// The segments of a path: `$`, `.name`, `["name"]`, `[3]`, `[id=7]`.
fn segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut in_quotes = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_quotes = !in_quotes,
            b'\\' if in_quotes => i += 1,
            b'.' | b'[' if !in_quotes && i > start => {
                out.push(&path[start..i]);
                start = i;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&path[start..]);
    out
}

/// Whether `pattern` names `path`: the same segments, `.*` and `[*]` standing for any one.
fn matches(pattern: &str, path: &str) -> bool {
    let (p, s) = (segments(pattern), segments(path));
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| segment_matches(p, s))
}

/// Whether `pattern` names `path` or one of its ancestors.
fn covers(pattern: &str, path: &str) -> bool {
    let (p, s) = (segments(pattern), segments(path));
    p.len() <= s.len() && p.iter().zip(&s).all(|(p, s)| segment_matches(p, s))
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    match pattern {
        ".*" => segment.starts_with('.') || segment.starts_with("[\""),
        "[*]" => segment.starts_with('['),
        _ => pattern == segment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(status: u16, body: &str) -> Fields {
        let headers = [("Content-Type".to_string(), "application/json".to_string())];
        Fields::of(
            &Response {
                status,
                headers: &headers,
                body: body.as_bytes(),
                digest: None,
            },
            &DiffOptions::default(),
        )
    }

    fn fields_with(options: &DiffOptions, body: &str) -> Fields {
        Fields::of(
            &Response {
                status: 200,
                headers: &[],
                body: body.as_bytes(),
                digest: None,
            },
            options,
        )
    }

    fn names(diffs: &[Difference]) -> Vec<&str> {
        diffs.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn json_bodies_differ_by_field_path() {
        let a = json(
            200,
            r#"{"items":[{"price":10,"name":"a"}],"total":10,"odd key":1}"#,
        );
        let b = json(
            200,
            r#"{"items":[{"price":12,"name":"a"}],"total":10,"odd key":2,"new":null}"#,
        );
        let diffs = differences(&a, &b, &DiffOptions::default());
        assert_eq!(
            names(&diffs),
            ["$.items[0].price", "$.new", "$[\"odd key\"]"]
        );
        assert_eq!(diffs[0].production.as_deref(), Some("10"));
        assert_eq!(diffs[0].shadow.as_deref(), Some("12"));
        assert_eq!(diffs[1].production, None);
        assert!(differences(&a, &a, &DiffOptions::default()).is_empty());
    }

    #[test]
    fn status_and_headers_are_fields_and_natural_differences_are_ignored() {
        let head = |status, server: &str, kind: &str| {
            let headers = vec![
                (
                    "Date".to_string(),
                    "Mon, 07 Dec 2026 05:00:00 GMT".to_string(),
                ),
                ("Server".to_string(), server.to_string()),
                ("Cache-Control".to_string(), kind.to_string()),
                ("Set-Cookie".to_string(), "a=1".to_string()),
                ("set-cookie".to_string(), "b=2".to_string()),
            ];
            let response = Response {
                status,
                headers: &headers,
                body: b"",
                digest: None,
            };
            Fields::of(&response, &DiffOptions::default())
        };
        let diffs = differences(
            &head(200, "nginx", "no-store"),
            &head(500, "envoy", "max-age=60"),
            &DiffOptions::default(),
        );
        assert_eq!(names(&diffs), ["header.cache-control", "status"]);
        let fields = head(200, "x", "y");
        assert_eq!(
            fields.leaves.get("header.set-cookie"),
            Some(&Leaf::Text("a=1, b=2".into()))
        );
    }

    #[test]
    fn ignored_paths_take_their_subtrees_and_stars_match_one_segment() {
        let options = DiffOptions {
            ignore_paths: vec!["$.meta".into(), "$.items[*].etag".into()],
            ..DiffOptions::default()
        };
        let a = fields_with(
            &options,
            r#"{"meta":{"id":"x","at":1},"items":[{"etag":"1","v":1}]}"#,
        );
        let b = fields_with(
            &options,
            r#"{"meta":{"id":"y","at":2},"items":[{"etag":"2","v":1}]}"#,
        );
        assert!(differences(&a, &b, &options).is_empty());
    }

    #[test]
    fn arrays_compare_by_index_as_sets_or_by_a_key() {
        let by_index = DiffOptions::default();
        let a = r#"{"tags":["x","y"],"rows":[{"id":1,"v":"a"},{"id":2,"v":"b"}]}"#;
        let b = r#"{"tags":["y","x"],"rows":[{"id":2,"v":"b"},{"id":1,"v":"a"}]}"#;
        let diffs = differences(
            &fields_with(&by_index, a),
            &fields_with(&by_index, b),
            &by_index,
        );
        assert_eq!(diffs.len(), 6);
        let smart = DiffOptions {
            set_arrays: vec!["$.tags".into()],
            keyed_arrays: vec![("$.rows".into(), "id".into())],
            ..DiffOptions::default()
        };
        let (fa, fb) = (fields_with(&smart, a), fields_with(&smart, b));
        assert!(differences(&fa, &fb, &smart).is_empty());
        assert!(fa.leaves.contains_key("$.rows[id=1].v"));
        let c = r#"{"tags":["x","x"],"rows":[{"id":2,"v":"B"},{"id":1,"v":"a"}]}"#;
        let diffs = differences(&fa, &fields_with(&smart, c), &smart);
        assert_eq!(names(&diffs), ["$.rows[id=2].v", "$.tags"]);
    }

    #[test]
    fn numbers_within_the_tolerance_are_equal() {
        let tolerant = DiffOptions {
            numeric_tolerance: 0.01,
            ..DiffOptions::default()
        };
        let a = fields_with(&tolerant, r#"{"p":100.0,"q":1}"#);
        let b = fields_with(&tolerant, r#"{"p":100.5,"q":2}"#);
        assert_eq!(names(&differences(&a, &b, &tolerant)), ["$.q"]);
        assert_eq!(
            names(&differences(&a, &b, &DiffOptions::default())),
            ["$.p", "$.q"]
        );
    }

    #[test]
    fn other_bodies_compare_by_length_and_digest_with_a_text_diff() {
        let text = |body: &'static str| {
            let headers = [("content-type".to_string(), "text/plain".to_string())];
            Fields::of(
                &Response {
                    status: 200,
                    headers: &headers,
                    body: body.as_bytes(),
                    digest: None,
                },
                &DiffOptions::default(),
            )
        };
        let (a, b) = (text("one\ntwo\nthree\n"), text("one\n2\nthree\n"));
        let diffs = differences(&a, &b, &DiffOptions::default());
        assert_eq!(names(&diffs), ["body"]);
        assert!(
            diffs[0]
                .production
                .as_deref()
                .unwrap()
                .starts_with("14 bytes, sha256 ")
        );
        let unified = text_diff(&a, &b, 20).unwrap();
        assert!(
            unified.contains("-two") && unified.contains("+2"),
            "{unified}"
        );
        // A body that says it is JSON but is not is compared whole.
        let broken = json(200, "{not json");
        assert!(broken.leaves.contains_key("body"));
    }

    #[test]
    fn gzip_bodies_are_compared_decoded_and_big_ones_by_digest() {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(br#"{"a":1}"#).unwrap();
        let gzipped = encoder.finish().unwrap();
        let headers = [
            ("Content-Encoding".to_string(), "gzip".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        let response = Response {
            status: 200,
            headers: &headers,
            body: &gzipped,
            digest: None,
        };
        let fields = Fields::of(&response, &DiffOptions::default());
        assert_eq!(fields, json(200, r#"{"a":1}"#));
        let small = DiffOptions {
            max_body_bytes: 4,
            ..DiffOptions::default()
        };
        let fields = Fields::of(&response, &small);
        assert!(
            fields.leaves["body"]
                .to_string()
                .starts_with("7 bytes, sha256 ")
        );
    }
}
