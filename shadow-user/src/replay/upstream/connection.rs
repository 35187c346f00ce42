//! One connection to a shadow service, and the exchange of one copy over it: the copy is
//! written (a body still being captured as it comes), the reply read to its end through a
//! small buffer and discarded, or kept when it is diffed.

use std::{
    io::{self, IoSlice},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::OwnedSemaphorePermit,
    time::Instant,
};

use super::{
    super::body::{BodyStream, Next},
    error::{ExchangeStage, UpstreamError},
    persist,
    stream::Stream,
};
use crate::http::{
    KeptResponse, SharedBudget,
    reply::{Complete, ResponseReader},
};

/// Bytes read at a time. Only a response head is ever kept longer than one read, so the
/// buffer stays under `MAX_HEAD_BYTES + READ_CHUNK`.
const READ_CHUNK: usize = 16 * 1024;

/// An open connection to a shadow service. It holds one of its service's pool slots until
/// dropped (which closes it) or given back with [`Upstream::put_back`](super::Upstream::put_back).
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    /// Received bytes not yet read past: part of a response head at most.
    buf: BytesMut,
    /// The connection served an exchange before: the shadow may have closed it since.
    reused: bool,
    /// Another exchange may follow: the last reply was read completely and neither side
    /// asked to close.
    reusable: bool,
    _slot: OwnedSemaphorePermit,
}

/// How an exchange went.
#[derive(Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Status of the final response (interim 1xx responses are read past).
    pub status: u16,
    /// From the end of the write to the first byte of the reply (an interim response's, if
    /// one came first).
    pub latency: Duration,
    /// The connection may carry another copy. A connection that is not reusable is closed
    /// when dropped, or when given back to the pool.
    pub reusable: bool,
    /// The final response, when it was to be kept.
    pub kept: Option<KeptResponse>,
}

/// Keep the reply's body up to this many bytes, taken from this budget.
pub type Keep = Option<(usize, SharedBudget)>;

impl Connection {
    pub(super) fn new(stream: Stream, slot: OwnedSemaphorePermit) -> Self {
        Connection {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            reused: false,
            reusable: true,
            _slot: slot,
        }
    }

