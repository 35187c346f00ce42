//! The loop guard: shadowd's replay sockets carry an `skb->mark`, and the program never
//! copies a packet that carries it, so a copy sent to a shadow on a captured interface and
//! port is not captured and copied again. Other datapath components (kube-proxy, Cilium,
//! Calico) set bits of their own in the same mark on the way, so only the bits under a mask
//! are compared.

/// The mark of replay traffic and the bits of `skb->mark` compared with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopGuard {
    /// 0 turns the guard off.
    pub mark: u32,
    pub mask: u32,
}

impl LoopGuard {
    /// Low byte only: kube-proxy uses bits 0x4000 and 0x8000, Cilium 0x0F00 and the upper
    /// half, Calico the upper half by default.
    pub const DEFAULT: LoopGuard = LoopGuard {
        mark: 0x5A,
        mask: 0xFF,
    };

    /// The mask for `mark` when none is given: the default low byte for a mark that fits in
    /// it, else every bit, as marks were compared before masks existed (a mark chosen then
    /// keeps working).
    pub fn default_mask(mark: u32) -> u32 {
        if mark & !Self::DEFAULT.mask == 0 {
            Self::DEFAULT.mask
        } else {
            u32::MAX
        }
    }

    /// A guard whose mark lies within its mask (a bit outside it could never match).
    pub fn new(mark: u32, mask: u32) -> Result<LoopGuard, LoopGuardError> {
        if mark & !mask != 0 {
            return Err(LoopGuardError::OutsideMask { mark, mask });
        }
        Ok(LoopGuard { mark, mask })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoopGuardError {
    #[error("loop guard mark {mark:#x} has bits outside its mask {mask:#x}: it could never match")]
    OutsideMask { mark: u32, mask: u32 },
}

#[cfg(test)]
mod tests {
    use shadow_common::KernelSettings;

    use super::*;

    /// What the program decides for a packet marked `mark` under `guard`.
    fn kernel(guard: LoopGuard) -> KernelSettings {
        KernelSettings {
            loop_guard_mark: guard.mark,
            loop_guard_mask: guard.mask,
            ..KernelSettings::default()
        }
    }

    #[test]
    fn bits_other_components_set_outside_the_mask_do_not_hide_the_mark() {
        let guard = kernel(LoopGuard::DEFAULT);
        assert!(guard.guards(0x5A));
        assert!(guard.guards(0x5A | 0x4000), "kube-proxy's masquerade bit");
        assert!(
            guard.guards(0x5A | 0x0F00 | 0xABCD_0000),
            "Cilium's and Calico's bits"
        );
        assert!(!guard.guards(0x5B));
        assert!(!guard.guards(0x4000));
        assert!(
            !kernel(LoopGuard::new(0, 0xFF).unwrap()).guards(0),
            "0 is off"
        );
        assert_eq!(
            LoopGuard::new(0x5AD0, 0xFF),
            Err(LoopGuardError::OutsideMask {
                mark: 0x5AD0,
                mask: 0xFF
            })
        );
        assert!(kernel(LoopGuard::new(0x5AD0, 0xFFFF).unwrap()).guards(0x8000_5AD0));
    }
}
