//! What a shadow should have received: the production requests under a prefix, with the
//! Host value changed by the `-shadow` suffix rule and nothing else.

use std::collections::BTreeMap;

/// The request target of a raw request.
pub fn target(raw: &[u8]) -> String {
    let line_end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..line_end])
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// `host` with `-shadow` after its host part and before its port, as Envoy names a mirrored
/// request's host. An oracle for shadowd's own rule, so written apart from it: this splits the
/// authority by its grammar (an IP literal in brackets, else a name or address and an optional
/// `:port`) where shadowd searches for the last colon with no bracket after it.
pub fn shadow_host(host: &str) -> String {
    let (name, port) = if host.starts_with('[') {
        let literal_end = host.find(']').map_or(host.len(), |end| end + 1);
        host.split_at(literal_end)
    } else {
        host.rsplit_once(':')
            .map_or((host, ""), |(name, _)| host.split_at(name.len()))
    };
    format!("{name}-shadow{port}")
}

/// The copy a shadow should receive of `raw`: the first Host field's value suffixed.
pub fn expected_copy(raw: &[u8]) -> Vec<u8> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let mut at = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(head_end, |p| p + 2);
    while at + 2 < head_end {
        let end = at
            + raw[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("line end");
        let line = &raw[at..end];
        if let Some(colon) = line.iter().position(|b| *b == b':')
            && line[..colon].eq_ignore_ascii_case(b"host")
        {
            let value_start =
                at + colon + 1 + line[colon + 1..].iter().take_while(|b| **b == b' ').count();
            let value = String::from_utf8_lossy(&raw[value_start..end])
                .trim_end()
                .to_string();
            let value_end = value_start + value.len();
            let mut copy = raw[..value_start].to_vec();
            copy.extend_from_slice(shadow_host(&value).as_bytes());
            copy.extend_from_slice(&raw[value_end..]);
            return copy;
        }
        at = end + 2;
    }
    raw.to_vec()
}

/// Counts of equal items.
pub fn multiset<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_suffix_cases() {
        assert_eq!(shadow_host("myservice"), "myservice-shadow");
        assert_eq!(shadow_host("myservice:80"), "myservice-shadow:80");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
        assert_eq!(shadow_host("198.18.0.2:8080"), "198.18.0.2-shadow:8080");
        assert_eq!(shadow_host("[fd00::2]:8080"), "[fd00::2]-shadow:8080");
        assert_eq!(
            expected_copy(b"GET / HTTP/1.1\r\nX: y\r\nhOST: a:1\r\n\r\n"),
            b"GET / HTTP/1.1\r\nX: y\r\nhOST: a-shadow:1\r\n\r\n".to_vec()
        );
        assert_eq!(
            expected_copy(b"GET / HTTP/1.0\r\n\r\n"),
            b"GET / HTTP/1.0\r\n\r\n".to_vec()
        );
    }
}
