//! The replay engine: takes copies from the capture side through a bounded queue (the
//! capture thread never waits), keeps one worker per captured client connection so its
//! copies reach the shadow in their original order on one upstream connection, and counts
//! how every copy ended. Nothing is retried: a retry could repeat a write to a persistent
//! service.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinSet,
};

use super::{
    ReplaySettings,
    job::Job,
    stats::{ReplayStats, reason},
    upstream::{Connection, Upstream, UpstreamConfig, UpstreamError},
};
use crate::{config::Service, reassembly::FlowKey};

/// The capture side's handle: never blocks.
#[derive(Clone)]
pub struct ReplaySender {
    tx: mpsc::Sender<Job>,
    stats: ReplayStats,
}

impl ReplaySender {
    /// Queues `job`, or counts it dropped when the queue is full.
    pub fn submit(&self, job: Job) {
        self.stats.queued(job.mapping());
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                self.stats.dropped(job.mapping(), reason::QUEUE_FULL, true)
            }
            Err(TrySendError::Closed(job)) => {
                self.stats.dropped(job.mapping(), reason::SHUTDOWN, true)
            }
        }
    }

    /// Queues `job`, waiting for room (from a blocking thread): for offline replay from a
    /// capture file, where waiting harms nobody.
    pub fn submit_waiting(&self, job: Job) {
        self.stats.queued(job.mapping());
        if let Err(mpsc::error::SendError(job)) = self.tx.blocking_send(job) {
            self.stats.dropped(job.mapping(), reason::SHUTDOWN, true);
        }
    }
}

/// Shadow services by address, each with its connection pool.
#[derive(Default)]
struct Upstreams {
    by_service: Mutex<HashMap<Service, Arc<Upstream>>>,
}

impl Upstreams {
    fn get(&self, service: &Service, config: &Arc<UpstreamConfig>) -> Arc<Upstream> {
        let mut map = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(service.clone())
            .or_insert_with(|| Upstream::new(service.clone(), config.clone()))
            .clone()
    }
}

/// Starts the engine on the current tokio runtime. It runs until every sender is dropped and
/// the queued copies are done; the returned task ends then.
pub fn start(
    settings: ReplaySettings,
    stats: ReplayStats,
) -> (ReplaySender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let sender = ReplaySender {
        tx,
        stats: stats.clone(),
    };
    let task = tokio::spawn(dispatch(rx, settings, stats));
    (sender, task)
}

async fn dispatch(mut rx: mpsc::Receiver<Job>, settings: ReplaySettings, stats: ReplayStats) {
    let upstreams = Arc::new(Upstreams::default());
    let upstream_config = Arc::new(settings.upstream.clone());
    let mut flows: HashMap<FlowKey, mpsc::Sender<Job>> = HashMap::new();
    let mut workers = JoinSet::new();
    while let Some(mut job) = rx.recv().await {
        // Reap finished workers so the set does not grow.
        while workers.try_join_next().is_some() {}
        for _ in 0..2 {
            let sender = match flows.get(&job.flow) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    if flows.len() >= settings.max_flows {
                        flows.retain(|_, tx| !tx.is_closed());
                    }
                    if flows.len() >= settings.max_flows {
                        stats.dropped(job.mapping(), reason::QUEUE_FULL, true);
                        break;
                    }
                    let (tx, rx) = mpsc::channel(settings.per_flow_queue);
                    workers.spawn(worker(
                        rx,
                        upstreams.clone(),
                        upstream_config.clone(),
                        stats.clone(),
                        settings.flow_idle,
                    ));
                    flows.insert(job.flow, tx.clone());
                    tx
                }
            };
            match sender.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(full)) => {
                    stats.dropped(full.mapping(), reason::QUEUE_FULL, true);
                    break;
                }
                // The worker went idle and ended just now: start another (once).
                Err(TrySendError::Closed(closed)) => {
                    flows.remove(&closed.flow);
                    job = closed;
                }
            }
        }
    }
    drop(flows);
    while workers.join_next().await.is_some() {}
}

/// Sends the copies of one client connection, in order.
async fn worker(
    mut rx: mpsc::Receiver<Job>,
    upstreams: Arc<Upstreams>,
    config: Arc<UpstreamConfig>,
    stats: ReplayStats,
    idle: Duration,
) {
    let mut current: Option<(Arc<Upstream>, Connection)> = None;
    loop {
        let job = match tokio::time::timeout(idle, rx.recv()).await {
            Ok(Some(job)) => job,
            // Closed, or idle: give the connection back.
            _ => break,
        };
        let plan = job.plan();
        let upstream = upstreams.get(&plan.service, &config);
        let mut connection = match current.take() {
            Some((held, connection)) if Arc::ptr_eq(&held, &upstream) => connection,
            other => {
                if let Some((held, connection)) = other {
                    held.put_back(connection);
                }
                match upstream.connection().await {
                    Ok(connection) => connection,
                    Err(err) => {
                        stats.dropped(job.mapping(), err.reason(), true);
                        log_drop(job.mapping(), &err);
                        continue;
                    }
                }
            }
        };
        match connection
            .exchange(
                &job.copy.head,
                &job.copy.body,
                job.copy.head_request,
                plan.timeout,
            )
            .await
        {
            Ok(exchange) => {
                stats.copied(job.mapping(), exchange.status, exchange.latency, job.id);
                // Keep the connection while this client connection has more copies waiting
                // (its sequence stays on one upstream connection); when it goes quiet, give
                // it back so a thousand idle clients do not hold a thousand upstreams.
                if exchange.reusable && !rx.is_empty() {
                    current = Some((upstream, connection));
                } else {
                    upstream.put_back(connection);
                }
            }
            Err(err) => {
                stats.dropped(job.mapping(), err.reason(), true);
                log_drop(job.mapping(), &err);
            }
        }
    }
    if let Some((upstream, connection)) = current {
        upstream.put_back(connection);
    }
}

/// Logs an undelivered copy, at most once per [`DROP_LOG_INTERVAL`]: a shadow that is down
/// would otherwise log once per request. Every drop is counted either way.
fn log_drop(mapping: &str, err: &UpstreamError) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < DROP_LOG_INTERVAL) {
        return;
    }
    *last = Some(now);
    tracing::warn!(
        mapping,
        reason = err.reason(),
        error = %crate::error_chain(err),
        "a copy was not delivered (further drops in the next 10 s are only counted)"
    );
}

const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
