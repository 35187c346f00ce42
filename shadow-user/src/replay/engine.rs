//! The replay engine: takes copies from the capture side (the capture thread never waits),
//! sends each captured client connection's copies in their original order, one at a time,
//! and counts how every copy ended. A connection has replay state only while one of its
//! copies is waiting or being sent: idle or closed connections cost nothing, so there is no
//! connection limit, only the byte budget every copy holds until it is done. Nothing is
//! retried: a retry could repeat a write to a persistent service.

use std::{
    collections::{HashMap, VecDeque, hash_map::Entry},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    sync::mpsc,
    task::{self, JoinSet},
};

use super::{
    ReplaySettings,
    body::BodyStream,
    job::Job,
    stats::ReplayStats,
    upstream::{Connection, Upstream, UpstreamConfig, UpstreamError},
};
use crate::{config::Service, reassembly::FlowKey};

/// The capture side's handle: never blocks. The channel has no count bound of its own:
/// every job in it holds a share of the replay byte budget (see `job`), which bounds it.
#[derive(Clone)]
pub struct ReplaySender {
    tx: mpsc::UnboundedSender<Job>,
    stats: Arc<ReplayStats>,
}

impl ReplaySender {
    /// Hands `job` to the engine. A stopped engine drops it, which counts it as `shutdown`.
    pub fn submit(&self, mut job: Job) {
        job.queued(&self.stats);
        let _ = self.tx.send(job);
    }
}

#[cfg(test)]
impl ReplaySender {
    /// A sender whose jobs land in the returned receiver instead of an engine.
    pub(crate) fn to_receiver(stats: ReplayStats) -> (ReplaySender, mpsc::UnboundedReceiver<Job>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            ReplaySender {
                tx,
                stats: Arc::new(stats),
            },
            rx,
        )
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
/// the copies handed to it are done; the returned task ends then.
pub fn start(
    settings: ReplaySettings,
    stats: ReplayStats,
) -> (ReplaySender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = ReplaySender {
        tx,
        stats: Arc::new(stats.clone()),
    };
    let task = tokio::spawn(dispatch(rx, settings, stats));
    (sender, task)
}

/// An upstream connection kept for the next copy of the same client connection.
type Kept = Option<(Arc<Upstream>, Connection)>;

/// What a finished copy hands back to the dispatcher.
struct Sent {
    flow: FlowKey,
    kept: Kept,
}

/// The client connections with a copy being sent, and the copies waiting behind it.
struct Dispatcher {
    /// One entry per client connection with a copy being sent: the copies queued after it.
    flows: HashMap<FlowKey, VecDeque<Job>>,
    sending: JoinSet<Sent>,
    /// Which connection each sending task serves, to carry on after a task panicked.
    tasks: HashMap<task::Id, FlowKey>,
    upstreams: Arc<Upstreams>,
    upstream_config: Arc<UpstreamConfig>,
    stats: ReplayStats,
}

async fn dispatch(
    mut rx: mpsc::UnboundedReceiver<Job>,
    settings: ReplaySettings,
    stats: ReplayStats,
) {
    let mut dispatcher = Dispatcher {
        flows: HashMap::new(),
        sending: JoinSet::new(),
        tasks: HashMap::new(),
        upstreams: Arc::new(Upstreams::default()),
        upstream_config: Arc::new(settings.upstream),
        stats,
    };
    let mut open = true;
    loop {
        tokio::select! {
            job = rx.recv(), if open => match job {
                Some(job) => dispatcher.admit(job),
                None => open = false,
            },
            Some(done) = dispatcher.sending.join_next_with_id() => dispatcher.finished(done),
            else => break,
        }
    }
}

impl Dispatcher {
    /// Sends `job` now, or after the copies of its connection handed over before it.
    fn admit(&mut self, job: Job) {
        match self.flows.entry(job.flow) {
            Entry::Occupied(mut waiting) => waiting.get_mut().push_back(job),
            Entry::Vacant(entry) => {
                entry.insert(VecDeque::new());
                self.stats.active_flows.inc();
                self.spawn(job, None);
            }
        }
    }

