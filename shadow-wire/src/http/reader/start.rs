//! Where messages start: the line-by-line search for a status line after lost or dropped
//! response bytes, and the incremental reading of a head up to its blank line.

use std::time::SystemTime;

use super::{Reader, State, Step, malformed};
use crate::{
    http::{
        DropReason,
        resync::{self, H2_PREFACE_LINE},
    },
    packet::Direction,
};

impl Reader {
    /// Responses: takes input one line at a time until a line holds a status line.
    pub(super) fn resync(&mut self, input: &mut &[u8], ts: SystemTime) -> Option<Step> {
        if self.pristine && self.buf.is_empty() {
            // Empty lines before the first message are allowed, not a sign of pickup.
            let blank = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            *input = &input[blank..];
        }
        if input.is_empty() {
            return Some(Step::Idle);
        }
        let line_end = input.iter().position(|&b| b == b'\n').map(|i| i + 1);
        let mut take = line_end.unwrap_or(input.len());
        // Only the last max_head_bytes of a line can start a head within the limit.
        let excess = (self.buf.len() + take).saturating_sub(self.limits.max_head_bytes);
        if excess > 0 {
            // What is kept no longer begins at a line start.
            self.suspect = true;
        }
        let from_buf = excess.min(self.buf.len());
        self.skip(from_buf);
        let from_input = excess - from_buf;
        self.skip_input(input, from_input, ts);
        take -= from_input;
        // Not from the parse budget: a response reader searching for a status line keeps
        // at most one line, and skipping one could pair the next answer with the wrong
        // request.
        self.append(&input[..take], ts);
        *input = &input[take..];
        if line_end.is_none() {
            return Some(Step::Idle);
        }
        self.suspect = false;
        match resync::status_line_start(&self.buf) {
            Some(start) => {
                self.skip(start);
                self.message_ts = self.ts_at(0);
                // The buffered line ends with the last input byte taken in this step.
                self.message_start =
                    self.position + (from_input + take) as u64 - self.buf.len() as u64;
                self.pristine = false;
                self.state = State::Head { line_checked: true };
            }
            None => self.skip(self.buf.len()),
        }
        None
    }

    pub(super) fn read_head(
        &mut self,
        line_checked: bool,
        input: &mut &[u8],
        ts: SystemTime,
    ) -> Option<Step> {
        let max = self.limits.max_head_bytes;
        if self.buf.is_empty() {
            // Empty lines before a message are ignored (RFC 9112 §2.2): before a response
            // always; before a request only within its allowance (see `allow_blank_lines`).
            let blank = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let skip = match self.side {
                Direction::Request => blank.min(usize::from(self.blank_allowance)),
                Direction::Response => blank,
            };
            self.blank_allowance -= skip.min(usize::from(self.blank_allowance)) as u8;
            if self.side == Direction::Request {
                self.trailing_blanks += skip as u8;
            }
            *input = &input[skip..];
            if blank > skip {
                return Some(self.drop_start(input, ts, malformed("empty line before request")));
            }
            if input.is_empty() {
                return Some(Step::Idle);
            }
            self.blank_allowance = 0;
            self.trailing_blanks = 0;
            self.message_ts = ts;
            self.message_start = self.position + skip as u64;
        }
        if !line_checked {
            let line_end = input.iter().position(|&b| b == b'\n');
            let take = line_end.map_or(input.len(), |at| at + 1);
            // Judged before the size, so that how input is cut never changes the verdict.
            if !self.plausible(&input[..take]) {
                return Some(self.drop_start(input, ts, malformed("start line")));
            }
            if self.buf.len() + take > max {
                return Some(self.drop_too_large(input, ts));
            }
            if !self.room(take) {
                return Some(self.drop_start(input, ts, DropReason::ParseBudgetFull));
            }
            self.append(&input[..take], ts);
            *input = &input[take..];
            if line_end.is_none() {
                return Some(Step::Idle);
            }
            if self.side == Direction::Request && self.buf[..] == *H2_PREFACE_LINE {
                self.stop();
                return Some(Step::Http2);
            }
            if !resync::is_start_line(self.side, &self.buf) {
                return Some(self.drop_start(input, ts, malformed("start line")));
            }
            if let Some(before) = self.candidate.take() {
                let method = self.buf[..]
                    .split(|&b| b == b' ')
                    .next()
                    .unwrap_or_default();
                if !resync::may_start_at_candidate(method, before) {
                    return Some(self.drop_start(input, ts, malformed("start line")));
                }
            }
            self.pristine = false;
            self.state = State::Head { line_checked: true };
        }
        let (used, complete) = match find_head_end(&self.buf, input) {
            Some(used) => (used, true),
            None => (input.len(), false),
        };
        if self.buf.len() + used > max {
            return Some(self.drop_too_large(input, ts));
        }
        if !self.room(used) {
            return Some(self.drop_start(input, ts, DropReason::ParseBudgetFull));
        }
        self.append(&input[..used], ts);
        *input = &input[used..];
        if !complete {
            return Some(Step::Idle);
        }
        self.state = State::HeadReady {
            head_len: self.buf.len(),
        };
        Some(Step::Head)
    }

