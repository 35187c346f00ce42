//! Metric label values as types: each is a small enum with one fixed spelling per value
//! (`as_str`), so a label can take only the values its type lists, and a series is never
//! named by a typo. [`label_value!`](crate::label_value) encodes such a type as its
//! spelling.

use prometheus_client::encoding::EncodeLabelSet;

use crate::packet::Direction;

/// Implements `EncodeLabelValue` for types with `fn as_str(self) -> &'static str` (the
/// crate using it depends on `prometheus-client`).
#[macro_export]
macro_rules! label_value {
    ($($kind:ty),* $(,)?) => {$(
        impl prometheus_client::encoding::EncodeLabelValue for $kind {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
            ) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}

label_value!(Direction);

/// `direction="request|response"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// The direction.
    pub direction: Direction,
}
