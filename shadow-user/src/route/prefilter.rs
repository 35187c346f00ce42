//! An index over literal prefixes, so that a request is checked only against the groups
//! whose prefix it starts with. It gives exactly the plain scan's answer: the first group
//! in match order whose criteria all match.
//!
//! A regex prefix is indexed under the literal text every match of it starts with
//! (`/users/` for `/users/\d+`); one with none (`.*`, `(?i)/a`, `/a|/b`) is checked
//! against every request.

use super::{matcher::Req, plan::Group, request::RequestView};

/// Byte tries of the literal prefixes (one exact, one ASCII case-folded), and the groups
/// whose prefix is a regex with no literal start, which every request is checked against.
#[derive(Debug, Clone, Default)]
pub(super) struct Prefilter {
    exact: Trie,
    folded: Trie,
    /// Positions of the groups whose regex prefix has no literal start, ascending.
    unindexed: Vec<u32>,
}

impl Prefilter {
    /// Indexes `groups`, which are in match order.
    pub fn new(groups: &[Group]) -> Self {
        let mut index = Self::default();
        for (position, group) in groups.iter().enumerate() {
            let position = u32::try_from(position).expect("fewer than 2^32 groups");
            let c = &group.criteria;
            match (c.prefix_regex, c.case_sensitive) {
                (true, _) => match literal_start(&c.prefix) {
                    "" => index.unindexed.push(position),
                    literal => index.exact.insert(literal.bytes(), position),
                },
                (false, true) => index.exact.insert(c.prefix.bytes(), position),
                (false, false) => index
                    .folded
                    .insert(c.prefix.bytes().map(|b| b.to_ascii_lowercase()), position),
            }
        }
        index
    }

    /// Position of the first group in `groups` that `req` matches.
    pub fn first_match<R: RequestView + ?Sized>(
        &self,
        groups: &[Group],
        req: &Req<'_, R>,
    ) -> Option<usize> {
        let mut best = u32::MAX;
        let mut consider = |candidates: &[u32]| {
            // Ascending: the first that matches is the best this list has.
            for &position in candidates {
                if position >= best {
                    break;
                }
                if groups[position as usize].matches_req(req) {
                    best = position;
                    break;
                }
            }
        };
        self.exact.walk(req.path.iter().copied(), &mut consider);
        self.folded
            .walk(req.path.iter().map(u8::to_ascii_lowercase), &mut consider);
        consider(&self.unindexed);
        (best != u32::MAX).then_some(best as usize)
    }
}

/// Text that every whole match of `pattern` starts with: its leading plain characters
/// (letters, digits, `/`, `-`, `_`), less the last if a quantifier follows it. Empty when
/// the pattern has an alternation anywhere, as a branch may start differently; a leading
/// flag group, class, escape or anchor also gives none.
fn literal_start(pattern: &str) -> &str {
    if pattern.contains('|') {
        return "";
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_');
    let end = pattern.find(|c| !plain(c)).unwrap_or(pattern.len());
    match pattern[end..].chars().next() {
        // The last plain character is optional or repeated: only what comes before it is
        // certain. (All of them are ASCII, one byte each.)
        Some('?' | '*' | '+' | '{') => &pattern[..end.saturating_sub(1)],
        _ => &pattern[..end],
    }
}

/// A byte trie; each node lists the groups whose prefix ends there.
#[derive(Debug, Clone)]
struct Trie {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    /// Ascending.
    groups: Vec<u32>,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
        }
    }
}

impl Trie {
    /// Adds `position` under `key`; positions must be added in ascending order.
    fn insert(&mut self, key: impl Iterator<Item = u8>, position: u32) {
        let mut node = 0;
        for byte in key {
            node = match self.nodes[node]
                .children
                .binary_search_by_key(&byte, |c| c.0)
            {
                Ok(i) => self.nodes[node].children[i].1 as usize,
                Err(i) => {
                    let child = u32::try_from(self.nodes.len()).expect("fewer than 2^32 nodes");
                    self.nodes[node].children.insert(i, (byte, child));
                    self.nodes.push(Node::default());
                    child as usize
                }
            };
        }
        self.nodes[node].groups.push(position);
    }

    /// Calls `visit` with the groups of every node on `path`'s way down: those whose prefix
    /// `path` starts with.
    fn walk(&self, path: impl Iterator<Item = u8>, visit: &mut impl FnMut(&[u32])) {
        let mut node = &self.nodes[0];
        if node.children.is_empty() && node.groups.is_empty() {
            return;
        }
        visit(&node.groups);
        for byte in path {
            match node.children.binary_search_by_key(&byte, |c| c.0) {
                Ok(i) => node = &self.nodes[node.children[i].1 as usize],
                Err(_) => return,
            }
            if !node.groups.is_empty() {
                visit(&node.groups);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::literal_start;

    #[test]
    fn literal_start_is_what_every_match_begins_with() {
        let cases = [
            (r"/users/\d+", "/users/"),
            ("/a.*", "/a"),
            ("/A/?", "/A"),
            ("/ab*", "/a"),
            ("/ab+", "/a"),
            ("/ab{0,2}", "/a"),
            ("/b/a", "/b/a"),
            ("/[ab]+", "/"),
            ("/a|/b", ""),
            ("/x/(a|b)", ""),
            ("(?i)/a", ""),
            ("^/a", ""),
            (r"\/a", ""),
            (".*", ""),
            ("", ""),
        ];
        for (pattern, literal) in cases {
            assert_eq!(literal_start(pattern), literal, "{pattern}");
        }
    }
}
