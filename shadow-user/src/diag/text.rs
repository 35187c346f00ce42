//! `shadowd status`: the report as terminal tables.

use std::fmt::Write as _;

use super::model::Report;

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// Renders the side-by-side table, the ledger and the diagnostics count.
pub fn render(report: &Report) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "shadowd {} ({}), capture {}",
        report.version,
        if report.ready { "ready" } else { "NOT READY" },
        report.capture.join(", ")
    );
    let _ = writeln!(t, "\nproduction vs shadow");
    let _ = writeln!(
        t,
        "{:<28} {:<10} {:>9} {:>9} {:>9} {:>9}  status classes",
        "mapping", "side", "responses", "p50 ms", "p90 ms", "p99 ms"
    );
    for c in &report.comparison {
        for (side, data) in [("production", &c.production), ("shadow", &c.shadow)] {
            let classes = data
                .classes
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                t,
                "{:<28} {:<10} {:>9} {:>9} {:>9} {:>9}  {}",
                c.mapping,
                side,
                data.count,
                ms(data.p50_ms),
                ms(data.p90_ms),
                ms(data.p99_ms),
                classes
            );
        }
        let _ = writeln!(
            t,
            "{:<28} status class differs on {} of {} compared requests",
            "", c.status_class_differences, c.compared
        );
    }
    let _ = writeln!(
        t,
        "\nloss ledger (observed = copied + sampled out + dropped + in flight)"
    );
    let _ = writeln!(
        t,
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}  balances",
        "mapping", "observed", "copied", "sampled", "dropped", "in flight"
    );
    for l in &report.ledger {
        let _ = writeln!(
            t,
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            l.mapping,
            l.observed,
            l.copied,
            l.sampled_out,
            l.dropped_total(),
            l.in_flight,
            if l.balanced { "yes" } else { "NO" }
        );
        for (reason, n) in &l.dropped {
            let _ = writeln!(t, "{:<28}   dropped ({reason}): {n}", "");
        }
    }
    let _ = writeln!(
        t,
        "\n{} errors, {} notices (see /diag)",
        report.errors.len(),
        report.notices.len()
    );
    for (rkey, message) in &report.errors {
        let _ = writeln!(t, "  error [{rkey}] {message}");
    }
    t
}
