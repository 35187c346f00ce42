//! The capture path: the TC program and a reader that hands the copied segments to a
//! [`FrameSink`] — either the mirror veth pair with its AF_PACKET ring, or the program's BPF
//! ring buffer.

mod attachments;
pub mod frame;
pub mod heartbeat;
pub mod loop_guard;
pub mod mirror;
pub mod pod_veths;
pub mod ports;
pub mod program;
pub mod ringbuf;
pub mod scope;
mod scope_map;
pub mod stats;
mod tc_metrics;

use std::{sync::Arc, thread::JoinHandle};

pub use frame::{Frame, FrameSink};
use heartbeat::{Heartbeat, ReaderControl};
pub use loop_guard::LoopGuard;
use mirror::{MirrorError, MirrorPair};
use mirror::{Ring, RingConfig, RingError};
use program::{Program, ProgramConfig, ProgramLoadError, ProgramOutput};
use ringbuf::RingBufConfig;
use scope::{CaptureScope, SharedScope};
use stats::ReaderStats;

/// How copies of production packets leave the TC program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// `bpf_clone_redirect` onto a mirror veth, read with an AF_PACKET ring.
    Mirror,
    /// Copied by the program into a BPF ring buffer: no clone, no veth hop, no receive
    /// processing on the production CPU, which is why it is the default.
    #[default]
    Ringbuf,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Mirror => "mirror",
            OutputKind::Ringbuf => "ringbuf",
        }
    }
}

/// Everything capture needs to start.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub interfaces: Vec<String>,
    /// Those of `interfaces` where requests leave: pods' veths.
    pub pod_interfaces: std::collections::BTreeSet<String>,
    pub output: OutputKind,
    pub mirror_interface: String,
    pub scope: CaptureScope,
    pub loop_guard: LoopGuard,
    pub ring: RingConfig,
    pub ringbuf: RingBufConfig,
}

