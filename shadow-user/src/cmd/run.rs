//! `shadowd run`: loads the configuration, starts the admin server and capture, reloads the
//! configuration on SIGHUP or when its files change, and tears everything down on
//! SIGINT/SIGTERM.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{Signal, SignalKind, signal},
    sync::{mpsc, watch},
};

use crate::{
    active::{ActiveConfig, ConfigMetrics, ReloadOutcome, SharedConfig, fingerprint},
    admin::{AdminError, AdminState, Bound, Listener},
    capture::pod_veths,
    capture::{Capture, CaptureConfig, CaptureError, heartbeat::Liveness, program::ProgramLogger},
    cmd::cli::RunArgs,
    config::ConfigError,
    diag::Sources,
    kubernetes::{ClusterSnapshot, ClusterSource},
    metrics::Metrics,
    pipeline::{HttpSink, SinkMetrics},
    production::{ProductionScope, SystemResolver},
    replay::{self, ReplaySettings, offer::Offerer},
    settings::{Settings, SettingsError},
};

/// How often the main loop checks that the capture thread is still there.
const CAPTURE_WATCH: Duration = Duration::from_secs(1);

/// How long queued copies may still go out after a termination signal.
const REPLAY_DRAIN: Duration = Duration::from_secs(3);

/// The exit code of a start refused for what it was given (sysexits.h `EX_USAGE`).
pub const EX_USAGE: i32 = 64;

