//! Loads the embedded TC program, fills its maps, attaches it (TCX) at ingress and egress of
//! each watched interface, and reads its per-CPU counters.
//!
//! Links are owned by this value: dropping it (or the process exiting, even on SIGKILL)
//! detaches everything, because TCX links live only as long as their file descriptor.

use std::sync::{Arc, Mutex};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray},
    programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType, tc::TcAttachOptions},
};
use shadow_common::{
    HOOK_EGRESS, HOOK_INGRESS, KernelSettings, MAP_CAPTURE_ENDPOINTS, MAP_CAPTURE_PORTS,
    MAP_CONFIG, MAP_FRAMES, MAP_READER_STATE, MAP_STATS, MAP_STATS_SLOTS, MAX_CAPTURE_ENDPOINTS,
    MAX_CAPTURE_PORTS, MAX_STATS_SLOTS, OUTPUT_MIRROR, OUTPUT_RINGBUF, PROGRAM_EGRESS,
    PROGRAM_INGRESS, SLOT_REQUESTS_LEAVE, Stats, StatsKey,
};

use super::{
    LoopGuard, mirror,
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
    #[error("attaching to {interface} at {hook} (TCX needs Linux 6.6 or newer)")]
    Attach {
        interface: String,
        hook: &'static str,
        #[source]
        source: ProgramError,
    },
}

/// One attachment point with its own counters.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub interface: String,
    pub hook: &'static str,
    slot: u32,
}

/// The per-CPU counters map, shared with the metrics collector.
#[derive(Clone)]
pub struct StatsReader {
    map: Arc<Mutex<PerCpuArray<MapData, Stats>>>,
    attachments: Arc<Vec<Attachment>>,
}

impl std::fmt::Debug for StatsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsReader")
            .field("attachments", &self.attachments)
            .finish()
    }
}

impl StatsReader {
    /// The counters of every attachment, summed over CPUs.
    pub fn read(&self) -> Vec<(Attachment, Stats)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.attachments
            .iter()
            .map(|attachment| {
                let mut total = Stats::default();
                if let Ok(values) = map.get(&attachment.slot, 0) {
                    for cpu in values.iter() {
                        total.accumulate(cpu);
                    }
                }
                (attachment.clone(), total)
            })
            .collect()
    }
}

/// Reader of the program's aya-log records, forwarded to the `log` facade (and so to tracing).
pub type ProgramLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// The loaded and attached program.
pub struct Program {
    ebpf: Ebpf,
    scope_maps: KernelScopeMaps,
    /// What `scope_maps` hold.
    current_scope: MapContents,
    stats: StatsReader,
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
        let mut slots: HashMap<MapData, StatsKey, u32> = take_map(&mut ebpf, MAP_STATS_SLOTS)?;
        let attachments = assign_stats_slots(&mut slots, config)?;
        let stats_map: PerCpuArray<MapData, Stats> = take_map(&mut ebpf, MAP_STATS)?;
        attach_programs(&mut ebpf, &config.interfaces)?;
        Ok(Program {
            ebpf,
            scope_maps,
            current_scope,
            stats: StatsReader {
                map: Arc::new(Mutex::new(stats_map)),
                attachments: Arc::new(attachments),
            },
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
        self.stats.clone()
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

/// Interfaces the program can count packets of, each hook apart (slot 0 is the catch-all).
pub const MAX_INTERFACES: usize = ((MAX_STATS_SLOTS - 1) / 2) as usize;

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

/// Gives each interface's ingress and egress hook its counters' slot (slot 0 counts
/// packets of interfaces not listed).
fn assign_stats_slots(
    slots: &mut HashMap<MapData, StatsKey, u32>,
    config: &ProgramConfig,
) -> Result<Vec<Attachment>, ProgramLoadError> {
    let mut attachments = Vec::new();
    for (i, interface) in config.interfaces.iter().enumerate() {
        let direction = match config.pod_interfaces.contains(interface) {
            true => SLOT_REQUESTS_LEAVE,
            false => 0,
        };
        let ifindex =
            mirror::ifindex(interface).ok_or_else(|| ProgramLoadError::NoSuchInterface {
                name: interface.clone(),
            })?;
        for (hook, attach_type) in [
            (HOOK_INGRESS, TcAttachType::Ingress),
            (HOOK_EGRESS, TcAttachType::Egress),
        ] {
            let slot = 1 + 2 * i as u32 + hook;
            slots
                .insert(StatsKey { ifindex, hook }, slot | direction, 0)
                .map_err(map_error(MAP_STATS_SLOTS))?;
            attachments.push(Attachment {
                interface: interface.clone(),
                hook: hook_name(attach_type),
                slot,
            });
        }
    }
    Ok(attachments)
}

/// Loads both programs and attaches them to every interface.
fn attach_programs(ebpf: &mut Ebpf, interfaces: &[String]) -> Result<(), ProgramLoadError> {
    for (name, attach_type) in [
        (PROGRAM_INGRESS, TcAttachType::Ingress),
        (PROGRAM_EGRESS, TcAttachType::Egress),
    ] {
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
        for interface in interfaces {
            // TCX explicitly: netlink (cls_bpf) filters would outlive a crashed daemon. First
            // in the chain: a program before it that ends the chain (a CNI's pass or
            // redirect) would hide production's packets; shadowd only reads and hands on.
            program
                .attach_with_options(
                    interface,
                    attach_type,
                    TcAttachOptions::TcxOrder(LinkOrder::first()),
                )
                .map_err(|source| ProgramLoadError::Attach {
                    interface: interface.clone(),
                    hook: hook_name(attach_type),
                    source,
                })?;
            tracing::info!(interface, program = name, "attached");
        }
    }
    Ok(())
}

fn hook_name(attach_type: TcAttachType) -> &'static str {
    if attach_type == TcAttachType::Ingress {
        "ingress"
    } else {
        "egress"
    }
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