    /// A copy is done: the next of its connection goes out (on the same upstream connection
    /// when it can), or the connection's state ends and the upstream connection returns to
    /// its pool.
    fn finished(&mut self, done: Result<(task::Id, Sent), task::JoinError>) {
        let (flow, kept) = match done {
            Ok((id, sent)) => {
                self.tasks.remove(&id);
                (sent.flow, sent.kept)
            }
            Err(err) => {
                // The job went with the task, and counted itself `internal` as it went; the
                // connection's later copies still go out.
                tracing::error!(error = %err, "a replay task failed");
                match self.tasks.remove(&err.id()) {
                    Some(flow) => (flow, None),
                    None => return,
                }
            }
        };
        let next = self.flows.get_mut(&flow).and_then(VecDeque::pop_front);
        match next {
            Some(job) => self.spawn(job, kept),
            None => {
                self.flows.remove(&flow);
                self.stats.active_flows.dec();
                if let Some((upstream, connection)) = kept {
                    upstream.put_back(connection);
                }
            }
        }
    }

    fn spawn(&mut self, job: Job, kept: Kept) {
        let flow = job.flow;
        let handle = self.sending.spawn(send(
            job,
            kept,
            self.upstreams.clone(),
            self.upstream_config.clone(),
        ));
        self.tasks.insert(handle.id(), flow);
    }
}

/// Sends one copy on `kept` if it reaches the same service, else on a pooled connection,
/// and hands the connection back when it can carry another exchange.
async fn send(
    mut job: Job,
    kept: Kept,
    upstreams: Arc<Upstreams>,
    config: Arc<UpstreamConfig>,
) -> Sent {
    let flow = job.flow;
    let mut rest = job.rest.take();
    let (upstream, timeout) = {
        let plan = job.plan();
        (upstreams.get(job.service(), &config), plan.timeout)
    };
    let mut kept = kept;
    let _streaming = match &rest {
        Some(_) => Some(match upstream.try_stream_slot() {
            Some(slot) => slot,
            None => {
                // The wait may be long: the connection kept for this client goes back.
                if let Some((held, connection)) = kept.take() {
                    held.put_back(connection);
                }
                upstream.stream_slot().await
            }
        }),
        None => None,
    };
    // A body abandoned while its copy waited: nothing of it reaches the shadow.
    if let Some(reason) = rest.as_ref().and_then(BodyStream::abandoned) {
        job.dropped(reason);
        return Sent { flow, kept };
    }
    let connection = match kept {
        Some((held, connection)) if Arc::ptr_eq(&held, &upstream) => Ok(connection),
        other => {
            if let Some((held, connection)) = other {
                held.put_back(connection);
            }
            upstream.connection().await
        }
    };
    let mut connection = match connection {
        Ok(connection) => connection,
        Err(err) => {
            job.dropped(err.reason());
            log_drop(job.mapping(), &err);
            return Sent { flow, kept: None };
        }
    };
    if let Some(reason) = rest.as_ref().and_then(BodyStream::abandoned) {
        job.dropped(reason);
        return Sent {
            flow,
            kept: Some((upstream, connection)),
        };
    }
    // Boxed, so a task waiting its turn stays small: only those sending (at most the
    // pool's bound) hold the exchange's larger state.
    let keep = job.keeper();
    let exchange = Box::pin(connection.exchange(
        &job.copy.head,
        &job.copy.body,
        rest.as_mut(),
        job.copy.head_request,
        timeout,
        keep,
    ))
    .await;
    match exchange {
        Ok(exchange) => {
            job.copied(exchange.status, exchange.latency, exchange.kept);
            let kept = exchange.reusable.then_some((upstream, connection));
            Sent { flow, kept }
        }
        Err(err) => {
            job.dropped(err.reason());
            log_drop(job.mapping(), &err);
            Sent { flow, kept: None }
        }
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
        reason = %err.reason(),
        error = %crate::error_chain(err),
        "a copy was not delivered (further drops in the next 10 s are only counted)"
    );
}

const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
