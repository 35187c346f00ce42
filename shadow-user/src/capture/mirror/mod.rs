//! The mirror output: the TC program clones each captured packet onto a veth pair
//! ([`veth`]), and an AF_PACKET ring on the pair's peer reads the clones ([`ring`]).

pub mod ring;
pub mod veth;

pub use ring::{Ring, RingConfig, RingError};
pub use veth::{MirrorError, MirrorPair, ifindex, preflight, valid_name};
