//! `diff`, a shadowd extension field of shadow Mappings: whether the shadow's responses are
//! compared with production's field by field, on what share of the copies, and how (fields
//! ignored, arrays compared as sets or by a key, numeric tolerance, thresholds).

use serde_yaml_ng::Value;
use shadow_diff::{DiffOptions, Thresholds};

use super::{
    fields::Fields,
    mapping::{Diagnostics, Service},
};

/// Fields of `diff` shadowd reads; others get a notice.
const DIFF_FIELDS: &[&str] = &[
    "weight",
    "reference",
    "ignore_headers",
    "ignore",
    "unordered_arrays",
    "keyed_arrays",
    "numeric_tolerance",
    "max_body_bytes",
    "relative_threshold",
    "absolute_threshold",
];

/// How a shadow Mapping diffs responses.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffSettings {
    /// Percentage (0–100) of the copies whose responses are diffed.
    pub weight: u8,
    /// How two responses are compared.
    pub options: DiffOptions,
    /// When a field's difference rate is the shadow's rather than noise.
    pub thresholds: Thresholds,
    /// A second instance of production's version that diffed copies also go to: where it
    /// answers differently from production is noise, as Diffy's secondary shows it.
    pub reference: Option<Service>,
}

impl Default for DiffSettings {
    /// `diff: true`: every copy, default options and thresholds.
    fn default() -> Self {
        DiffSettings {
            weight: 100,
            options: DiffOptions::default(),
            thresholds: Thresholds::default(),
            reference: None,
        }
    }
}

/// The Mapping's `diff`: absent or `false` is none, `true` the defaults, a map the settings
/// it gives.
pub fn settings(f: &mut Fields<'_>, d: &mut Diagnostics) -> Option<DiffSettings> {
    let value = f.get("diff")?;
    let defaults = DiffSettings::default();
    let map = match value {
        Value::Bool(on) => return on.then_some(defaults),
        Value::Mapping(map) => map,
        _ => {
            f.error(d, "diff", "expected true, false or a map of diff settings");
            return None;
        }
    };
    let mut inner = Fields::new(map, f.document, f.file, f.rkey);
    inner.unknown(d, DIFF_FIELDS, "diff");
    let mut settings = defaults;
    if let Some(weight) = inner.integer(d, "weight") {
        match u8::try_from(weight).ok().filter(|w| *w <= 100) {
            Some(weight) => settings.weight = weight,
            None => inner.error(d, "weight", &format!("{weight} is outside 0-100")),
        }
    }
    if let Some(text) = inner.string(d, "reference") {
        match super::service::parse(&text) {
            Ok(service) => settings.reference = Some(service),
            Err(err) => inner.error(d, "reference", &err.to_string()),
        }
    }
    for name in inner.string_list(d, "ignore_headers") {
        settings
            .options
            .ignore_headers
            .insert(name.to_ascii_lowercase());
    }
    let paths = |inner: &mut Fields<'_>, d: &mut Diagnostics, field: &str| {
        let paths = inner.string_list(d, field);
        for path in &paths {
            if !path.starts_with('$') {
                inner.error(d, field, &format!("{path:?}: a JSON path starts with $"));
            }
        }
        paths
    };
    settings.options.ignore_paths = paths(&mut inner, d, "ignore");
    settings.options.set_arrays = paths(&mut inner, d, "unordered_arrays");
    for (path, key) in inner.string_map(d, "keyed_arrays", false) {
        match (path.starts_with('$'), key) {
            (true, Some(key)) => settings.options.keyed_arrays.push((path, key)),
            _ => inner.error(
                d,
                "keyed_arrays",
                &format!("{path:?}: expected a JSON path mapped to a key field name"),
            ),
        }
    }
    let mut fraction = |inner: &mut Fields<'_>, field: &str, into: &mut f64| {
        let Some(value) = inner.get(field) else {
            return;
        };
        match value.as_f64().filter(|v| (0.0..=1.0).contains(v)) {
            Some(v) => *into = v,
            None => inner.error(d, field, "expected a number from 0 to 1"),
        }
    };
    fraction(
        &mut inner,
        "numeric_tolerance",
        &mut settings.options.numeric_tolerance,
    );
    fraction(
        &mut inner,
        "relative_threshold",
        &mut settings.thresholds.relative,
    );
    fraction(
        &mut inner,
        "absolute_threshold",
        &mut settings.thresholds.absolute,
    );
    if let Some(bytes) = inner.integer(d, "max_body_bytes") {
        match usize::try_from(bytes).ok().filter(|b| *b <= MAX_BODY_BYTES) {
            Some(bytes) => settings.options.max_body_bytes = bytes,
            None => inner.error(
                d,
                "max_body_bytes",
                &format!("{bytes} is outside 0-{MAX_BODY_BYTES}"),
            ),
        }
    }
    if inner.failed {
        f.failed = true;
    }
    Some(settings)
}

/// Largest `max_body_bytes`: bodies kept whole for diffing share one budget, and one body
/// may not take most of it.
pub const MAX_BODY_BYTES: usize = 16 << 20;