/// What makes `shadowd run` refuse to start, before it binds or attaches anything.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("configuration")]
    Config(#[from] ConfigError),
    #[error("settings")]
    Settings(#[from] SettingsError),
    #[error("setting up TLS for shadow services")]
    Tls(#[from] crate::replay::upstream::TlsSetupError),
    #[error("capture")]
    Capture(#[from] CaptureError),
}

/// Errors of `shadowd run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Unusable(#[from] Unusable),
    #[error("admin server")]
    Admin(#[from] AdminError),
    #[error("capture")]
    Capture(#[from] CaptureError),
    #[error("installing signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("connecting to the Kubernetes API (in-cluster credentials, or KUBECONFIG)")]
    Kubernetes(#[source] kube::Error),
    #[error("following the node's links (netlink) for `interfaces: auto`")]
    PodInterfaces(#[source] std::io::Error),
    #[error("the capture thread ended; nothing more could be copied")]
    CaptureEnded,
}

impl RunError {
    /// Exit code, by the phase that failed: [`EX_USAGE`] for a start refused for what it
    /// was given, 1 for anything that went wrong after.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Unusable(_) => EX_USAGE,
            _ => 1,
        }
    }
}

/// What `run` starts from, every part of it checked.
struct Prepared {
    initial: ActiveConfig,
    settings: Settings,
    upstream: crate::replay::upstream::UpstreamConfig,
    capture: CaptureConfig,
}

/// Loads and checks everything `run` is given (the configuration, the settings, the TLS
/// files, the interfaces, the capture ports and the mirror pair's names) before anything is
/// bound or attached.
async fn prepare(args: &RunArgs) -> Result<Prepared, Unusable> {
    let initial = ActiveConfig::load(&args.config)?;
    let settings = Settings::resolve(args, initial.module.as_ref())?;
    let upstream = settings.shadow.upstream(settings.loop_guard.mark)?;
    let capture = CaptureConfig {
        interfaces: settings.interfaces.clone(),
        pod_interfaces: settings.pod_interfaces.clone(),
        output: settings.output,
        mirror_interface: settings.mirror_interface.clone(),
        scope: initial.capture_scope(settings.explicit_ports.as_ref()),
        loop_guard: settings.loop_guard,
        ring: settings.ring,
        ringbuf: settings.ringbuf,
    };
    crate::capture::preflight(&capture).await?;
    Ok(Prepared {
        initial,
        settings,
        upstream,
        capture,
    })
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let mut signals = Signals::install()?;

    // An unusable configuration stops here, before anything is bound or attached.
    let Prepared {
        initial,
        settings,
        upstream,
        capture: capture_config,
    } = prepare(&args).await?;
    initial.log();

    // Listeners first: a taken port stops the start before anything is attached.
    let admin_listener = Bound::bind(Listener::Admin, settings.admin).await?;
    let metrics_listener = match settings.metrics {
        Some(addr) => Some(Bound::bind(Listener::Metrics, addr).await?),
        None => None,
    };

    let mut registry = Registry::with_prefix("shadowd");
    let Metrics {
        admin: admin_metrics,
        reader: reader_stats,
        reassembly: reassembly_stats,
        http: http_counters,
        totals: flow_totals,
        config: config_metrics,
        replay: replay_stats,
    } = Metrics::register(&mut registry);

    // With the kubernetes source, the cluster's Mappings and endpoints, before anything is
    // attached: capture starts with production's endpoints on this node.
    let (cluster, initial, capture_config) = match &settings.kubernetes_node {
        None => (None, initial, capture_config),
        Some(node) => {
            let client = kube::Client::try_default()
                .await
                .map_err(RunError::Kubernetes)?;
            let source = ClusterSource::start(client, node.clone(), &mut registry);
            let snapshot = first_snapshot(&source).await;
            let initial = ActiveConfig::load_with_cluster(&args.config, snapshot, true)
                .map_err(Unusable::from)?;
            initial.log();
            let capture_config = CaptureConfig {
                scope: initial.capture_scope(settings.explicit_ports.as_ref()),
                ..capture_config
            };
            (Some(source), initial, capture_config)
        }
    };
    config_metrics.in_use(&initial);
    let comparison = replay_stats.comparison.clone();
    (comparison.differ).show_credentials(settings.diff_show_credentials);
    let replay_settings = ReplaySettings {
        max_bytes: settings.replay_bytes,
        ..ReplaySettings::new(upstream)
    };
    let max_replay_bytes = replay_settings.max_bytes;
    let (replay_sender, replay_engine) = replay::start(replay_settings, replay_stats.clone());
    let in_flight = replay_stats.in_flight_total.clone();

    let shared: SharedConfig = Arc::new(ArcSwap::from_pointee(initial));
    let sink = Box::new(HttpSink::new(
        settings.reassembly,
        settings.http,
        SinkMetrics {
            reassembly: reassembly_stats,
            http: http_counters,
            totals: flow_totals,
            comparison,
        },
        shared.clone(),
        Offerer::new(replay_stats.clone(), replay_sender, max_replay_bytes),
    ));
    let mut capture = Capture::start(&capture_config, sink, reader_stats).await?;
    let mut program_stats = None;
    if let Some(program) = capture.program_mut() {
        program_stats = Some(program.stats());
        registry.register_collector(Box::new(program.stats()));
        if let Some(logger) = program.logger.take() {
            forward_program_logs(logger);
        }
    }

    let state = Arc::new(AdminState {
        ready: false.into(),
        registry,
        diag: Sources {
            config: shared.clone(),
            explicit_ports: settings.explicit_ports.clone(),
            program: program_stats,
            replay: replay_stats,
            kubernetes: cluster.as_ref().map(|c| c.health.clone()),
        },
        capture: capture.heartbeat(),
        kubernetes: cluster.as_ref().map(|c| c.health.clone()),
    });
    admin_listener.serve(state.clone(), &admin_metrics);
    if let Some(listener) = metrics_listener {
        listener.serve(state.clone(), &admin_metrics);
    }
    // Said before /readyz turns 200, so whoever waits for readiness finds it in the log.
    log_capturing(&capture_config);
    state.ready.store(true, Ordering::Release);

    let mut reloader = Reloader {
        args: &args,
        settings: &settings,
        shared: &shared,
        metrics: &config_metrics,
        last_fingerprint: shared.load().fingerprint,
        cluster: cluster.map(|c| c.snapshots),
        pods: None,
    };
    // `interfaces: auto`: production's pods' veths, found from the endpoints captured.
    let mut pod_interfaces = None;
    if settings.auto_interfaces {
        let (pods, endpoints) = watch::channel(pod_addresses(&shared.load(), &settings));
        pod_interfaces = Some(pod_veths::follow(endpoints).map_err(RunError::PodInterfaces)?);
        reloader.pods = Some(pods);
    }
    let stop = until_stopped(&mut signals, &mut reloader, &mut capture, pod_interfaces).await;
    state.ready.store(false, Ordering::Release);
    // Stopping capture drops the last sender; copies already queued get a short grace.
    capture.shutdown().await;
    if tokio::time::timeout(REPLAY_DRAIN, replay_engine)
        .await
        .is_err()
    {
        tracing::warn!(
            copies = in_flight.get(),
            drain = ?REPLAY_DRAIN,
            "copies still in flight at shutdown were abandoned"
        );
    }
    match stop {
        Stop::Asked => Ok(()),
        Stop::CaptureEnded => Err(RunError::CaptureEnded),
    }
}

/// The signals `run` answers: TERM and INT stop it, HUP reloads the configuration.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, RunError> {
        let install = |kind| signal(kind).map_err(RunError::Signals);
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }
}

/// Why the main loop ended.
enum Stop {
    /// SIGTERM or SIGINT.
    Asked,
    /// The capture thread ended (a panic): it copies nothing more, so shadowd exits and the
    /// DaemonSet restarts it, rather than run on without shadowing.
    CaptureEnded,
}

/// Reloads when asked or when the files change, until a stop signal or the end of the
/// capture thread.
async fn until_stopped(
    signals: &mut Signals,
    reloader: &mut Reloader<'_>,
    capture: &mut Capture,
    mut pod_interfaces: Option<watch::Receiver<BTreeSet<pod_veths::PodVeth>>>,
) -> Stop {
    // With polling off the tick never comes: only SIGHUP reloads.
    let mut poll = reloader.settings.config_poll.map(tokio::time::interval);
    let mut cluster = reloader.cluster.clone();
    // The snapshot the running configuration was loaded with is seen; one that came after
    // it (the first lists took longer than the start waited) applies now.
    if let Some(receiver) = cluster.as_mut() {
        let latest = receiver.borrow_and_update().clone();
        if latest.as_deref() != reloader.shared.load().cluster.as_deref() {
            reloader.reload(capture);
        }
    }
    // Explicit ports capture by port: where production's names point does not matter then.
    let mut moved = match (
        reloader.settings.config_poll,
        &reloader.settings.explicit_ports,
    ) {
        (Some(every), None) => Some(watch_production(reloader.shared.clone(), every)),
        _ => None,
    };
    let heartbeat = capture.heartbeat();
    let mut watch = tokio::time::interval(CAPTURE_WATCH);
    loop {
        tokio::select! {
            _ = watch.tick() => if heartbeat.state() == Liveness::Ended {
                tracing::error!("the capture thread ended: exiting so that shadowd is restarted");
                return Stop::CaptureEnded;
            },
            _ = signals.term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                return Stop::Asked;
            }
            _ = signals.int.recv() => {
                tracing::info!("SIGINT: shutting down");
                return Stop::Asked;
            }
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                reloader.reload(capture);
            }
            _ = next_poll(&mut poll) => reloader.reload_if_changed(capture),
            Some(()) = next_move(&mut moved) => reloader.reload_moved_production(capture),
            Some(wanted) = next_pod_interfaces(&mut pod_interfaces) => {
                capture.follow_pod_interfaces(&wanted);
            }
            Some(()) = next_cluster_change(&mut cluster) => reloader.reload_for_cluster(capture),
        }
    }
}

