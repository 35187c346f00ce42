//! `/diag` as a plain HTML page: readable in any browser, no JavaScript.

use std::fmt::Write as _;

use super::model::{Report, SideReport};

/// Escapes text for HTML.
fn esc(text: &str) -> String {
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
         .bad{{color:#a00;font-weight:bold}}.ok{{color:#070}}</style></head><body>\
         <h1>shadowd {} — {}</h1>",
        esc(&report.version),
        if report.ready {
            "<span class=\"ok\">ready</span>"
        } else {
            "<span class=\"bad\">not ready</span>"
        }
    );

    h.push_str("<h2>Production vs shadow</h2><table id=\"comparison\"><tr><th>mapping</th><th>side</th><th>responses</th><th>status classes</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>status class differs</th></tr>");
    for c in &report.comparison {
        for (side, data, differs) in [
            (
                "production",
                &c.production,
                format!("{} of {}", c.status_class_differences, c.compared),
            ),
            ("shadow", &c.shadow, String::new()),
        ] {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{side}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>",
                esc(&c.mapping),
                data.count,
                esc(&classes(data)),
                ms(data.p50_ms),
                ms(data.p90_ms),
                ms(data.p99_ms),
                if c.status_class_differences > 0 && side == "production" {
                    " class=\"bad\""
                } else {
                    ""
                },
                differs
            );
        }
    }
    h.push_str("</table>");

    h.push_str("<h2>Loss ledger</h2><table id=\"ledger\"><tr><th>mapping</th><th>observed</th><th>copied</th><th>sampled out</th><th>dropped</th><th>in flight</th><th>balances</th></tr>");
    for l in &report.ledger {
        let dropped = if l.dropped.is_empty() {
            "0".to_string()
        } else {
            l.dropped
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&l.mapping),
            l.observed,
            l.copied,
            l.sampled_out,
            esc(&dropped),
            l.in_flight,
            if l.balanced { "ok" } else { "bad" },
            if l.balanced { "yes" } else { "NO" }
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Route table</h2><table id=\"routes\"><tr><th>#</th><th>group</th><th>match</th><th>production</th><th>shadow</th></tr>");
    for (i, g) in report.route_table.iter().enumerate() {
        let shadow = g.shadow.as_ref().map_or_else(
            || "none (not copied)".to_string(),
            |s| format!("{} → {}, weight {}%", s.mapping, s.service, s.weight),
        );
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(&g.rkey),
            esc(&g.criteria),
            esc(&g.production.join("; ")),
            esc(&shadow)
        );
    }
    h.push_str("</table>");

    for (title, id, entries) in [
        ("Errors", "errors", &report.errors),
        ("Notices", "notices", &report.notices),
    ] {
        let _ = write!(
            h,
            "<h2>{title} ({})</h2><table id=\"{id}\"><tr><th>rkey</th><th>message</th></tr>",
            entries.len()
        );
        for (rkey, message) in entries {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(rkey),
                esc(message)
            );
        }
        h.push_str("</table>");
    }

    let _ = write!(
        h,
        "<h2>Capture</h2><p>ports: {}</p><table id=\"capture\"><tr><th>interface</th><th>hook</th><th>seen</th><th>cloned</th><th>clone failed</th><th>loop guarded</th></tr>",
        report
            .capture_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for a in &report.attachments {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.interface),
            esc(&a.hook),
            a.seen,
            a.cloned,
            a.clone_failed,
            a.loop_guarded
        );
    }
    h.push_str("</table><p><a href=\"/diag?json=true\">JSON</a> · <a href=\"/metrics\">metrics</a></p></body></html>\n");
    h
}
