//! Responses kept for response diffing: the final head's status and fields, and the body
//! with its chunk framing undone (content codings are the differ's to undo), whole up to a
//! per-body limit, else only its length and SHA-256. Bodies kept whole take from one byte
//! budget shared by every holder, given back when the body is dropped; a body that finds no
//! room is digested instead, so memory stays bounded whatever the traffic.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use sha2::{Digest as _, Sha256};

use super::SharedBudget;

/// Default of the per-body limit a Mapping diffs with.
pub const DEFAULT_KEPT_BODY_BYTES: usize = 1 << 20;
/// Default budget of bodies kept at once, all holders together.
pub const DEFAULT_KEPT_TOTAL_BYTES: usize = 64 << 20;

/// Whether, and how much of, responses are kept: shared by the flows of a table and the
/// replay client, switched as the configuration asks.
#[derive(Debug, Clone)]
pub struct Keeping {
    /// Longest body kept whole; 0: responses are not kept at all.
    per_body: Arc<AtomicUsize>,
    /// What bodies kept whole take from.
    pub budget: SharedBudget,
}

impl Default for Keeping {
    fn default() -> Self {
        Keeping::new(DEFAULT_KEPT_TOTAL_BYTES)
    }
}

impl Keeping {
    /// Off, with a budget of `total` bytes.
    pub fn new(total: usize) -> Keeping {
        Keeping {
            per_body: Arc::new(AtomicUsize::new(0)),
            budget: SharedBudget::new(total),
        }
    }

    /// Keeps bodies up to `per_body` bytes from now on (0: keeps nothing).
    pub fn set(&self, per_body: usize) {
        self.per_body.store(per_body, Ordering::Relaxed);
    }

    /// The per-body limit, if responses are kept.
    pub fn per_body(&self) -> Option<usize> {
        Some(self.per_body.load(Ordering::Relaxed)).filter(|limit| *limit > 0)
    }

    /// A keeper for the next body, if responses are kept.
    pub fn keeper(&self) -> Option<BodyKeeper> {
        Some(BodyKeeper::new(self.per_body()?, self.budget.clone()))
    }
}

/// A response as kept.
#[derive(Debug, PartialEq, Eq)]
pub struct KeptResponse {
    /// The status code.
    pub status: u16,
    /// The head's fields, in order, values as received (not decoded as UTF-8 bytes that
    /// are not, which are replaced).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: KeptBody,
}

/// A body as kept.
#[derive(Debug, PartialEq, Eq)]
pub enum KeptBody {
    /// Whole: its bytes, holding their share of the budget.
    Whole(KeptBytes),
    /// Too long to keep (or no room in the budget): its length and SHA-256, with its chunk
    /// framing undone but content codings still applied.
    Digest {
        /// Bytes.
        length: u64,
        /// SHA-256 of them.
        sha256: [u8; 32],
    },
}

/// Body bytes that give their budget share back when dropped.
#[derive(Debug)]
pub struct KeptBytes {
    bytes: Vec<u8>,
    budget: SharedBudget,
    charged: usize,
}

impl KeptBytes {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq for KeptBytes {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for KeptBytes {}

impl Drop for KeptBytes {
    fn drop(&mut self) {
        self.budget.give_back(self.charged);
    }
}

/// Collects one body's de-chunked bytes as they are read.
#[derive(Debug)]
pub struct BodyKeeper {
    limit: usize,
    kept: KeptBytes,
    length: u64,
    /// Set once the body is digested instead of kept.
    hasher: Option<Sha256>,
}

impl BodyKeeper {
    /// Keeps up to `limit` bytes whole, taking them from `budget`.
    pub fn new(limit: usize, budget: SharedBudget) -> BodyKeeper {
        BodyKeeper {
            limit,
            kept: KeptBytes {
                bytes: Vec::new(),
                budget,
                charged: 0,
            },
            length: 0,
            hasher: None,
        }
    }

    /// The next bytes of the body.
    pub fn push(&mut self, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        self.length += payload.len() as u64;
        if self.hasher.is_none() {
            let wanted = self.kept.bytes.len() + payload.len();
            let room = wanted <= self.limit
                && (wanted <= self.kept.charged || self.charge(wanted - self.kept.charged));
            if room {
                self.kept.bytes.extend_from_slice(payload);
                return;
            }
            // From here on the body is only digested: what was kept goes first.
            let mut hasher = Sha256::new();
            hasher.update(&self.kept.bytes);
            self.kept.bytes = Vec::new();
            self.kept
                .budget
                .give_back(std::mem::take(&mut self.kept.charged));
            self.hasher = Some(hasher);
        }
        if let Some(hasher) = &mut self.hasher {
            hasher.update(payload);
        }
    }