fn log_capturing(config: &CaptureConfig) {
    tracing::info!(
        interfaces = ?config.interfaces,
        capture = %config.scope,
        output = config.output.as_str(),
        mirror = (config.output == crate::capture::OutputKind::Mirror)
            .then_some(config.mirror_interface.as_str()),
        "capturing"
    );
}

/// Resolves the production services again every `every`, on a task of its own (a resolver
/// waiting on DNS must not hold up signals and reloads), and says when they resolve
/// differently from the configuration in use.
fn watch_production(shared: SharedConfig, every: Duration) -> mpsc::Receiver<()> {
    let (moved, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let config = shared.load_full();
            let resolved = tokio::task::spawn_blocking(move || config.production_moved()).await;
            if resolved.unwrap_or(false) && moved.send(()).await.is_err() {
                return;
            }
        }
    });
    receiver
}

/// The next report of production's services resolving differently; never when not watched.
async fn next_move(moved: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match moved {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// The addresses of the production endpoints `config` captures: the pods whose veths
/// `interfaces: auto` watches.
fn pod_addresses(config: &ActiveConfig, settings: &Settings) -> BTreeSet<IpAddr> {
    config
        .capture_scope(settings.explicit_ports.as_ref())
        .endpoints()
        .map(|endpoint| endpoint.ip())
        .collect()
}

/// The next set of production pods' veths; never without `interfaces: auto`.
async fn next_pod_interfaces(
    wanted: &mut Option<watch::Receiver<BTreeSet<pod_veths::PodVeth>>>,
) -> Option<BTreeSet<pod_veths::PodVeth>> {
    match wanted {
        Some(receiver) => {
            receiver.changed().await.ok()?;
            Some(receiver.borrow_and_update().clone())
        }
        None => std::future::pending().await,
    }
}

/// How long `run` waits for the cluster's first state before it starts with the files
/// only (the cluster's state then applies when it arrives).
const KUBERNETES_FIRST_WAIT: Duration = Duration::from_secs(30);

/// The cluster's first snapshot, or `None` when it did not come in time.
async fn first_snapshot(source: &ClusterSource) -> Option<Arc<ClusterSnapshot>> {
    let mut snapshots = source.snapshots.clone();
    let first = tokio::time::timeout(KUBERNETES_FIRST_WAIT, snapshots.wait_for(Option::is_some));
    match first.await {
        Ok(Ok(snapshot)) => snapshot.clone(),
        _ => {
            tracing::warn!(
                wait = ?KUBERNETES_FIRST_WAIT,
                watches = ?source.health.reports(),
                "the Kubernetes API has not been listed yet: starting with the files only"
            );
            None
        }
    }
}

/// The next change of the cluster's state; never without the kubernetes source.
async fn next_cluster_change(
    cluster: &mut Option<watch::Receiver<Option<Arc<ClusterSnapshot>>>>,
) -> Option<()> {
    match cluster {
        Some(receiver) => receiver.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// The next tick of the configuration poll, or never when polling is off.
async fn next_poll(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Replaces the configuration in use when asked or when its files change.
struct Reloader<'a> {
    args: &'a RunArgs,
    settings: &'a Settings,
    shared: &'a SharedConfig,
    metrics: &'a ConfigMetrics,
    /// Fingerprint of the files at the last attempt, good or bad, so a broken file is
    /// reported once, not at every poll.
    last_fingerprint: u64,
    /// With the kubernetes source, the cluster's latest state.
    cluster: Option<watch::Receiver<Option<Arc<ClusterSnapshot>>>>,
    /// With `interfaces: auto`, where production's pods are, for finding their veths.
    pods: Option<watch::Sender<BTreeSet<IpAddr>>>,
}

impl Reloader<'_> {
    fn reload_if_changed(&mut self, capture: &mut Capture) {
        // With the cluster alone, a reload the kernel refused is tried again from here.
        if self.args.config.is_empty() && self.cluster.is_none() {
            return;
        }
        match fingerprint(&self.args.config) {
            Some(now) if now != self.last_fingerprint => self.reload(capture),
            _ => {}
        }
    }

    /// Reloads because the production services resolve differently, unless the files'
    /// last state was refused: their next change reloads anyway, and a broken file is
    /// reported once.
    fn reload_moved_production(&mut self, capture: &mut Capture) {
        if self.last_fingerprint == self.shared.load().fingerprint {
            tracing::info!("the production services resolve differently: reloading");
            self.reload(capture);
        }
    }

    /// Reloads for a new state of the cluster, unless nothing shadowd uses changed (the
    /// same Mapping documents and production endpoints: another Service's pods moved).
    fn reload_for_cluster(&mut self, capture: &mut Capture) {
        let snapshot = self.cluster.as_ref().and_then(|c| c.borrow().clone());
        let current = self.shared.load();
        if let (Some(snapshot), Some(before)) = (&snapshot, &current.cluster)
            && snapshot.documents == before.documents
        {
            let mut ignored = crate::config::Diagnostics::default();
            let production = tokio::task::block_in_place(|| {
                ProductionScope::resolve(
                    &current.table,
                    Some(snapshot),
                    &SystemResolver,
                    &mut ignored,
                )
            });
            if production == current.production {
                tracing::debug!("the cluster changed, nothing shadowd uses did");
                return;
            }
        }
        tracing::info!("the cluster changed: reloading");
        self.reload(capture);
    }

    fn reload(&mut self, capture: &mut Capture) {
        if self.args.config.is_empty() && self.cluster.is_none() {
            return;
        }
        self.last_fingerprint = fingerprint(&self.args.config).unwrap_or_default();
        let snapshot = self.cluster.as_ref().and_then(|c| c.borrow().clone());
        let kubernetes = self.cluster.is_some();
        // Reading files and resolving names block: other tasks move to other threads
        // meanwhile (the runtime has several).
        let loaded = tokio::task::block_in_place(|| {
            ActiveConfig::load_with_cluster(&self.args.config, snapshot, kubernetes)
        });
        let new = match loaded {
            Ok(new) => new,
            Err(err) => {
                self.metrics.reload(ReloadOutcome::Rejected);
                tracing::error!(
                    error = %crate::error_chain(&err),
                    "the new configuration is unusable; the running one stays in use"
                );
                return;
            }
        };
        new.log();
        // Only the Module's copy edits go in with the table; the rest is read at start.
        let without_copy_edits = |module: Option<&crate::settings::DaemonOptions>| {
            module
                .cloned()
                .map(|module| crate::settings::DaemonOptions {
                    remove_request_headers: None,
                    ..module
                })
        };
        if without_copy_edits(new.module.as_ref())
            != without_copy_edits(self.shared.load().module.as_ref())
        {
            tracing::warn!("shadowd Module settings changed: they take effect at the next start");
        }
        let scope = new.capture_scope(self.settings.explicit_ports.as_ref());
        // Both or neither: routing by a table whose servers the program does not capture
        // would have /diag say what the kernel does not do.
        if let Err(err) = capture.set_scope(scope.clone()) {
            self.metrics.reload(ReloadOutcome::Failed);
            // Unlike a file that does not parse, this may pass: the next poll tries again.
            self.last_fingerprint = 0;
            tracing::error!(
                error = %crate::error_chain(&err),
                "the capture scope could not be changed; the running configuration stays in use"
            );
            return;
        }
        if let Some(pods) = &self.pods {
            pods.send_replace(pod_addresses(&new, self.settings));
        }
        self.metrics.in_use(&new);
        self.metrics.reload(ReloadOutcome::Applied);
        tracing::info!(
            mappings = new.mappings,
            errors = new.diagnostics.errors.len(),
            capture = %scope,
            "configuration reloaded"
        );
        self.shared.store(Arc::new(new));
    }
}

/// Reads the TC program's aya-log ring buffer whenever it has records.
fn forward_program_logs(logger: ProgramLogger) {
    // SAFETY: the logger owns its ring buffer's descriptor, which stays open and unchanged
    // until the logger (moved into the `AsyncFd`) is dropped.
    let registered = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) };
    let mut logger = match registered {
        Ok(fd) => fd,
        Err(err) => {
            tracing::warn!(error = %err, "TC program logs unavailable");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = logger.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
