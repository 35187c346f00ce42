//! `/diag` as a plain HTML page: readable in any browser, no JavaScript.

use std::fmt::Write as _;

use super::model::{Report, SideReport};

/// Escapes text for HTML.
pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
}

fn classes(side: &SideReport) -> String {
    if side.classes.is_empty() {
        return "–".into();
    }
    side.classes
        .iter()
        .map(|(class, n)| format!("{class}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>shadowd diagnostics</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
         td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}th{{background:#eee}}\
         .bad{{color:#a00;font-weight:bold}}.ok{{color:#070}}\
         pre{{background:#f6f6f6;padding:6px;white-space:pre-wrap;word-break:break-all}}\
         .sample{{border-left:3px solid #a00;padding-left:1em;margin-bottom:1.5em}}</style></head><body>\
         <h1>shadowd {} — {}</h1>",
        esc(&report.version),
        if report.ready {
            "<span class=\"ok\">ready</span>"
        } else {
            "<span class=\"bad\">not ready</span>"
        }
    );
    h.push_str("<h2>Production vs shadow</h2>");
    table(&mut h, "comparison", &COMPARISON, comparison_rows(report));
    let figures: Vec<String> = report
        .comparison
        .iter()
        .filter_map(super::svg::distributions)
        .collect();
    if !figures.is_empty() {
        h.push_str("<div id=\"latency\">");
        for figure in figures {
            h.push_str(&figure);
        }
        h.push_str("</div>");
    }
    if !report.diff.is_empty() {
        super::html_diff::render(&mut h, &report.diff);
    }
    h.push_str("<h2>Loss ledger</h2>");
    table(&mut h, "ledger", &LEDGER, ledger_rows(report));
    h.push_str("<h2>Route table</h2>");
    table(&mut h, "routes", &ROUTES, route_rows(report));
    for (title, id, entries) in [
        ("Errors", "errors", &report.errors),
        ("Notices", "notices", &report.notices),
    ] {
        let _ = write!(h, "<h2>{title} ({})</h2>", entries.len());
        let rows = entries
            .iter()
            .map(|(rkey, message)| vec![Cell::from(rkey), Cell::from(message)])
            .collect();
        table(&mut h, id, &["rkey", "message"], rows);
    }
    let _ = write!(
        h,
        "<h2>Capture</h2><p>capture: {}</p>",
        esc(&report.capture.join(", "))
    );
    let services = report
        .capture_services
        .iter()
        .map(|(service, found)| vec![Cell::from(service), Cell::from(found)])
        .collect();
    table(&mut h, "services", &SERVICES, services);
    table(&mut h, "capture", &CAPTURE, capture_rows(report));
    if !report.kubernetes.is_empty() {
        h.push_str("<h2>Kubernetes</h2>");
        let rows = report
            .kubernetes
            .iter()
            .map(|watch| {
                vec![
                    Cell::from(&watch.resource),
                    match watch.listed {
                        true => Cell::with_class("yes", "ok"),
                        false => Cell::with_class("NO", "bad"),
                    },
                    Cell::from(watch.errors),
                    Cell::from(watch.last_error.as_deref().unwrap_or("–")),
                ]
            })
            .collect();
        table(&mut h, "kubernetes", &KUBERNETES, rows);
    }
    h.push_str("<p><a href=\"/diag?json=true\">JSON</a> · <a href=\"/metrics\">metrics</a></p></body></html>\n");
    h
}

const COMPARISON: [&str; 8] = [
    "mapping",
    "side",
    "responses",
    "status classes",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "status class differs",
];
const LEDGER: [&str; 7] = [
    "mapping",
    "observed",
    "copied",
    "sampled out",
    "dropped",
    "in flight",
    "balances",
];
const ROUTES: [&str; 6] = ["#", "group", "match", "production", "shadow", "read from"];
const SERVICES: [&str; 2] = ["production service", "captured at"];
const KUBERNETES: [&str; 4] = ["watch", "listed", "errors", "failing with"];
const CAPTURE: [&str; 6] = [
    "interface",
    "hook",
    "seen",
    "cloned",
    "clone failed",
    "loop guarded",
];

/// One table cell: its text, escaped when written, and its CSS class if it has one.
pub(super) struct Cell {
    text: String,
    class: Option<&'static str>,
}

impl Cell {
    pub(super) fn with_class(text: impl ToString, class: &'static str) -> Cell {
        Cell {
            text: text.to_string(),
            class: Some(class),
        }
    }
}

impl<T: ToString> From<T> for Cell {
    fn from(text: T) -> Cell {
        Cell {
            text: text.to_string(),
            class: None,
        }
    }
}

/// Writes a table with a header row and one row per entry of `rows`.
pub(super) fn table(h: &mut String, id: &str, headers: &[&str], rows: Vec<Vec<Cell>>) {
    let _ = write!(h, "<table id=\"{id}\"><tr>");
    for header in headers {
        let _ = write!(h, "<th>{header}</th>");
    }
    h.push_str("</tr>");
    for row in rows {
        h.push_str("<tr>");
        for cell in row {
            match cell.class {
                Some(class) => {
                    let _ = write!(h, "<td class=\"{class}\">{}</td>", esc(&cell.text));
                }
                None => {
                    let _ = write!(h, "<td>{}</td>", esc(&cell.text));
                }
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// Two rows per shadow Mapping, production's then the shadow's.
fn comparison_rows(report: &Report) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for c in &report.comparison {
        let differs = format!("{} of {}", c.status_class_differences, c.compared);
        let differs = if c.status_class_differences > 0 {
            Cell::with_class(differs, "bad")
        } else {
            Cell::from(differs)
        };
        for (side, data, differs) in [
            ("production", &c.production, differs),
            ("shadow", &c.shadow, Cell::from("")),
        ] {
            rows.push(vec![
                Cell::from(&c.mapping),
                Cell::from(side),
                Cell::from(data.count),
                Cell::from(classes(data)),
                Cell::from(ms(data.p50_ms)),
                Cell::from(ms(data.p90_ms)),
                Cell::from(ms(data.p99_ms)),
                differs,
            ]);
        }
    }
    rows
}

fn ledger_rows(report: &Report) -> Vec<Vec<Cell>> {
    report
        .ledger
        .iter()
        .map(|l| {
            let dropped = if l.dropped.is_empty() {
                "0".to_string()
            } else {
                let reasons: Vec<String> =
                    l.dropped.iter().map(|(r, n)| format!("{r}: {n}")).collect();
                reasons.join(", ")
            };
            let balances = if l.balanced {
                Cell::with_class("yes", "ok")
            } else {
                Cell::with_class("NO", "bad")
            };
            vec![
                Cell::from(&l.mapping),
                Cell::from(l.observed),
                Cell::from(l.copied),
                Cell::from(l.sampled_out),
                Cell::from(dropped),
                Cell::from(l.in_flight),
                balances,
            ]
        })
        .collect()
}

fn route_rows(report: &Report) -> Vec<Vec<Cell>> {
    report
        .route_table
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let shadow = g.shadow.as_ref().map_or_else(
                || "none (not copied)".to_string(),
                |s| format!("{} → {}, weight {}%", s.mapping, s.service, s.weight),
            );
            vec![
                Cell::from(i + 1),
                Cell::from(&g.rkey),
                Cell::from(&g.criteria),
                Cell::from(g.production.join("; ")),
                Cell::from(shadow),
                Cell::from(g.sources.join("; ")),
            ]
        })
        .collect()
}

fn capture_rows(report: &Report) -> Vec<Vec<Cell>> {
    report
        .attachments
        .iter()
        .map(|a| {
            vec![
                Cell::from(&a.interface),
                Cell::from(&a.hook),
                Cell::from(a.seen),
                Cell::from(a.cloned),
                Cell::from(a.clone_failed),
                Cell::from(a.loop_guarded),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::diag::model::{
        AttachmentReport, ComparisonReport, GroupReport, LedgerReport, ShadowReport,
    };

    /// A report with every section filled, names that need escaping, and one ledger that
    /// does not balance.
    fn sample() -> Report {
        let side = |count, p50| SideReport {
            count,
            classes: BTreeMap::from([("2xx".to_string(), count)]),
            p50_ms: p50,
            p90_ms: p50,
            p99_ms: None,
            distribution: p50
                .map(|ms| vec![(0.5, ms), (0.9, ms * 4.0)])
                .unwrap_or_default(),
        };
        Report {
            version: "1.2.3".into(),
            ready: false,
            capture: vec!["198.18.0.2:80".into(), "port 8080 at any address".into()],
            capture_services: vec![("a:80".into(), "198.18.0.2:80".into())],
            kubernetes: vec![crate::kubernetes::WatchReport {
                resource: "services".into(),
                required: true,
                listed: false,
                errors: 3,
                last_error: Some("connection <refused>".into()),
            }],
            attachments: vec![AttachmentReport {
                interface: "eth<0>".into(),
                hook: "ingress".into(),
                seen: 10,
                cloned: 4,
                clone_failed: 1,
                loop_guarded: 2,
            }],
            route_table: vec![
                GroupReport {
                    rkey: "a.default.1".into(),
                    criteria: "prefix /a/ & \"x\"".into(),
                    production: vec!["a -> a:80".into(), "b -> b:80".into()],
                    shadow: Some(ShadowReport {
                        mapping: "a-shadow".into(),
                        service: "a-shadow:80".into(),
                        weight: 30,
                    }),
                    sources: vec!["a: Service default/a, document 1, line 1".into()],
                },
                GroupReport {
                    rkey: "c.default.1".into(),
                    criteria: "prefix /c/".into(),
                    production: vec![],
                    shadow: None,
                    sources: vec![],
                },
            ],
            errors: vec![("a.default.1".into(), "bad <regex>".into())],
            notices: vec![],
            ledger: vec![
                LedgerReport {
                    mapping: "a-shadow".into(),
                    observed: 10,
                    copied: 7,
                    sampled_out: 2,
                    dropped: BTreeMap::from([("timeout".to_string(), 1)]),
                    in_flight: 0,
                    balanced: true,
                },
                LedgerReport {
                    mapping: "b&shadow".into(),
                    observed: 3,
                    balanced: false,
                    ..LedgerReport::default()
                },
            ],
            comparison: vec![ComparisonReport {
                mapping: "a-shadow".into(),
                production: side(7, Some(1.5)),
                shadow: side(7, None),
                compared: 7,
                status_class_differences: 2,
            }],
            diff: vec![crate::diff::MappingReport {
                mapping: "a-shadow".into(),
                compared: 4,
                different: 4,
                flagged: 1,
                relative_threshold: 0.2,
                absolute_threshold: 0.0003,
                endpoints: vec![crate::diff::report::EndpointReport {
                    endpoint: "GET /a/{id}".into(),
                    compared: 4,
                    equal: 0,
                    different: 4,
                    noise_compared: 2,
                    reference_compared: 0,
                    fields_left_out: 0,
                    fields: vec![
                        crate::diff::report::FieldReport {
                            field: "$.price".into(),
                            difference_rate: 0.5,
                            noise_rate: 0.0,
                            flagged: true,
                            samples: vec![crate::diff::report::SampleReport {
                                production: Some("10".into()),
                                shadow: Some("<11>".into()),
                                request: "curl -X 'GET' 'http://a/a/1'".into(),
                                text_diff: None,
                                ..Default::default()
                            }],
                        },
                        crate::diff::report::FieldReport {
                            field: "$.at".into(),
                            difference_rate: 1.0,
                            noise_rate: 1.0,
                            flagged: false,
                            samples: vec![],
                        },
                    ],
                }],
            }],
        }
    }

    #[test]
    fn every_section_is_a_table_of_escaped_cells_with_what_is_wrong_marked() {
        let page = render(&sample());
        for id in [
            "comparison",
            "ledger",
            "routes",
            "errors",
            "notices",
            "capture",
            "diff",
        ] {
            assert_eq!(
                page.matches(&format!("<table id=\"{id}\">")).count(),
                1,
                "{id}"
            );
        }
        for cell in [
            "<td>eth&lt;0&gt;</td>",
            "<td>b&amp;shadow</td>",
            "<td>bad &lt;regex&gt;</td>",
            "<td>prefix /a/ &amp; &quot;x&quot;</td>",
            "<td>a -&gt; a:80; b -&gt; b:80</td>",
            "<td>a-shadow → a-shadow:80, weight 30%</td><td>a: Service default/a, document 1, line 1</td>",
            "<td>none (not copied)</td>",
            "<td class=\"bad\">2 of 7</td>",
            "<td class=\"ok\">yes</td>",
            "<td class=\"bad\">NO</td>",
            "<td>timeout: 1</td>",
            "<td>1.50</td>",
            "<td>–</td>",
            "<h2>Errors (1)</h2>",
            "<p>capture: 198.18.0.2:80, port 8080 at any address</p>",
            "<td>a:80</td><td>198.18.0.2:80</td>",
            "<td>services</td><td class=\"bad\">NO</td><td>3</td><td>connection &lt;refused&gt;</td>",
            "<span class=\"bad\">not ready</span>",
            "<div id=\"latency\"><svg",
            "<polyline class=\"production\"",
            "<td>$.price</td><td>50.00%</td><td>0.00%</td><td class=\"bad\">FLAGGED</td>",
            "<td>$.at</td><td>100.00%</td><td>100.00%</td><td class=\"ok\">noise</td>",
            "<h3>a-shadow · GET /a/{id} · $.price</h3>",
            "shadow: <code class=\"bad\">&lt;11&gt;</code>",
            "<pre>curl -X 'GET' 'http://a/a/1'</pre>",
        ] {
            assert!(page.contains(cell), "{cell} in {page}");
        }
        assert!(!page.contains("<regex>") && !page.contains("eth<0>"));
    }
}
