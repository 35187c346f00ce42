//! `shadowd run`: starts the admin server and capture, then waits for SIGINT/SIGTERM and
//! tears everything down.

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::registry::Registry;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    admin::{self, AdminError, AdminState},
    capture::{
        Capture, CaptureConfig, CaptureError, FrameSink,
        ports::PortSet,
        program::ProgramLogger,
        ring::RingConfig,
        stats::RingStats,
        tally::{StreamTally, TallyStats},
    },
    cli::RunArgs,
    pipeline::{FlowTotals, HttpCounters, HttpSink},
    reassembly::{Limits, ReassemblyStats},
};

/// Errors of `shadowd run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("admin server")]
    Admin(#[from] AdminError),
    #[error("capture")]
    Capture(#[from] CaptureError),
    #[error("installing signal handlers")]
    Signals(#[source] std::io::Error),
}

impl RunError {
    /// Exit code: 64 (EX_USAGE) when the command line names something unusable.
    pub fn exit_code(&self) -> i32 {
        use crate::capture::{mirror::MirrorError, program::ProgramLoadError};
        match self {
            RunError::Capture(CaptureError::Program(
                ProgramLoadError::NoSuchInterface { .. }
                | ProgramLoadError::TooManyPorts { .. }
                | ProgramLoadError::TooManyInterfaces { .. },
            ))
            | RunError::Capture(CaptureError::Mirror(MirrorError::InvalidName { .. }))
            | RunError::Capture(CaptureError::Ring(crate::capture::ring::RingError::BlockSize {
                ..
            })) => 64,
            _ => 1,
        }
    }
}

/// Runs until a termination signal.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;

    let mut registry = Registry::with_prefix("shadowd");
    let ring_stats = Arc::new(RingStats::default());
    ring_stats.register(&mut registry);
    let tally_stats = TallyStats::default();
    tally_stats.register(&mut registry);

    let config = CaptureConfig {
        interfaces: args.interfaces.clone(),
        mirror_interface: args.mirror_interface.clone(),
        ports: PortSet::new(args.capture_ports.iter().copied()),
        loop_guard_mark: args.loop_guard_mark,
        ring: RingConfig {
            block_size: args.ring_block_size,
            block_count: args.ring_blocks,
            block_timeout: args.ring_block_timeout(),
        },
    };
    let reassembly_stats = ReassemblyStats::default();
    reassembly_stats.register(&mut registry);
    let http_counters = HttpCounters::default();
    http_counters.register(&mut registry);
    let flow_totals = Arc::new(FlowTotals::default());
    flow_totals.register(&mut registry);
    let sinks: Vec<Box<dyn FrameSink>> = vec![
        Box::new(StreamTally::new(tally_stats)),
        Box::new(HttpSink::new(
            Limits::default(),
            reassembly_stats,
            http_counters,
            flow_totals,
        )),
    ];
    let sink = Box::new(sinks);
    let mut capture = Capture::start(&config, sink, ring_stats).await?;
    if let Some(program) = capture.program_mut() {
        registry.register_collector(Box::new(program.stats()));
        if let Some(logger) = program.logger.take() {
            forward_program_logs(logger);
        }
    }

    let state = Arc::new(AdminState {
        ready: false.into(),
        registry,
    });
    if let Err(err) = admin::serve(args.admin, state.clone()).await {
        capture.shutdown().await;
        return Err(err.into());
    }
    state.ready.store(true, Ordering::Release);
    tracing::info!(
        interfaces = ?config.interfaces,
        ports = ?config.ports,
        mirror = config.mirror_interface,
        "capturing"
    );

    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    state.ready.store(false, Ordering::Release);
    capture.shutdown().await;
    Ok(())
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