    pub(super) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Whether another exchange may follow (always, before the first).
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Writes the copy (`head` then `body`, as they go on the wire, then whatever `rest`
    /// brings until its end) and reads the whole reply, discarding its body; `head_request`:
    /// the copy is a `HEAD` request, so the reply has no body. Every write must go through
    /// within `timeout`, and the whole reply must come within `timeout` of the copy's last
    /// byte (as Envoy's route timeout starts once the request is complete): a body still
    /// being captured takes as long as its client does.
    ///
    /// After any error the connection is not reusable; after `rest` abandons the copy it is
    /// reset. Nothing is retried: a copy written twice could repeat a write to a persistent
    /// service. With `keep`, the final response is kept (for diffing).
    pub async fn exchange(
        &mut self,
        head: &[u8],
        body: &Bytes,
        rest: Option<&mut BodyStream>,
        head_request: bool,
        timeout: Duration,
        keep: Keep,
    ) -> Result<Exchange, UpstreamError> {
        // Stays false if this future is dropped half-way or fails.
        self.reusable = false;
        let reused = std::mem::replace(&mut self.reused, true);
        // Leftovers only exist after a failed exchange, whose stream is out of step anyway.
        self.buf.clear();
        self.write_copy(head, body, rest, timeout, reused).await?;
        let reader = match keep {
            Some((limit, budget)) => ResponseReader::keeping(head_request, limit, budget),
            None => ResponseReader::new(head_request),
        };
        let reply = tokio::time::timeout(timeout, self.read_reply(reader, reused));
        let (complete, latency, kept) = reply
            .await
            .map_err(|_| UpstreamError::Timeout { after: timeout })??;
        // Bytes after the reply were not asked for: the stream is out of step.
        self.reusable = complete.persists && self.buf.is_empty() && persist::request_persists(head);
        Ok(Exchange {
            status: complete.status,
            latency,
            reusable: self.reusable,
            kept,
        })
    }

    async fn write_copy(
        &mut self,
        head: &[u8],
        body: &[u8],
        rest: Option<&mut BodyStream>,
        timeout: Duration,
        reused: bool,
    ) -> Result<(), UpstreamError> {
        // Until the first byte of a reply, a failure on a reused connection is most likely
        // the shadow having closed it while it was idle.
        let failed = |e| failure(ExchangeStage::Write, e, reused, reused);
        within(timeout, write_request(&mut self.stream, head, body))
            .await?
            .map_err(failed)?;
        let Some(rest) = rest else {
            return Ok(());
        };
        let streamed = self.write_rest(rest, timeout, reused).await;
        if streamed.is_err() {
            // A reset, not a close: a close after a partial body could read as a complete
            // request to a server that frames it by close, and a reset also tells one that
            // framed it by length that it ended badly.
            let _ = socket2::SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO));
        }
        streamed
    }

    /// Writes a streamed body's pieces as they come, until its end.
    async fn write_rest(
        &mut self,
        rest: &mut BodyStream,
        timeout: Duration,
        reused: bool,
    ) -> Result<(), UpstreamError> {
        let failed = |e| failure(ExchangeStage::Write, e, reused, reused);
        loop {
            match rest.next().await {
                // The piece's budget share is given back once it is written.
                Next::Bytes(bytes, _held) => within(timeout, write_piece(&mut self.stream, &bytes))
                    .await?
                    .map_err(failed)?,
                Next::End => return Ok(()),
                Next::Abandon(reason) => return Err(UpstreamError::Abandoned { reason }),
            }
        }
    }

    async fn read_reply(
        &mut self,
        mut reader: ResponseReader,
        reused: bool,
    ) -> Result<(Complete, Duration, Option<KeptResponse>), UpstreamError> {
        let written = Instant::now();
        let mut first_byte = None;
        loop {
            if !self.buf.is_empty() {
                let decoded = reader
                    .decode(&self.buf)
                    .map_err(|source| UpstreamError::BadResponse { source })?;
                self.buf.advance(decoded.consumed);
                if let Some(complete) = decoded.complete {
                    let latency = first_byte.unwrap_or(written).duration_since(written);
                    return Ok((complete, latency, reader.kept()));
                }
            }
            self.buf.reserve(READ_CHUNK);
            let read = match self.stream.read_buf(&mut self.buf).await {
                Ok(read) => read,
                // TLS peers often close without `close_notify`; that is no worse than a
                // plain close, which ends a body delimited by close and nothing else.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Err(e) => {
                    let before_reply = reused && first_byte.is_none();
                    return Err(failure(ExchangeStage::Read, e, reused, before_reply));
                }
            };
            if read == 0 {
                let latency = first_byte.unwrap_or(written).duration_since(written);
                return match reader.end_of_stream() {
                    Some(complete) => Ok((complete, latency, reader.kept())),
                    None => Err(UpstreamError::Reset {
                        stage: ExchangeStage::Read,
                        reused,
                        source: None,
                    }),
                };
            }
            first_byte.get_or_insert_with(Instant::now);
        }
    }
}

/// Writes `head` and `body` with as few writes as the stream takes: one `writev` for a
/// copy that fits in the socket buffer, without copying the body next to the head.
async fn write_request(stream: &mut Stream, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() {
        let written = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head = &head[from_head..];
        body = &body[written - from_head..];
    }
    stream.write_all(body).await?;
    stream.flush().await
}

/// Writes one piece of a body still being captured, and sends it on at once.
async fn write_piece(stream: &mut Stream, piece: &[u8]) -> io::Result<()> {
    stream.write_all(piece).await?;
    stream.flush().await
}

/// `future`, or `Timeout` if it takes longer than `timeout`.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T, UpstreamError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| UpstreamError::Timeout { after: timeout })
}

/// An I/O error as an exchange failure: the peer closing or resetting is `Reset`, and so is
/// any error on a reused connection before its reply began.
fn failure(
    stage: ExchangeStage,
    error: io::Error,
    reused: bool,
    before_reply: bool,
) -> UpstreamError {
    use io::ErrorKind::*;
    let closed = matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | WriteZero | UnexpectedEof
    );
    if closed || before_reply {
        UpstreamError::Reset {
            stage,
            reused,
            source: Some(error),
        }
    } else {
        UpstreamError::Io {
            stage,
            source: error,
        }
    }
}
