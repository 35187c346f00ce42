//! One shadow service: its cached addresses and a bounded pool of connections, idle ones
//! kept for reuse.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use super::{
    breaker::{Admission, Breaker},
    config::UpstreamConfig,
    connect,
    connection::Connection,
    error::UpstreamError,
    resolve::AddressCache,
};
use crate::config::Service;

/// What a caller's turn brings: a connection to reuse, or room to open one.
enum Turn {
    Idle(Connection),
    Slot(OwnedSemaphorePermit),
}

/// A shadow service (`scheme://host:port`) and its connections: at most
/// `max_connections_per_service` open at once, busy and idle together.
#[derive(Debug)]
pub struct Upstream {
    service: Service,
    config: Arc<UpstreamConfig>,
    /// One permit per connection that may be open; each [`Connection`] holds one.
    slots: Arc<Semaphore>,
    /// Copies whose bodies are still being captured may take all connections but an eighth
    /// (at least one): a connection carrying one waits on its client, however slow, and
    /// some must stay free for the rest. Not fewer: uploads waiting for a connection hold
    /// their pieces in the replay budget meanwhile.
    streams: Arc<Semaphore>,
    /// Connections given back, most recent last (the likeliest still open).
    idle: Mutex<Vec<Connection>>,
    /// Wakes a caller waiting for a slot when a connection is given back.
    returned: Notify,
    addresses: AddressCache,
    /// Fails copies at once while the service cannot be reached.
    breaker: Breaker,
}

impl Upstream {
    /// The upstream for `service`. Nothing is resolved or opened until a connection is
    /// asked for.
    pub fn new(service: Service, config: Arc<UpstreamConfig>) -> Arc<Upstream> {
        let max = Upstream::bound(&config);
        Arc::new(Upstream {
            service,
            slots: Arc::new(Semaphore::new(max)),
            streams: Arc::new(Semaphore::new((max - (max / 8).max(1)).max(1))),
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
            addresses: AddressCache::new(config.dns_ttl),
            breaker: Breaker::new(config.breaker),
            config,
        })
    }

    /// Connections that may be open at once: at least one, or every copy would wait and
    /// fail; at most what a semaphore holds.
    fn bound(config: &UpstreamConfig) -> usize {
        config
            .max_connections_per_service
            .clamp(1, Semaphore::MAX_PERMITS)
    }

    /// Connections open now, busy or idle.
    #[cfg(test)]
    pub fn open_connections(&self) -> usize {
        Upstream::bound(&self.config) - self.slots.available_permits()
    }

    /// Room for one more copy with a streamed body, if there is some now.
    pub fn try_stream_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// Room for one more copy with a streamed body, once there is some (first come, first
    /// served).
    pub async fn stream_slot(&self) -> OwnedSemaphorePermit {
        self.streams
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the semaphore is never closed"))
    }

    /// An idle connection, or a new one (TLS for `https://`). Waits, first come first
    /// served, for a connection given back or a free slot, as long as it takes: what waits
    /// is bounded by the replay budget, and a burst of copies is better sent late than
    /// dropped. The connect itself (resolve, TCP, TLS) may take `connect_timeout`.
    pub async fn connection(&self) -> Result<Connection, UpstreamError> {
        let slot = match self.turn().await {
            Turn::Idle(connection) => return Ok(connection),
            Turn::Slot(slot) => slot,
        };
        // A probe left hanging (its copy dropped mid-connect) is given up after this long.
        let probe_limit = self.config.connect_timeout.saturating_mul(2);
        let probe = match self.breaker.admit(Instant::now(), probe_limit) {
            Admission::Go { probe } => probe,
            Admission::Refused { for_ } => {
                return Err(UpstreamError::CircuitOpen {
                    service: self.service.to_string(),
                    for_,
                });
            }
        };
        // Boxed: a caller waiting its turn stays small, and only those connecting (at most
        // the pool's bound) hold the connect's larger state.
        let opened = Box::pin(self.open(slot)).await;
        match &opened {
            Ok(_) => self.breaker.connected(&self.service),
            Err(_) => {
                self.breaker
                    .connect_failed(Instant::now(), probe, &self.service);
            }
        }
        opened
    }

    /// Waits for an idle connection or a free slot.
    async fn turn(&self) -> Turn {
        loop {
            // Registered before looking at the idle list, so a connection given back in
            // between still wakes this caller.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(connection) = self.take_idle() {
                return Turn::Idle(connection);
            }
            tokio::select! {
                slot = self.slots.clone().acquire_owned() => match slot {
                    Ok(slot) => return Turn::Slot(slot),
                    Err(_) => unreachable!("the pool's semaphore is never closed"),
                },
                () = &mut returned => continue,
            }
        }
    }

    /// Opens a new connection in `slot`.
    async fn open(&self, slot: OwnedSemaphorePermit) -> Result<Connection, UpstreamError> {
        let started = Instant::now();
        // A timeout too large to add waits as long as a year: for all purposes, forever.
        let deadline = started
            .checked_add(self.config.connect_timeout)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
        let stream = connect::open(&self.service, &self.config, &self.addresses, deadline)
            .await
            .map_err(|(stage, source)| UpstreamError::ConnectFailed {
                service: self.service.to_string(),
                stage,
                source,
            })?;
        Ok(Connection::new(stream, slot))
    }

    /// Keeps `connection` for reuse if its last reply was read completely and neither side
    /// asked to close; otherwise closes it. Either way its slot is free for others.
    pub fn put_back(&self, connection: Connection) {
        if !connection.is_reusable() {
            return;
        }
        self.lock_idle().push(connection);
        self.returned.notify_one();
    }

    /// The most recently used idle connection that is still open; closed ones are dropped.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.lock_idle();
        while let Some(connection) = idle.pop() {
            if !connection.stream().is_stale() {
                return Some(connection);
            }
        }
        None
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // Nothing panics while holding the lock; a poisoned list is still a valid one.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
