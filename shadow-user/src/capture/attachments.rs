//! The interfaces the program is attached to, each hook with a counters' slot of its own,
//! attached at start and, with `interfaces: auto`, while it runs: pods' veths come and go.
//! A slot given to a new interface starts from zero, so no counter ever goes backwards.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, RwLock},
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, tc::SchedClassifierLinkId, tc::TcAttachOptions,
    },
};
use shadow_common::{
    HOOK_EGRESS, HOOK_INGRESS, InterfaceSlots, MAP_INTERFACE_SLOTS, MAP_INTERFACE_SLOTS_SPILL,
    MAP_STATS, MAX_STATS_SLOTS, PROGRAM_EGRESS, PROGRAM_INGRESS, SLOT_REQUESTS_LEAVE, Stats,
    interface_position,
};

use super::{mirror, program::ProgramLoadError};

/// Interfaces the program can count packets of, each hook apart (slot 0 is the catch-all).
pub const MAX_INTERFACES: usize = ((MAX_STATS_SLOTS - 1) / 2) as usize;

/// Both programs, with the hook each is attached at.
const PROGRAMS: [(&str, TcAttachType, u32); 2] = [
    (PROGRAM_INGRESS, TcAttachType::Ingress, HOOK_INGRESS),
    (PROGRAM_EGRESS, TcAttachType::Egress, HOOK_EGRESS),
];

/// One attachment point with its own counters.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub interface: String,
    pub hook: &'static str,
    slot: u32,
}

/// The per-CPU counters map and the attachments it counts, shared with the metrics
/// collector and `/diag`.
#[derive(Clone)]
pub struct StatsReader {
    map: Arc<Mutex<PerCpuArray<MapData, Stats>>>,
    attachments: Arc<RwLock<Vec<Attachment>>>,
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
        let attachments = self.attachments.read().unwrap_or_else(|e| e.into_inner());
        attachments
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

    /// Sets the counters of `slot` to zero on every CPU.
    fn zero(&self, slot: u32) -> Result<(), ProgramLoadError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, err)| ProgramLoadError::Cpus(err))?;
        let zeros =
            PerCpuValues::try_from(vec![Stats::default(); cpus]).map_err(ProgramLoadError::Cpus)?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.set(slot, zeros, 0)
            .map_err(|source| ProgramLoadError::Map {
                name: MAP_STATS,
                source,
            })
    }
}

/// One attached interface.
struct Attached {
    ifindex: u32,
    /// Its ingress slot; egress is the next.
    base: u32,
    /// Its slots are in the spill map: its entry of the array is another's.
    spilled: bool,
    links: Vec<(&'static str, SchedClassifierLinkId)>,
}

/// The maps that tell the program each interface's counters' slots.
pub struct SlotMaps {
    pub array: Array<MapData, InterfaceSlots>,
    pub spill: HashMap<MapData, u32, u32>,
}

/// What the program is attached to.
pub struct Attachments {
    slots: SlotMaps,
    attached: BTreeMap<String, Attached>,
    stats: StatsReader,
}

impl Attachments {
    /// None yet, with the program's slot and counter maps.
    pub fn new(slots: SlotMaps, counters: PerCpuArray<MapData, Stats>) -> Self {
        Attachments {
            slots,
            attached: BTreeMap::new(),
            stats: StatsReader {
                map: Arc::new(Mutex::new(counters)),
                attachments: Arc::new(RwLock::new(Vec::new())),
            },
        }
    }

    /// The reader of the counters.
    pub fn stats(&self) -> StatsReader {
        self.stats.clone()
    }

    /// The interfaces attached.
    pub fn names(&self) -> BTreeSet<String> {
        self.attached.keys().cloned().collect()
    }

