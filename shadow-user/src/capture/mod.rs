//! The capture path: mirror veth pair, TC program, and the ring reader that hands cloned
//! segments to a [`FrameSink`].

pub mod frame;
pub mod mirror;
pub mod ports;
pub mod program;
pub mod ring;
pub mod stats;
mod tc_metrics;

use std::{
    sync::{Arc, atomic::AtomicBool},
    thread::JoinHandle,
};

pub use frame::{Direction, Frame, FrameSink};
use mirror::{MirrorError, MirrorPair};
use ports::{PortSet, SharedPorts};
use program::{Program, ProgramConfig, ProgramLoadError};
use ring::{Ring, RingConfig, RingError};
use stats::RingStats;

/// Everything capture needs to start.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub interfaces: Vec<String>,
    pub mirror_interface: String,
    pub ports: PortSet,
    pub loop_guard_mark: u32,
    pub ring: RingConfig,
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
}

/// A running capture: stop it with [`Capture::shutdown`].
pub struct Capture {
    mirror: Option<MirrorPair>,
    program: Option<Program>,
    reader: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    ports: SharedPorts,
}

impl Capture {
    /// Creates the mirror pair, starts reading it, then loads and attaches the program, in
    /// that order so no clone arrives before someone reads. On error, undoes what was done.
    pub async fn start(
        config: &CaptureConfig,
        sink: Box<dyn FrameSink>,
        ring_stats: Arc<RingStats>,
    ) -> Result<Capture, CaptureError> {
        let mirror = MirrorPair::create(&config.mirror_interface).await?;
        let ports = SharedPorts::new(config.ports.clone());
        let mut capture = Capture {
            mirror: None,
            program: None,
            reader: None,
            stop: Arc::new(AtomicBool::new(false)),
            ports: ports.clone(),
        };
        let mirror_ifindex = mirror.ifindex;
        let peer_ifindex = mirror.peer_ifindex;
        capture.mirror = Some(mirror);

        let started = async {
            let ring = Ring::open(peer_ifindex, config.ring)?;
            capture.reader = Some(
                ring::spawn(ring, ports, sink, ring_stats, capture.stop.clone())
                    .map_err(CaptureError::Thread)?,
            );
            capture.program = Some(Program::attach(&ProgramConfig {
                interfaces: config.interfaces.clone(),
                mirror_ifindex,
                loop_guard_mark: config.loop_guard_mark,
                ports: config.ports.clone(),
            })?);
            Ok::<(), CaptureError>(())
        }
        .await;
        match started {
            Ok(()) => Ok(capture),
            Err(err) => {
                capture.shutdown().await;
                Err(err)
            }
        }
    }

    /// The attached program (for counters and its log records).
    pub fn program_mut(&mut self) -> Option<&mut Program> {
        self.program.as_mut()
    }

    /// Replaces the capture ports in the kernel and in the reader, without detaching.
    pub fn set_ports(&mut self, ports: PortSet) -> Result<(), CaptureError> {
        if let Some(program) = self.program.as_mut() {
            program.set_ports(&ports)?;
        }
        self.ports.replace(ports);
        Ok(())
    }

    /// Detaches the program, stops the reader and deletes the mirror pair. Errors are logged:
    /// shutdown goes on as far as it can.
    pub async fn shutdown(mut self) {
        if let Some(program) = self.program.take() {
            program.detach();
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
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