/// Errors starting capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("setting up the mirror interface")]
    Mirror(#[from] MirrorError),
    #[error("opening the capture ring")]
    Ring(#[from] RingError),
    #[error("starting the capture thread")]
    Thread(#[source] std::io::Error),
    #[error("loading or attaching the TC program")]
    Program(#[from] ProgramLoadError),
    #[error("mapping the ring buffer into memory")]
    RingBufMap(#[source] std::io::Error),
}

/// A running capture: stop it with [`Capture::shutdown`].
pub struct Capture {
    mirror: Option<MirrorPair>,
    program: Option<Program>,
    reader: Option<JoinHandle<()>>,
    /// Stops the reader thread, and tells whether it still reads.
    control: ReaderControl,
    scope: SharedScope,
    /// Production pods' veths attached by `interfaces: auto`.
    followed: std::collections::BTreeSet<String>,
}

/// Checks, before anything is created or attached, what only the running system can tell:
/// every interface exists, the capture scope fits the program's maps, and the mirror pair's
/// names are free or a pair shadowd made.
pub async fn preflight(config: &CaptureConfig) -> Result<(), CaptureError> {
    if let Some(name) = config
        .interfaces
        .iter()
        .find(|name| mirror::ifindex(name).is_none())
    {
        return Err(ProgramLoadError::NoSuchInterface { name: name.clone() }.into());
    }
    program::check_scope(&config.scope)?;
    if config.output == OutputKind::Mirror {
        mirror::preflight(&config.mirror_interface).await?;
    }
    Ok(())
}

impl Capture {
    /// Starts capture with the configured output. On error, undoes what was done.
    pub async fn start(
        config: &CaptureConfig,
        sink: Box<dyn FrameSink>,
        reader_stats: Arc<ReaderStats>,
    ) -> Result<Capture, CaptureError> {
        match config.output {
            OutputKind::Mirror => Capture::start_mirror(config, sink, reader_stats).await,
            OutputKind::Ringbuf => Capture::start_ringbuf(config, sink, reader_stats).await,
        }
    }

    fn new(scope: CaptureScope) -> Capture {
        Capture {
            mirror: None,
            program: None,
            reader: None,
            control: ReaderControl::default(),
            scope: SharedScope::new(scope),
            followed: Default::default(),
        }
    }

    /// Creates the mirror pair, starts reading it, then loads and attaches the program, in
    /// that order so no clone arrives before someone reads.
    async fn start_mirror(
        config: &CaptureConfig,
        sink: Box<dyn FrameSink>,
        reader_stats: Arc<ReaderStats>,
    ) -> Result<Capture, CaptureError> {
        let mirror = MirrorPair::create(&config.mirror_interface).await?;
        let mut capture = Capture::new(config.scope.clone());
        let mirror_ifindex = mirror.ifindex;
        let peer_ifindex = mirror.peer_ifindex;
        capture.mirror = Some(mirror);

        let started = async {
            let ring = Ring::open(peer_ifindex, config.ring)?;
            capture.reader = Some(
                mirror::ring::spawn(
                    ring,
                    capture.scope.clone(),
                    sink,
                    reader_stats,
                    capture.control.clone(),
                )
                .map_err(CaptureError::Thread)?,
            );
            capture.program = Some(Program::attach(&ProgramConfig {
                interfaces: config.interfaces.clone(),
                pod_interfaces: config.pod_interfaces.clone(),
                output: ProgramOutput::Mirror {
                    ifindex: mirror_ifindex,
                },
                loop_guard: config.loop_guard,
                scope: config.scope.clone(),
            })?);
            Ok::<(), CaptureError>(())
        }
        .await;
        capture.started(started).await
    }

    /// Loads and attaches the program, then reads its ring buffer: copies made before the
    /// reader starts wait in the ring buffer.
    async fn start_ringbuf(
        config: &CaptureConfig,
        sink: Box<dyn FrameSink>,
        reader_stats: Arc<ReaderStats>,
    ) -> Result<Capture, CaptureError> {
        let mut capture = Capture::new(config.scope.clone());
        let started = (|| {
            let mut program = Program::attach(&ProgramConfig {
                interfaces: config.interfaces.clone(),
                pod_interfaces: config.pod_interfaces.clone(),
                output: ProgramOutput::RingBuf(config.ringbuf),
                loop_guard: config.loop_guard,
                scope: config.scope.clone(),
            })?;
            let frames = program.take_frames();
            capture.program = Some(program);
            let frames = frames.ok_or(ProgramLoadError::Missing {
                what: "map",
                name: shadow_common::MAP_FRAMES,
            })?;
            capture.reader = Some(ringbuf::spawn(
                frames,
                config.ringbuf,
                capture.scope.clone(),
                sink,
                reader_stats,
                capture.control.clone(),
            )?);
            Ok::<(), CaptureError>(())
        })();
        capture.started(started).await
    }

    async fn started(self, result: Result<(), CaptureError>) -> Result<Capture, CaptureError> {
        match result {
            Ok(()) => Ok(self),
            Err(err) => {
                self.shutdown().await;
                Err(err)
            }
        }
    }

    /// Whether the reader thread still reads.
    pub fn heartbeat(&self) -> Heartbeat {
        self.control.heartbeat().clone()
    }

    /// The attached program (for counters and its log records).
    pub fn program_mut(&mut self) -> Option<&mut Program> {
        self.program.as_mut()
    }

    /// Replaces the capture scope in the kernel and in the reader, without detaching.
    pub fn set_scope(&mut self, scope: CaptureScope) -> Result<(), CaptureError> {
        if let Some(program) = self.program.as_mut() {
            program.set_scope(&scope)?;
        }
        self.scope.replace(scope);
        Ok(())
    }

    /// Attaches to the production pods' veths in `wanted` and detaches from those it
    /// followed that are no longer there (`interfaces: auto`).
    pub fn follow_pod_interfaces(
        &mut self,
        wanted: &std::collections::BTreeSet<pod_veths::PodVeth>,
    ) {
        if let Some(program) = self.program.as_mut() {
            program.follow_pod_interfaces(&mut self.followed, wanted);
        }
    }

    /// Detaches the program, stops the reader and deletes the mirror pair. Errors are logged:
    /// shutdown goes on as far as it can.
    pub async fn shutdown(mut self) {
        if let Some(program) = self.program.take() {
            program.detach();
        }
        self.control.stop();
        if let Some(reader) = self.reader.take()
            && reader.join().is_err()
        {
            tracing::error!("the capture thread panicked");
        }
        if let Some(mirror) = self.mirror.take() {
            let name = mirror.name.clone();
            match mirror.delete().await {
                Ok(()) => tracing::info!(interface = name, "deleted the mirror pair"),
                Err(err) => {
                    tracing::error!(error = %crate::error_chain(&err), "deleting the mirror pair")
                }
            }
        }
    }
}
