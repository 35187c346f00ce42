//! Reads Prometheus/OpenMetrics text exposition into samples a test can query.

use std::collections::BTreeMap;

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with its suffix (`_total`, `_bucket`…).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample line, in the order read.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses exposition text; panics on a malformed sample line (the test should fail).
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("malformed sample: {line:?}")))
            .collect();
        Scrape { samples }
    }

    /// Sum of the samples named `name` whose labels include every pair of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(Sample::count)
            .sum()
    }
}

impl Sample {
    /// The value as a count; panics unless it is a whole number of at least zero. Every
    /// figure the tests sum counts something: a gauge below zero (more requests leaving
    /// flight than entered) is a bug that must fail the test, not read as 0 and satisfy a
    /// wait for `== 0`.
    pub fn count(&self) -> u64 {
        assert!(
            self.value >= 0.0 && self.value.fract() == 0.0 && self.value < u64::MAX as f64,
            "{}{:?} is {}, not a count",
            self.name,
            self.labels,
            self.value
        );
        self.value as u64
    }
}

impl Scrape {
    /// Sum of the replay counter `shadowd_replay_<counter>` of one mapping.
    pub fn replay(&self, counter: &str, mapping: &str) -> u64 {
        self.sum(
            &format!("shadowd_replay_{counter}"),
            &[("mapping", mapping)],
        )
    }

    /// The loss ledger of `mapping` as the scrape shows it.
    pub fn ledger(&self, mapping: &str) -> MappingLedger {
        let mut dropped = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| {
            s.name == "shadowd_replay_dropped_requests_total"
                && s.labels.get("mapping").map(String::as_str) == Some(mapping)
        }) {
            let reason = sample.labels.get("reason").cloned().unwrap_or_default();
            *dropped.entry(reason).or_default() += sample.count();
        }
        dropped.retain(|_, n| *n > 0);
        MappingLedger {
            observed: self.replay("observed_requests_total", mapping),
            copied: self.replay("copied_requests_total", mapping),
            sampled_out: self.replay("sampled_out_requests_total", mapping),
            dropped,
            in_flight: self.replay("in_flight_requests", mapping),
        }
    }

    /// Panics unless the loss ledger of `mapping` balances.
    pub fn assert_ledger_balances(&self, mapping: &str) {
        let ledger = self.ledger(mapping);
        assert_eq!(ledger.imbalance(), 0, "ledger of {mapping}: {ledger}");
    }

    /// Values of `name` summed by the value of `label`, zeros left out.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.name == name) {
            let key = sample.labels.get(label).cloned().unwrap_or_default();
            *out.entry(key).or_default() += sample.count();
        }
        out.retain(|_, v| *v > 0);
        out
    }
}

/// The loss ledger of one Mapping, read from outside the daemon (the tests' and the bench's
/// own reading, apart from the daemon's /diag): every request observed is copied, sampled
/// out, dropped for a reason or still in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MappingLedger {
    /// Requests of the Mapping shadowd saw.
    pub observed: u64,
    /// Copies the shadow answered.
    pub copied: u64,
    /// Requests the weight left out.
    pub sampled_out: u64,
    /// By reason, zeros left out.
    pub dropped: BTreeMap<String, u64>,
    /// Copies on their way.
    pub in_flight: u64,
}

impl MappingLedger {
    /// The drops of every reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// observed − (copied + sampled out + dropped + in flight): zero when it balances.
    pub fn imbalance(&self) -> i64 {
        self.observed as i64
            - (self.copied + self.sampled_out + self.dropped_total() + self.in_flight) as i64
    }
}

impl std::fmt::Display for MappingLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "observed {} = copied {} + sampled out {} + dropped {} {:?} + in flight {}",
            self.observed,
            self.copied,
            self.sampled_out,
            self.dropped_total(),
            self.dropped,
            self.in_flight
        )?;
        match self.imbalance() {
            0 => Ok(()),
            n => write!(f, " (IMBALANCE {n})"),
        }
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => value.push(chars.next()?.1),
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_sums() {
        let text = "# HELP x y\nx_total{a=\"1\",b=\"q\\\"\"} 3\nx_total{a=\"2\"} 4\ny 1\n# EOF\n";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.sum("x_total", &[]), 7);
        assert_eq!(scrape.sum("x_total", &[("a", "1")]), 3);
        assert_eq!(scrape.samples[0].labels["b"], "q\"");
        assert_eq!(scrape.sum("y", &[]), 1);
    }

    #[test]
    #[should_panic(expected = "not a count")]
    fn a_gauge_below_zero_fails_the_sum() {
        let scrape = Scrape::parse("in_flight{m=\"a\"} 2\nin_flight{m=\"b\"} -1\n");
        scrape.sum("in_flight", &[]);
    }

    #[test]
    #[should_panic(expected = "not a count")]
    fn a_gauge_below_zero_fails_by_label() {
        Scrape::parse("in_flight{m=\"b\"} -1\n").by_label("in_flight", "m");
    }
}
