//! Loads the embedded TC program, fills its maps, attaches it (TCX) at ingress and egress of
//! each watched interface, and reads its per-CPU counters.
//!
//! Links are owned by this value: dropping it (or the process exiting, even on SIGKILL)
//! detaches everything, because TCX links live only as long as their file descriptor.

use std::collections::BTreeSet;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, MapError},
    programs::{ProgramError, SchedClassifier},
};
use shadow_common::{
    KernelSettings, MAP_CAPTURE_ENDPOINTS, MAP_CAPTURE_PORTS, MAP_CONFIG, MAP_FRAMES,
    MAP_INTERFACE_SLOTS, MAP_INTERFACE_SLOTS_SPILL, MAP_READER_STATE, MAP_STATS,
    MAX_CAPTURE_ENDPOINTS, MAX_CAPTURE_PORTS, OUTPUT_MIRROR, OUTPUT_RINGBUF, PROGRAM_EGRESS,
    PROGRAM_INGRESS,
};

pub use super::attachments::{MAX_INTERFACES, StatsReader};
use super::{
    LoopGuard,
    attachments::{Attachments, SlotMaps},
    pod_veths::PodVeth,
    ringbuf::{RingBufConfig, RingBufMaps},
    scope::CaptureScope,
    scope_map::{self, KernelScopeMaps, MapContents},
};

/// The TC object built by `build.rs`.
static PROGRAM_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shadow-tc"));

/// Errors loading or attaching the program.
#[derive(Debug, thiserror::Error)]
pub enum ProgramLoadError {
    #[error("loading the TC object (is this root, on a kernel with BPF and BTF?)")]
    Load(#[source] aya::EbpfError),
    #[error("the TC object has no {what} named {name}")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("program {name}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("interface {name:?} does not exist")]
    NoSuchInterface { name: String },
    #[error("{count} capture ports given, the kernel map holds {MAX_CAPTURE_PORTS}")]
    TooManyPorts { count: usize },
    #[error(
        "{count} production endpoints to capture, the kernel map holds {MAX_CAPTURE_ENDPOINTS}"
    )]
    TooManyEndpoints { count: usize },
    #[error("no free counters' slot: {MAX_INTERFACES} interfaces are attached")]
    TooManyInterfaces,
    #[error("counting the CPUs")]
    Cpus(#[source] std::io::Error),
    #[error("attaching to {interface} at {hook} (TCX needs Linux 6.6 or newer)")]
    Attach {
        interface: String,
        hook: &'static str,
        #[source]
        source: ProgramError,
    },
}

/// Reader of the program's aya-log records, forwarded to the `log` facade (and so to tracing).
pub type ProgramLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The loaded and attached program.
pub struct Program {
    ebpf: Ebpf,
    scope_maps: KernelScopeMaps,
    /// What `scope_maps` hold.
    current_scope: MapContents,
    attachments: Attachments,
    /// Logger for the program's aya-log records; polled by the caller.
    pub logger: Option<ProgramLogger>,
    /// With [`ProgramOutput::RingBuf`], the ring buffer until the reader takes it.
    frames: Option<RingBufMaps>,
}

/// Where the program hands the packets it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramOutput {
    /// `bpf_clone_redirect` onto this interface (the mirror veth).
    Mirror { ifindex: u32 },
    /// Copies into the program's BPF ring buffer.
    RingBuf(RingBufConfig),
}

/// What the program needs to know.
#[derive(Debug, Clone)]
pub struct ProgramConfig {
    pub interfaces: Vec<String>,
    /// Those of `interfaces` where requests leave: pods' veths.
    pub pod_interfaces: std::collections::BTreeSet<String>,
    pub output: ProgramOutput,
    pub loop_guard: LoopGuard,
    pub scope: CaptureScope,
}