    /// Attaches both programs to `interface`, first in its TCX chains, with counters of its
    /// own; `pod_side`: requests leave through it. All or nothing. Attached already: nothing
    /// to do, unless the name now belongs to another link (a pod's veth re-created), whose
    /// predecessor's attachment is released first.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        interface: &str,
        pod_side: bool,
    ) -> Result<(), ProgramLoadError> {
        let ifindex =
            mirror::ifindex(interface).ok_or_else(|| ProgramLoadError::NoSuchInterface {
                name: interface.to_string(),
            })?;
        match self.attached.get(interface) {
            Some(attached) if attached.ifindex == ifindex => return Ok(()),
            Some(_) => self.detach(ebpf, interface),
            None => {}
        }
        // An interface gone under another name whose index this one now has: its slots
        // would take this one's packets.
        let gone: Vec<String> = self
            .attached
            .iter()
            .filter(|(name, other)| other.ifindex == ifindex && name.as_str() != interface)
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.detach(ebpf, &name);
        }
        let used: BTreeSet<u32> = self.attached.values().map(|a| a.base).collect();
        let base = (0..MAX_INTERFACES as u32)
            .map(|i| 1 + 2 * i)
            .find(|base| !used.contains(base))
            .ok_or(ProgramLoadError::TooManyInterfaces)?;
        let direction = if pod_side { SLOT_REQUESTS_LEAVE } else { 0 };
        let spilled = self.attached.values().any(|other| {
            !other.spilled && interface_position(other.ifindex) == interface_position(ifindex)
        });
        let mut attached = Attached {
            ifindex,
            base,
            spilled,
            links: Vec::new(),
        };
        let result = (|| {
            for (_, _, hook) in PROGRAMS {
                self.stats.zero(base + hook)?;
            }
            // Before attaching: the program's first packet on the interface finds its slots.
            self.slots.set(&attached, base | direction)?;
            for (name, attach_type, hook) in PROGRAMS {
                let program = classifier(ebpf, name)?;
                // TCX explicitly: netlink (cls_bpf) filters would outlive a crashed daemon.
                // First in the chain: a program before it that ends the chain (a CNI's pass
                // or redirect) would hide production's packets; shadowd only reads and
                // hands on.
                let link = program
                    .attach_with_options(
                        interface,
                        attach_type,
                        TcAttachOptions::TcxOrder(LinkOrder::first()),
                    )
                    .map_err(|source| ProgramLoadError::Attach {
                        interface: interface.to_string(),
                        hook: hook_name(hook),
                        source,
                    })?;
                attached.links.push((name, link));
                tracing::info!(interface, program = name, "attached");
            }
            Ok(())
        })();
        if let Err(err) = result {
            self.release(ebpf, interface, attached);
            return Err(err);
        }
        let mut listed = self
            .stats
            .attachments
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (_, _, hook) in PROGRAMS {
            listed.push(Attachment {
                interface: interface.to_string(),
                hook: hook_name(hook),
                slot: base + hook,
            });
        }
        drop(listed);
        self.attached.insert(interface.to_string(), attached);
        Ok(())
    }

    /// Detaches from `interface` (gone with its pod, it may already be detached).
    pub fn detach(&mut self, ebpf: &mut Ebpf, interface: &str) {
        if let Some(attached) = self.attached.remove(interface) {
            self.release(ebpf, interface, attached);
            tracing::info!(interface, "detached");
        }
    }

    /// Undoes what attaching `interface` did, as far as it went.
    fn release(&mut self, ebpf: &mut Ebpf, interface: &str, mut attached: Attached) {
        for (name, link) in std::mem::take(&mut attached.links) {
            if let Ok(program) = classifier(ebpf, name) {
                // Fails only when the link went with its interface: nothing left to undo.
                let _ = program.detach(link);
            }
        }
        // After detaching: no packet of the interface looks its slots up any more.
        self.slots.clear(&attached);
        self.stats
            .attachments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a| {
                a.interface != interface || a.slot < attached.base || a.slot > attached.base + 1
            });
    }
}

impl SlotMaps {
    /// Tells the program `attached`'s slots.
    fn set(&mut self, attached: &Attached, slots: u32) -> Result<(), ProgramLoadError> {
        if attached.spilled {
            self.spill
                .insert(attached.ifindex, slots, 0)
                .map_err(|source| ProgramLoadError::Map {
                    name: MAP_INTERFACE_SLOTS_SPILL,
                    source,
                })
        } else {
            let entry = InterfaceSlots {
                ifindex: attached.ifindex,
                slots,
            };
            self.array
                .set(interface_position(attached.ifindex), entry, 0)
                .map_err(|source| ProgramLoadError::Map {
                    name: MAP_INTERFACE_SLOTS,
                    source,
                })
        }
    }

    /// Forgets `attached`'s slots (perhaps never set: attaching failed first). An interface
    /// not spilled is the only one at its position, so its entry is cleared whatever it holds.
    fn clear(&mut self, attached: &Attached) {
        let _ = if attached.spilled {
            self.spill.remove(&attached.ifindex)
        } else {
            self.array.set(
                interface_position(attached.ifindex),
                InterfaceSlots::default(),
                0,
            )
        };
    }
}

/// The loaded classifier `name`.
fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, ProgramLoadError> {
    ebpf.program_mut(name)
        .ok_or(ProgramLoadError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(|source| ProgramLoadError::Program { name, source })
}

fn hook_name(hook: u32) -> &'static str {
    if hook == HOOK_INGRESS {
        "ingress"
    } else {
        "egress"
    }
}
