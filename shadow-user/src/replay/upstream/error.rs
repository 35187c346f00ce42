//! Why a copy could not be sent to its shadow or its reply not read, with a stable metric
//! label for each kind.

use std::{fmt, io, time::Duration};

use crate::http::reply::ResponseError;
use crate::replay::stats::Undelivered;

/// A failure on the shadow side of a replay: connecting to the shadow service, or the
/// exchange with it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: resolving, connecting, marking the socket or the TLS
    /// handshake failed or took longer than `connect_timeout`.
    #[error("cannot connect to shadow service {service} ({stage})")]
    ConnectFailed {
        /// The service, as `[https://]host:port`.
        service: String,
        /// What failed.
        stage: ConnectStage,
        #[source]
        source: io::Error,
    },
    /// The service's circuit breaker is open: its last connects failed, so the copy fails
    /// at once instead of trying again (see `breaker`).
    #[error("shadow service {service} is unreachable: copies fail at once for {for_:?} more")]
    CircuitOpen {
        /// The service, as `[https://]host:port`.
        service: String,
        /// Until the next probe may go (zero while one is out).
        for_: Duration,
    },
    /// The exchange (writing the copy and reading the whole reply) took longer than the
    /// copy's timeout. The connection is not reused.
    #[error("no complete shadow response within {after:?}")]
    Timeout {
        /// The copy's timeout.
        after: Duration,
    },
    /// The shadow closed or reset the connection before its reply was complete. On a
    /// connection taken from the pool this may just mean the shadow had closed it while
    /// idle; the copy is not sent again (a retry could repeat a write).
    #[error("shadow connection closed while {stage} (reused connection: {reused})")]
    Reset {
        /// Writing the copy or reading the reply.
        stage: ExchangeStage,
        /// The connection had served an earlier exchange.
        reused: bool,
        /// The error, if the close showed as one (not a plain end of stream).
        #[source]
        source: Option<io::Error>,
    },
    /// The shadow's reply is not HTTP/1 as this client reads it.
    #[error("malformed shadow response")]
    BadResponse {
        #[source]
        source: ResponseError,
    },
    /// The copy's body stopped coming before its end (see `replay::body`): the connection
    /// was reset so the shadow cannot take what it got for a complete request.
    #[error(
        "the copy was abandoned while being sent ({}); the shadow connection was reset",
        reason.as_str()
    )]
    Abandoned {
        /// The ledger reason.
        reason: Undelivered,
    },
    /// Any other I/O error on an open connection.
    #[error("I/O error on a shadow connection while {stage}")]
    Io {
        /// Writing the copy or reading the reply.
        stage: ExchangeStage,
        #[source]
        source: io::Error,
    },
}

impl UpstreamError {
    /// The ledger reason.
    pub fn reason(&self) -> Undelivered {
        match self {
            UpstreamError::ConnectFailed { .. } => Undelivered::ConnectFailed,
            UpstreamError::CircuitOpen { .. } => Undelivered::CircuitOpen,
            UpstreamError::Timeout { .. } => Undelivered::Timeout,
            UpstreamError::Reset { .. } => Undelivered::Reset,
            UpstreamError::BadResponse { .. } => Undelivered::BadResponse,
            UpstreamError::Io { .. } => Undelivered::Io,
            UpstreamError::Abandoned { reason } => *reason,
        }
    }
}

/// The step of opening a connection that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStage {
    /// Resolving the host name.
    Resolve,
    /// Setting `SO_MARK` (needs `CAP_NET_ADMIN`): without it the copy would be captured
    /// again, so the connection is not made.
    Mark,
    /// The TCP connect (to every resolved address in turn).
    Connect,
    /// The TLS handshake, certificate verification included.
    Tls,
}

impl fmt::Display for ConnectStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectStage::Resolve => "resolving its name",
            ConnectStage::Mark => "setting the loop-guard socket mark",
            ConnectStage::Connect => "TCP connect",
            ConnectStage::Tls => "TLS handshake",
        })
    }
}

/// The half of an exchange that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeStage {
    /// Writing the copy.
    Write,
    /// Reading the reply.
    Read,
}

impl fmt::Display for ExchangeStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExchangeStage::Write => "writing the copy",
            ExchangeStage::Read => "reading the response",
        })
    }
}
