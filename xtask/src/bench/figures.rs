//! The report's figures, drawn as SVG beside report.md: each scenario's throughput as a share
//! of A's, and each scenario's latency percentiles at each fixed rate. Plain SVG written out
//! (bars, labels and a scale), so any browser, GitHub and the README show them.

use std::fmt::Write as _;

use super::{
    report::Report,
    scenario::{Placement, Scenario},
    summary::ratio,
};

const BAR: f64 = 18.0;
const GAP: f64 = 6.0;
const LABEL: f64 = 120.0;
const PLOT: f64 = 420.0;
const RIGHT: f64 = 80.0;
const COLOURS: [&str; 3] = ["#1f77b4", "#ff7f0e", "#2ca02c"];

/// How bar lengths follow values.
#[derive(Clone, Copy)]
enum Scale {
    /// From 0 to the largest value.
    Linear,
    /// Decades from this value to the largest: latencies that span a thousandfold stay
    /// readable side by side.
    Log { from: f64 },
}

/// A horizontal bar chart: one bar per `(label, value)`, scaled to `max`, the value written
/// beside it as `text` says.
fn bars(
    title: &str,
    rows: &[(String, f64, String, usize)],
    max: f64,
    scale: Scale,
    mark: Option<f64>,
) -> String {
    let height = 40.0 + rows.len() as f64 * (BAR + GAP) + 10.0;
    let width = LABEL + PLOT + RIGHT;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\
         <title>{title}</title><text x=\"4\" y=\"18\" font-size=\"14\">{title}</text>"
    );
    let share = |value: f64| match scale {
        Scale::Linear => value / max,
        Scale::Log { from } => (value.max(from) / from).log10() / (max / from).log10().max(1.0),
    };
    let x = |value: f64| LABEL + share(value).clamp(0.0, 1.0) * PLOT;
    for (i, (label, value, text, colour)) in rows.iter().enumerate() {
        let y = 32.0 + i as f64 * (BAR + GAP);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR}\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            LABEL - 6.0,
            y + BAR - 5.0,
            x(*value) - LABEL,
            COLOURS[*colour % COLOURS.len()],
            x(*value) + 4.0,
            y + BAR - 5.0
        );
    }
    if let Some(mark) = mark {
        let _ = write!(
            svg,
            "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"28\" y2=\"{}\" stroke=\"#333\" \
             stroke-dasharray=\"4 3\"/>",
            height - 8.0,
            at = x(mark)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

impl Report {
    /// Throughput of each scenario as a share of A's, pinned then unpinned; a dashed line
    /// at A.
    pub(super) fn throughput_figure(&self) -> String {
        let mut rows = Vec::new();
        for (colour, placement) in [Placement::Pinned, Placement::Unpinned]
            .into_iter()
            .enumerate()
        {
            let base = self.throughput.median(placement, Scenario::A);
            for scenario in [
                Scenario::A,
                Scenario::B,
                Scenario::BIdle,
                Scenario::BMirror,
                Scenario::C,
            ] {
                let Some(share) = ratio(self.throughput.median(placement, scenario), base) else {
                    continue;
                };
                rows.push((
                    format!("{} {}", scenario.name(), placement.name()),
                    share,
                    format!("{share:.2}"),
                    colour,
                ));
            }
        }
        bars(
            "saturated throughput, share of A's (wrk)",
            &rows,
            1.1,
            Scale::Linear,
            Some(1.0),
        )
    }

    /// Each scenario's p50, p99 and p99.9 latency at each fixed rate, in ms.
    pub(super) fn latency_figure(&self) -> String {
        let mut rows = Vec::new();
        for latency in &self.latency {
            for scenario in super::latency::LIGHT_SCENARIOS {
                for (colour, (name, figure)) in [
                    (
                        "p50",
                        (|r: &super::load::RateResult| r.p50_ms) as fn(&_) -> f64,
                    ),
                    ("p99", |r| r.p99_ms),
                    ("p99.9", |r| r.p99_9_ms),
                ]
                .into_iter()
                .enumerate()
                {
                    if let Some(ms) = latency.median(scenario, figure) {
                        rows.push((
                            format!("{} {name} @{}k", scenario.name(), latency.rate / 1000),
                            ms,
                            format!("{ms:.2} ms"),
                            colour,
                        ));
                    }
                }
            }
        }
        let max = rows.iter().map(|row| row.1).fold(0.0, f64::max).max(0.001);
        bars(
            "latency at fixed rates (ms, oha; log scale from 0.1 ms)",
            &rows,
            max,
            Scale::Log { from: 0.1 },
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_largest_and_labelled() {
        let rows = vec![
            ("A".to_string(), 1.0, "1.00".to_string(), 0),
            ("B".to_string(), 0.5, "0.50".to_string(), 1),
        ];
        let svg = bars("t", &rows, 1.0, Scale::Linear, Some(1.0));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains(&format!("width=\"{PLOT:.1}\"")),
            "A spans the plot: {svg}"
        );
        assert!(
            svg.contains(&format!("width=\"{:.1}\"", PLOT / 2.0)),
            "B half: {svg}"
        );
        assert!(svg.contains(">0.50<") && svg.contains("stroke-dasharray"));
        // On a log scale from 0.1, 1 is halfway to 10.
        let rows = vec![
            ("A".to_string(), 10.0, "10".to_string(), 0),
            ("B".to_string(), 1.0, "1".to_string(), 1),
        ];
        let svg = bars("t", &rows, 10.0, Scale::Log { from: 0.1 }, None);
        assert!(
            svg.contains(&format!("width=\"{:.1}\"", PLOT / 2.0)),
            "{svg}"
        );
    }
}
