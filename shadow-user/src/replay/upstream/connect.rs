//! Opening a connection to a shadow service: its addresses (cached), a TCP socket with the
//! loop-guard mark to the first address that answers, then TLS for `https://`.

use std::{future::Future, io, net::SocketAddr};

use tokio::{
    net::{TcpSocket, TcpStream},
    time::{Instant, timeout_at},
};

use super::{
    config::UpstreamConfig, error::ConnectStage, resolve, resolve::AddressCache, stream::Stream,
    tls::TlsClient,
};
use crate::config::{Scheme, Service};

/// What failed, and how.
pub(super) type ConnectError = (ConnectStage, io::Error);

/// Opens a connection to `service`, every step done by `deadline`. Any failure expires the
/// cached addresses, so the next attempt resolves again (the service may have moved). If
/// resolving then fails or takes half the time, the last good addresses are used while they
/// are recent, and kept fresh again when a connect to them succeeds: a DNS outage is not the
/// shadow's, and must not cost every copy a resolver timeout.
pub(super) async fn open(
    service: &Service,
    config: &UpstreamConfig,
    cache: &AddressCache,
    deadline: Instant,
) -> Result<Stream, ConnectError> {
    let opened = async {
        let (addresses, last_good) = match cache.fresh(std::time::Instant::now()) {
            Some(addresses) => (addresses, false),
            None => {
                let now = Instant::now();
                let resolve_by = now + deadline.saturating_duration_since(now) / 2;
                let resolving = resolve::resolve(&service.host, service.port);
                match by(resolve_by, ConnectStage::Resolve, resolving).await {
                    Ok(addresses) => {
                        cache.store(addresses.clone(), std::time::Instant::now());
                        (addresses, false)
                    }
                    Err(err) => (cache.last_good(std::time::Instant::now()).ok_or(err)?, true),
                }
            }
        };
        let tcp = connect_any(&addresses, config.loop_guard_mark, deadline).await?;
        if last_good {
            cache.store(addresses, std::time::Instant::now());
        }
        match service.scheme {
            Scheme::Http => Ok(Stream::Plain(tcp)),
            Scheme::Https => handshake(tcp, &service.host, &config.tls, deadline).await,
        }
    };
    opened.await.inspect_err(|_| cache.expire())
}

/// Connects to each address in turn until one answers; the error is the last one's.
async fn connect_any(
    addresses: &[SocketAddr],
    mark: u32,
    deadline: Instant,
) -> Result<TcpStream, ConnectError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for &address in addresses {
        let socket = marked_socket(address, mark)?;
        match by(deadline, ConnectStage::Connect, socket.connect(address)).await {
            Ok(tcp) => {
                // Copies are written whole, head and body together: nothing to coalesce.
                tcp.set_nodelay(true)
                    .map_err(|e| (ConnectStage::Connect, e))?;
                return Ok(tcp);
            }
            Err((_, e)) if e.kind() == io::ErrorKind::TimedOut => {
                return Err((ConnectStage::Connect, e));
            }
            Err((_, e)) => last = e,
        }
    }
    Err((ConnectStage::Connect, last))
}

/// A socket for `address` carrying `mark` (if not 0), so the TC program does not capture
/// what it sends.
fn marked_socket(address: SocketAddr, mark: u32) -> Result<TcpSocket, ConnectError> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| (ConnectStage::Connect, e))?;
    if mark != 0 {
        socket2::SockRef::from(&socket)
            .set_mark(mark)
            .map_err(|e| (ConnectStage::Mark, e))?;
    }
    Ok(socket)
}

async fn handshake(
    tcp: TcpStream,
    host: &str,
    tls: &TlsClient,
    deadline: Instant,
) -> Result<Stream, ConnectError> {
    let name = TlsClient::server_name(host).map_err(|e| (ConnectStage::Tls, e))?;
    let connecting = tls.connector().connect(name, tcp);
    let stream = by(deadline, ConnectStage::Tls, connecting).await?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// `step`'s result, or a `TimedOut` error for `stage` once `deadline` passes.
async fn by<T>(
    deadline: Instant,
    stage: ConnectStage,
    step: impl Future<Output = io::Result<T>>,
) -> Result<T, ConnectError> {
    match timeout_at(deadline, step).await {
        Ok(result) => result.map_err(|e| (stage, e)),
        Err(_) => Err((
            stage,
            io::Error::new(io::ErrorKind::TimedOut, "connect timeout"),
        )),
    }
}
