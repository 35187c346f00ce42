//! Response diffing for shadowd: production's response to a request against the shadow's
//! response to its copy, field by field (status, headers, body; JSON bodies by field path),
//! and noise learnt from production itself (identical requests answered differently), so
//! that only differences the shadow makes are flagged. No I/O and no daemon: the daemon feeds
//! it the responses it has paired.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod decode;
pub mod endpoint;
pub mod fields;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod noise;

pub use decode::{DecodeError, decoded_body, decoded_digest};
pub use endpoint::{Endpoints, endpoint_of};
pub use fields::{DiffOptions, Difference, Fields, Response, differences, text_diff};
pub use noise::{FieldVerdict, ProductionMemory, Tally, Thresholds, request_key};