    /// Takes `more` bytes from the budget, in steps that grow with the body (fewer atomic
    /// updates), never past the per-body limit.
    fn charge(&mut self, more: usize) -> bool {
        let step = more
            .max(self.kept.charged)
            .max(4096)
            .min(self.limit - self.kept.charged);
        if self.kept.budget.take(step) {
            self.kept.charged += step;
            return true;
        }
        if step > more && self.kept.budget.take(more) {
            self.kept.charged += more;
            return true;
        }
        false
    }

    /// The body, once read to its end.
    pub fn finish(self) -> KeptBody {
        match self.hasher {
            Some(hasher) => KeptBody::Digest {
                length: self.length,
                sha256: hasher.finalize().into(),
            },
            None => KeptBody::Whole(self.kept),
        }
    }
}

/// The fields of a response head (status line first), lowercase names kept as received;
/// `None` if `head` is not a complete response head.
pub fn head_fields(head: &[u8]) -> Option<(u16, Vec<(String, String)>)> {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    // As many fields as a head the reader took may hold; counted first, so no slot array
    // is sized by guesswork.
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines];
    let mut response = httparse::Response::new(&mut slots);
    match config.parse_response(&mut response, head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let fields = response
        .headers
        .iter()
        .map(|header| {
            (
                header.name.to_string(),
                String::from_utf8_lossy(header.value).into_owned(),
            )
        })
        .collect();
    Some((response.code?, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: KeptBody) -> Vec<u8> {
        match body {
            KeptBody::Whole(kept) => kept.bytes().to_vec(),
            KeptBody::Digest { length, .. } => panic!("digested, {length} bytes"),
        }
    }

    #[test]
    fn a_body_within_the_limit_is_kept_whole_and_gives_its_budget_back() {
        let budget = SharedBudget::new(1 << 20);
        let mut keeper = BodyKeeper::new(100, budget.clone());
        keeper.push(b"hello ");
        keeper.push(b"world");
        assert!(budget.used() >= 11 && budget.used() <= 100);
        let body = keeper.finish();
        assert_eq!(whole(body), b"hello world");
        assert_eq!(budget.used(), 0, "given back when dropped");
    }

    #[test]
    fn a_body_over_the_limit_is_digested_whole() {
        let budget = SharedBudget::new(1 << 20);
        let mut keeper = BodyKeeper::new(8, budget.clone());
        keeper.push(b"0123");
        keeper.push(b"456789");
        keeper.push(b"abc");
        assert_eq!(budget.used(), 0);
        match keeper.finish() {
            KeptBody::Digest { length, sha256 } => {
                assert_eq!(length, 13);
                assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(b"0123456789abc")));
            }
            KeptBody::Whole(_) => panic!("kept"),
        }
    }

    #[test]
    fn with_no_room_in_the_budget_a_body_is_digested() {
        let budget = SharedBudget::new(10);
        let first = {
            let mut keeper = BodyKeeper::new(100, budget.clone());
            keeper.push(b"0123456789");
            keeper.finish()
        };
        let mut second = BodyKeeper::new(100, budget.clone());
        second.push(b"x");
        assert!(matches!(
            second.finish(),
            KeptBody::Digest { length: 1, .. }
        ));
        drop(first);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn keeping_is_off_until_set() {
        let keeping = Keeping::default();
        assert!(keeping.keeper().is_none());
        keeping.set(10);
        assert_eq!(keeping.per_body(), Some(10));
        keeping.set(0);
        assert!(keeping.keeper().is_none());
    }

    #[test]
    fn head_fields_in_order() {
        let (status, fields) =
            head_fields(b"HTTP/1.1 201 Created\r\nContent-Type: a/b\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
                .unwrap();
        assert_eq!(status, 201);
        assert_eq!(
            fields,
            [
                ("Content-Type".to_string(), "a/b".to_string()),
                ("X-A".into(), "1".into()),
                ("x-a".into(), "2".into())
            ]
        );
        assert!(head_fields(b"HTTP/1.1 200 OK\r\n").is_none());
    }
}