impl Program {
    /// Loads the program, fills its maps and attaches it to every interface.
    pub fn attach(config: &ProgramConfig) -> Result<Program, ProgramLoadError> {
        debug_assert!(
            config.interfaces.len() <= MAX_INTERFACES,
            "checked in settings"
        );
        check_scope(&config.scope)?;
        // A ring buffer is at least one page; the mirror output leaves it at that.
        let frames_size = match config.output {
            ProgramOutput::Mirror { .. } => 4096,
            ProgramOutput::RingBuf(ringbuf) => ringbuf.size,
        };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_FRAMES, frames_size)
            .load(PROGRAM_OBJECT)
            .map_err(ProgramLoadError::Load)?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(logger),
            Err(err) => {
                tracing::warn!(error = %err, "TC program logs unavailable");
                None
            }
        };
        let frames = configure(&mut ebpf, config)?;
        let mut scope_maps = KernelScopeMaps {
            ports: take_map(&mut ebpf, MAP_CAPTURE_PORTS)?,
            endpoints: take_map(&mut ebpf, MAP_CAPTURE_ENDPOINTS)?,
        };
        let mut current_scope = MapContents::default();
        scope_map::replace(
            &mut scope_maps,
            &mut current_scope,
            &MapContents::from(&config.scope),
        )
        .map_err(map_error(SCOPE_MAPS))?;
        let mut attachments = Attachments::new(
            SlotMaps {
                array: take_map(&mut ebpf, MAP_INTERFACE_SLOTS)?,
                spill: take_map(&mut ebpf, MAP_INTERFACE_SLOTS_SPILL)?,
            },
            take_map(&mut ebpf, MAP_STATS)?,
        );
        load_programs(&mut ebpf)?;
        for interface in &config.interfaces {
            let pod_side = config.pod_interfaces.contains(interface);
            attachments.attach(&mut ebpf, interface, pod_side)?;
        }
        Ok(Program {
            ebpf,
            scope_maps,
            current_scope,
            attachments,
            logger,
            frames,
        })
    }

    /// The ring buffer the program copies into (once; `None` with the mirror output).
    pub fn take_frames(&mut self) -> Option<RingBufMaps> {
        self.frames.take()
    }

    /// A reader of the program's counters, usable after `self` is gone only until then.
    pub fn stats(&self) -> StatsReader {
        self.attachments.stats()
    }

    /// Attaches to each pod's veth of `wanted` not attached yet (or re-created under its
    /// name), and detaches from the pods' veths in `followed` that are no longer wanted;
    /// `followed` follows what is attached. An interface that cannot be attached (gone
    /// meanwhile) is logged and left. Interfaces named in the configuration stay as they are.
    pub fn follow_pod_interfaces(
        &mut self,
        followed: &mut BTreeSet<String>,
        wanted: &BTreeSet<PodVeth>,
    ) {
        let names: BTreeSet<String> = wanted.iter().map(|(name, _)| name.clone()).collect();
        let gone: Vec<String> = followed.difference(&names).cloned().collect();
        for interface in gone {
            self.attachments.detach(&mut self.ebpf, &interface);
            followed.remove(&interface);
        }
        let configured = &self.attachments.names() - followed;
        for name in names.difference(&configured) {
            match self.attachments.attach(&mut self.ebpf, name, true) {
                Ok(()) => {
                    followed.insert(name.clone());
                }
                Err(err) => tracing::warn!(
                    interface = name,
                    error = %crate::error_chain(&err),
                    "a production pod's veth could not be attached"
                ),
            }
        }
    }

    /// Replaces the capture scope without detaching, all or nothing (see `scope_map`).
    pub fn set_scope(&mut self, wanted: &CaptureScope) -> Result<(), ProgramLoadError> {
        check_scope(wanted)?;
        scope_map::replace(
            &mut self.scope_maps,
            &mut self.current_scope,
            &MapContents::from(wanted),
        )
        .map_err(map_error(SCOPE_MAPS))
    }

    /// Detaches from every interface and unloads (same as dropping, but says so).
    pub fn detach(self) {
        let programs = self.ebpf.programs().count();
        drop(self);
        tracing::info!(programs, "detached and unloaded the TC programs");
    }
}

/// How errors name the two maps a capture scope is written to.
const SCOPE_MAPS: &str = "CAPTURE_PORTS/CAPTURE_ENDPOINTS";

/// Refuses more capture ports or endpoints than the program's maps hold.
pub fn check_scope(scope: &CaptureScope) -> Result<(), ProgramLoadError> {
    let count = scope.port_flags().count();
    if count > MAX_CAPTURE_PORTS as usize {
        return Err(ProgramLoadError::TooManyPorts { count });
    }
    let count = scope.endpoints().count();
    if count > MAX_CAPTURE_ENDPOINTS as usize {
        return Err(ProgramLoadError::TooManyEndpoints { count });
    }
    Ok(())
}

/// Writes the program's settings (its output and loop guard); with the ring buffer output,
/// takes the maps its reader needs.
fn configure(
    ebpf: &mut Ebpf,
    config: &ProgramConfig,
) -> Result<Option<RingBufMaps>, ProgramLoadError> {
    let (output, mirror_ifindex) = match config.output {
        ProgramOutput::Mirror { ifindex } => (OUTPUT_MIRROR, ifindex),
        ProgramOutput::RingBuf(_) => (OUTPUT_RINGBUF, 0),
    };
    // Borrowed, not taken: a map dropped before the programs load closes the descriptor
    // their instructions refer to.
    let map = ebpf.map_mut(MAP_CONFIG).ok_or(ProgramLoadError::Missing {
        what: "map",
        name: MAP_CONFIG,
    })?;
    let mut settings: Array<&mut MapData, KernelSettings> =
        Array::try_from(map).map_err(map_error(MAP_CONFIG))?;
    settings
        .set(
            0,
            KernelSettings {
                output,
                mirror_ifindex,
                loop_guard_mark: config.loop_guard.mark,
                loop_guard_mask: config.loop_guard.mask,
            },
            0,
        )
        .map_err(map_error(MAP_CONFIG))?;
    if output != OUTPUT_RINGBUF {
        return Ok(None);
    }
    let frames = match ebpf.take_map(MAP_FRAMES) {
        Some(Map::RingBuf(frames)) => frames,
        _ => {
            return Err(ProgramLoadError::Missing {
                what: "ring buffer map",
                name: MAP_FRAMES,
            });
        }
    };
    Ok(Some(RingBufMaps {
        frames,
        reader_state: take_map(ebpf, MAP_READER_STATE)?,
    }))
}

/// Loads both programs into the kernel (the verifier runs here), unattached.
fn load_programs(ebpf: &mut Ebpf) -> Result<(), ProgramLoadError> {
    for name in [PROGRAM_INGRESS, PROGRAM_EGRESS] {
        let program: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or(ProgramLoadError::Missing {
                what: "program",
                name,
            })?
            .try_into()
            .map_err(|source| ProgramLoadError::Program { name, source })?;
        program
            .load()
            .map_err(|source| ProgramLoadError::Program { name, source })?;
    }
    Ok(())
}

fn map_error(name: &'static str) -> impl Fn(MapError) -> ProgramLoadError {
    move |source| ProgramLoadError::Map { name, source }
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProgramLoadError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(ProgramLoadError::Missing { what: "map", name })?;
    T::try_from(map).map_err(|source| ProgramLoadError::Map { name, source })
}
