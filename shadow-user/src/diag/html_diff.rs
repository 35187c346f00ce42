//! The response diffing part of `/diag`: a table of every field that differed, per Mapping
//! and endpoint, flagged ones marked, then the recent samples of each flagged field (both
//! values, both response heads, the request as a `curl` command).

use std::fmt::Write as _;

use super::html::{Cell, esc, table};
use crate::diff::report::{HeadReport, MappingReport};

const FIELDS: [&str; 9] = [
    "mapping",
    "endpoint",
    "compared",
    "equal",
    "different",
    "field",
    "differs",
    "noise",
    "verdict",
];

fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn head(head: &HeadReport) -> String {
    let mut text = format!("{}\n", head.status);
    for (name, value) in &head.headers {
        let _ = writeln!(text, "{name}: {value}");
    }
    text
}

/// Writes the section into `h`.
pub fn render(h: &mut String, report: &[MappingReport]) {
    h.push_str("<h2>Response differences</h2>");
    let mut rows = Vec::new();
    for mapping in report {
        for endpoint in &mapping.endpoints {
            let counts = || {
                vec![
                    Cell::from(&mapping.mapping),
                    Cell::from(&endpoint.endpoint),
                    Cell::from(endpoint.compared),
                    Cell::from(endpoint.equal),
                    Cell::from(endpoint.different),
                ]
            };
            if endpoint.fields.is_empty() {
                let mut row = counts();
                row.extend([
                    Cell::from("–"),
                    Cell::from("–"),
                    Cell::from("–"),
                    Cell::with_class("equal", "ok"),
                ]);
                rows.push(row);
            }
            for field in &endpoint.fields {
                let mut row = counts();
                row.extend([
                    Cell::from(&field.field),
                    Cell::from(percent(field.difference_rate)),
                    Cell::from(percent(field.noise_rate)),
                    match field.flagged {
                        true => Cell::with_class("FLAGGED", "bad"),
                        false => Cell::with_class("noise", "ok"),
                    },
                ]);
                rows.push(row);
            }
        }
    }
    table(h, "diff", &FIELDS, rows);
    for mapping in report {
        for endpoint in &mapping.endpoints {
            for field in endpoint.fields.iter().filter(|f| f.flagged) {
                for sample in &field.samples {
                    let value = |v: &Option<String>| v.as_deref().unwrap_or("(absent)").to_string();
                    let _ = write!(
                        h,
                        "<div class=\"sample\"><h3>{} · {} · {}</h3>\
                         <p>production: <code>{}</code><br>shadow: <code class=\"bad\">{}</code></p>\
                         <p>production's response</p><pre>{}</pre>\
                         <p>the shadow's response</p><pre>{}</pre>\
                         <p>request</p><pre>{}</pre>",
                        esc(&mapping.mapping),
                        esc(&endpoint.endpoint),
                        esc(&field.field),
                        esc(&value(&sample.production)),
                        esc(&value(&sample.shadow)),
                        esc(&head(&sample.production_head)),
                        esc(&head(&sample.shadow_head)),
                        esc(&sample.request),
                    );
                    if let Some(diff) = &sample.text_diff {
                        let _ = write!(h, "<p>body diff</p><pre>{}</pre>", esc(diff));
                    }
                    h.push_str("</div>");
                }
            }
        }
    }
}
