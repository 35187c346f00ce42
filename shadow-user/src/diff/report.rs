//! The response diffing report: per shadow Mapping and endpoint, requests compared, equal
//! and different; per field, its difference and noise rates and whether it is flagged, with
//! recent samples of flagged fields. Served in `/diag` and printed by `shadowd diff`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One shadow Mapping's diffs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappingReport {
    pub mapping: String,
    pub compared: u64,
    pub different: u64,
    /// Fields flagged, over all endpoints.
    pub flagged: usize,
    pub relative_threshold: f64,
    pub absolute_threshold: f64,
    pub endpoints: Vec<EndpointReport>,
}

/// One endpoint (method and path template) of a Mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// `GET /users/{id}`, or `other` past the bound.
    pub endpoint: String,
    pub compared: u64,
    pub equal: u64,
    pub different: u64,
    /// Pairs compared to learn noise, the base of the noise rates: production's answers to
    /// identical requests, and production's against the reference instance's.
    pub noise_compared: u64,
    /// Of those, production's answers against the reference instance's.
    #[serde(default)]
    pub reference_compared: u64,
    /// Differences in fields past the bound on fields counted by name.
    pub fields_left_out: u64,
    /// Every field that differed at least once, by name.
    pub fields: Vec<FieldReport>,
}

/// One field of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// `status`, `header.<name>`, `body`, or a JSON path.
    pub field: String,
    /// Share of compared requests where the shadow's value differed from production's.
    pub difference_rate: f64,
    /// Share of identical production request pairs answered with different values.
    pub noise_rate: f64,
    /// The difference is the shadow's, beyond noise.
    pub flagged: bool,
    /// Flagged fields: the most recent differences, newest first.
    pub samples: Vec<SampleReport>,
}

/// One request where a field differed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleReport {
    /// Production's value (none: the field was missing).
    pub production: Option<String>,
    /// The shadow's value.
    pub shadow: Option<String>,
    pub production_head: HeadReport,
    pub shadow_head: HeadReport,
    /// The production request as a `curl` command.
    pub request: String,
    /// For a text body, a unified diff of the two bodies.
    pub text_diff: Option<String>,
}

/// A response head.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadReport {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// Whether any field of any Mapping is flagged.
pub fn any_flagged(report: &[MappingReport]) -> bool {
    report.iter().any(|mapping| mapping.flagged > 0)
}

/// The report for a terminal: per Mapping and endpoint the counts, then each field that
/// differed with its rates, flagged ones marked and followed by their newest sample.
pub fn text(report: &[MappingReport]) -> String {
    let mut out = String::new();
    if report.is_empty() {
        out.push_str("No Mapping diffs responses yet (a shadow Mapping needs `diff: true`).\n");
        return out;
    }
    for mapping in report {
        let _ = writeln!(
            out,
            "{}: {} compared, {} different, {} field(s) flagged (thresholds: relative {:.0}%, absolute {}%)",
            mapping.mapping,
            mapping.compared,
            mapping.different,
            mapping.flagged,
            mapping.relative_threshold * 100.0,
            mapping.absolute_threshold * 100.0,
        );
        for endpoint in &mapping.endpoints {
            let _ = writeln!(
                out,
                "  {}: {} compared, {} equal, {} different; noise from {} identical request pairs{}",
                endpoint.endpoint,
                endpoint.compared,
                endpoint.equal,
                endpoint.different,
                endpoint.noise_compared - endpoint.reference_compared,
                match endpoint.reference_compared {
                    0 => String::new(),
                    n => format!(" and {n} answers of the reference"),
                }
            );
            for field in &endpoint.fields {
                let _ = writeln!(
                    out,
                    "    {} {}: differs {:.2}%, noise {:.2}%",
                    if field.flagged { "FLAGGED" } else { "noise  " },
                    field.field,
                    field.difference_rate * 100.0,
                    field.noise_rate * 100.0
                );
                if let Some(sample) = field.samples.first() {
                    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
                    let _ = writeln!(out, "      production: {}", value(&sample.production));
                    let _ = writeln!(out, "      shadow:     {}", value(&sample.shadow));
                    let _ = writeln!(out, "      request:    {}", sample.request);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_marks_flagged_fields_and_shows_their_sample() {
        let report = vec![MappingReport {
            mapping: "users-shadow".into(),
            compared: 10,
            different: 10,
            flagged: 1,
            relative_threshold: 0.2,
            absolute_threshold: 0.0003,
            endpoints: vec![EndpointReport {
                endpoint: "GET /users/{id}".into(),
                compared: 10,
                equal: 0,
                different: 10,
                noise_compared: 4,
                reference_compared: 0,
                fields_left_out: 0,
                fields: vec![
                    FieldReport {
                        field: "$.price".into(),
                        difference_rate: 0.5,
                        noise_rate: 0.0,
                        flagged: true,
                        samples: vec![SampleReport {
                            production: Some("10".into()),
                            shadow: Some("11".into()),
                            request: "curl -X 'GET' 'http://h/users/1'".into(),
                            ..SampleReport::default()
                        }],
                    },
                    FieldReport {
                        field: "$.at".into(),
                        difference_rate: 1.0,
                        noise_rate: 1.0,
                        flagged: false,
                        samples: vec![],
                    },
                ],
            }],
        }];
        let text = text(&report);
        assert!(text.contains("users-shadow: 10 compared, 10 different, 1 field(s) flagged"));
        assert!(text.contains("    FLAGGED $.price: differs 50.00%, noise 0.00%"));
        assert!(text.contains("      shadow:     11"));
        assert!(text.contains("    noise   $.at: differs 100.00%, noise 100.00%"));
        assert!(any_flagged(&report));
        assert!(!any_flagged(&[]));
    }
}
