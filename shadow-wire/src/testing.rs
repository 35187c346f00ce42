//! Helpers for this crate's tests.

/// Cuts `stream` into segments at `cuts` (each taken modulo the stream's length): each
/// segment with its offset.
pub(crate) fn segments_of(stream: &[u8], cuts: &[usize]) -> Vec<(usize, Vec<u8>)> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    bounds.extend([0, stream.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|w| (w[0], stream[w[0]..w[1]].to_vec()))
        .collect()
}
