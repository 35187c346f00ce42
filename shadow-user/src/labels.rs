//! Metric label values as types: each is a small enum with one fixed spelling per value
//! (`as_str`), so a label can take only the values its type lists, and a series is never
//! named by a typo. [`label_value!`] encodes such a type as its spelling.

use prometheus_client::encoding::EncodeLabelSet;
// The macro and the direction label live with the parsers, whose counters use them too.
pub(crate) use shadow_wire::{label_value, labels::DirectionLabel};

/// `mapping="<shadow Mapping name>"`: the names come from the configuration, a small set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MappingLabel {
    pub mapping: String,
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        metrics::{counter::Counter, family::Family},
        registry::Registry,
    };

    use super::*;
    use crate::packet::Direction;

    #[test]
    fn a_typed_label_is_written_as_its_spelling() {
        let family = Family::<DirectionLabel, Counter>::default();
        let mut registry = Registry::default();
        registry.register("bytes", "Bytes", family.clone());
        family
            .get_or_create(&DirectionLabel {
                direction: Direction::Response,
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("bytes_total{direction=\"response\"} 1"),
            "{text}"
        );
    }
}
