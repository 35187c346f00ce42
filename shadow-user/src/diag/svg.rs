//! The latency distributions of `/diag` as a picture: one inline SVG per shadow Mapping, the
//! fraction of responses (up) at or below each latency (across, log scale), production and
//! shadow as two lines. Plain SVG, no JavaScript, as the rest of the page.

use std::fmt::Write as _;

use super::model::ComparisonReport;

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 200.0;
/// Room for the axes' labels.
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 10.0;

/// The colours of the two sides, as the table's legend names them.
const PRODUCTION: &str = "#1f77b4";
const SHADOW: &str = "#ff7f0e";

/// The picture of `comparison`'s two distributions; `None` when neither side answered.
pub fn distributions(comparison: &ComparisonReport) -> Option<String> {
    let points = comparison
        .production
        .distribution
        .iter()
        .chain(&comparison.shadow.distribution);
    let (mut low, mut high) = (f64::INFINITY, 0f64);
    for (_, ms) in points {
        low = low.min(*ms);
        high = high.max(*ms);
    }
    if high <= 0.0 {
        return None;
    }
    // Whole decades around what was measured, so the ticks fall on 0.1, 1, 10 … ms.
    let from = low.max(0.001).log10().floor();
    let to = high.log10().ceil().max(from + 1.0);
    let x = |ms: f64| LEFT + (ms.max(0.001).log10() - from) / (to - from) * (WIDTH - LEFT - RIGHT);
    let y = |fraction: f64| TOP + (1.0 - fraction) * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"latency\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">\
         <title>latency distribution of {}</title>",
        super::html::esc(&comparison.mapping)
    );
    // Axes, with a tick per decade and at 0, 0.5 and 1.
    let _ = write!(
        svg,
        "<path d=\"M{LEFT},{TOP} V{} H{}\" fill=\"none\" stroke=\"#999\"/>",
        HEIGHT - BOTTOM,
        WIDTH - RIGHT
    );
    let mut decade = from;
    while decade <= to {
        let ms = 10f64.powf(decade);
        let at = x(ms);
        let _ = write!(
            svg,
            "<text x=\"{at:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{} ms</text>",
            HEIGHT - BOTTOM + 14.0,
            tick(ms)
        );
        decade += 1.0;
    }
    for fraction in [0.0, 0.5, 1.0] {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{fraction}</text>",
            LEFT - 4.0,
            y(fraction) + 3.0
        );
    }
    for (side, colour, label_y) in [
        (&comparison.production, PRODUCTION, TOP + 10.0),
        (&comparison.shadow, SHADOW, TOP + 24.0),
    ] {
        if side.distribution.is_empty() {
            continue;
        }
        let line: Vec<String> = side
            .distribution
            .iter()
            .map(|(fraction, ms)| format!("{:.1},{:.1}", x(*ms), y(*fraction)))
            .collect();
        let name = if colour == PRODUCTION {
            "production"
        } else {
            "shadow"
        };
        let _ = write!(
            svg,
            "<polyline class=\"{name}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"2\"/><text x=\"{}\" y=\"{label_y}\" font-size=\"11\" \
             fill=\"{colour}\">{name}</text>",
            line.join(" "),
            LEFT + 8.0
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// A decade's label: `0.1`, `1`, `10`, `1000`.
fn tick(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        format!("{}", (ms * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::model::SideReport;

    fn side(distribution: Vec<(f64, f64)>) -> SideReport {
        SideReport {
            distribution,
            ..SideReport::default()
        }
    }

    #[test]
    fn each_side_is_a_line_from_its_fastest_to_its_slowest_response() {
        let comparison = ComparisonReport {
            mapping: "m<1>".into(),
            production: side(vec![(0.5, 1.0), (0.99, 10.0)]),
            shadow: side(vec![(0.5, 2.0), (0.99, 100.0)]),
            ..ComparisonReport::default()
        };
        let svg = distributions(&comparison).expect("a picture");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("latency distribution of m&lt;1&gt;"));
        // Decades from 1 ms to 100 ms across the plot: 1 ms at its left edge, 100 at its
        // right; the median of production at 1 ms halfway up.
        assert!(svg.contains(">1 ms<") && svg.contains(">10 ms<") && svg.contains(">100 ms<"));
        assert!(
            svg.contains("class=\"production\" points=\"40.0,90.0 "),
            "{svg}"
        );
        assert!(svg.contains(" 470.0,11.6\""), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn a_side_without_responses_draws_no_line_and_nothing_at_all_draws_no_picture() {
        let one = ComparisonReport {
            production: side(vec![(0.5, 0.3)]),
            ..ComparisonReport::default()
        };
        let svg = distributions(&one).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains(">0.1 ms<") && svg.contains(">1 ms<"), "{svg}");
        assert!(distributions(&ComparisonReport::default()).is_none());
    }
}