    /// Requests: up to `bytes` CR or LF bytes may come before the next request line. nginx,
    /// Envoy and llhttp skip any number; Go skips up to 4 and only after a POST (clients
    /// that end a body with an extra CRLF), and answers 400 otherwise.
    pub fn allow_blank_lines(&mut self, bytes: u8) {
        self.blank_allowance = bytes;
    }

    /// True if the buffered start of a message followed by `more` can begin a start line.
    pub(super) fn plausible(&self, more: &[u8]) -> bool {
        let mut start = [0u8; 32];
        let from_buf = self.buf.len().min(start.len());
        start[..from_buf].copy_from_slice(&self.buf[..from_buf]);
        let from_input = more.len().min(start.len() - from_buf);
        start[from_buf..from_buf + from_input].copy_from_slice(&more[..from_input]);
        resync::plausible_start(self.side, &start[..from_buf + from_input])
    }

    /// Drops the message starting the buffer, or `input` if nothing is buffered. A response
    /// reader searches on from the next byte (a status line may begin inside the rejected
    /// one); a request reader waits to be told where the next message starts.
    pub(super) fn drop_start(
        &mut self,
        input: &mut &[u8],
        ts: SystemTime,
        reason: DropReason,
    ) -> Step {
        if self.buf.is_empty() && self.side == Direction::Response {
            self.skip_input(input, 1, ts);
        }
        self.drop_head();
        Step::Dropped(reason)
    }

    /// Drops a head that grew past `max_head_bytes`. A response reader passes over exactly
    /// its first `max_head_bytes` (what is buffered, and what of `input` fits) and searches on
    /// from there: how much happened to be buffered when the limit was crossed depends on how
    /// the stream was cut into pushes, and where the search resumes must not.
    fn drop_too_large(&mut self, input: &mut &[u8], ts: SystemTime) -> Step {
        if self.side == Direction::Response {
            let fits = self.limits.max_head_bytes.saturating_sub(self.buf.len());
            self.skip_input(input, fits, ts);
        }
        self.drop_head();
        Step::Dropped(DropReason::HeadTooLarge)
    }

    /// Passes over the buffered head whole: searching inside it again could make parsing
    /// quadratic in hostile input.
    pub(super) fn drop_head(&mut self) {
        // The resync is counted once, by `lose_place`, even for a stream just picked up.
        self.pristine = false;
        self.skip(self.buf.len());
        self.lose_place();
    }

    /// Drops the ready head (the caller reports why) and loses the reader's place.
    pub fn reject(&mut self) {
        if matches!(self.state, State::HeadReady { .. }) {
            self.drop_head();
        }
    }
}

/// Input bytes up to the end of the blank line closing a head, if `input` holds it. The
/// blank line is LF followed by LF or CRLF; its LF may be among the last two buffered bytes.
fn find_head_end(buf: &[u8], input: &[u8]) -> Option<usize> {
    let tail = &buf[buf.len().saturating_sub(2)..];
    let mut joint = [0u8; 5];
    let joint_len = tail.len() + input.len().min(3);
    joint[..tail.len()].copy_from_slice(tail);
    joint[tail.len()..joint_len].copy_from_slice(&input[..input.len().min(3)]);
    let ends_at = |bytes: &[u8], i: usize| match bytes.get(i + 1..) {
        Some([b'\n', ..]) => Some(i + 2),
        Some([b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    };
    let joint = &joint[..joint_len];
    let straddling = tail
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(i, _)| ends_at(joint, i).filter(|&end| end > tail.len()));
    if let Some(end) = straddling {
        return Some(end - tail.len());
    }
    input
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(i, _)| ends_at(input, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_pushes() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", b"\r\nX"), Some(2));
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r", b"\n\r\n"),
            Some(3)
        );
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r", b"\nbody"),
            Some(1)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n", b"\n"), Some(1));
        assert_eq!(find_head_end(b"A: b", b"\r\nC: d\r\n\r\nbody"), Some(10));
        assert_eq!(find_head_end(b"A: b", b"\r\nC: d\r\n\r"), None);
        assert_eq!(find_head_end(b"", b""), None);
    }
}
