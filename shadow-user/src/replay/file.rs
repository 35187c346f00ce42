//! `shadowd replay --pcap`: the requests of a capture file replayed to their shadow services
//! (offline shadowing, like GoReplay's file input), through the same reassembly, routing,
//! copy and replay code as live capture, as fast as the shadows take them.

use std::{path::Path, sync::Arc};

use super::{ReplaySettings, ReplayStats, offer::Offerer, start};
use crate::{
    active::ActiveConfig,
    cmd::extract::ServerSide,
    diff::DiffRequest,
    http::{HttpEvent, HttpFlow},
    pcap::{FileCounts, PcapReadError, read_segments_through},
    pipeline::{Pending, PendingResponses},
    reassembly::{FlowTable, ReassemblyStats},
};

/// Errors of the replay command.
#[derive(Debug, thiserror::Error)]
pub enum ReplayFileError {
    #[error("reading the capture")]
    Pcap(#[from] PcapReadError),
    #[error("the capture reader stopped unexpectedly")]
    Reader,
}

/// Segments between two calls of the progress callback.
const PROGRESS_EVERY: u64 = 4096;

/// Replays `path` with `config`, reading the file through `through` and calling `tick` now
/// and then (a progress bar's reader and its update); returns what the file held. Counters
/// are in `stats`.
pub async fn replay_file<R: std::io::Read + Send>(
    path: &Path,
    config: Arc<ActiveConfig>,
    mut server_side: ServerSide,
    settings: ReplaySettings,
    stats: ReplayStats,
    through: impl FnOnce(std::fs::File) -> R + Send + 'static,
    mut tick: impl FnMut() + Send + 'static,
) -> Result<FileCounts, ReplayFileError> {
    let max_bytes = settings.max_bytes;
    let (sender, engine) = start(settings, stats.clone());
    let path = path.to_path_buf();
    let differ = stats.comparison.clone();
    // Production's answers in the file are kept for the Mappings that diff; nothing is live,
    // so every response waits for its turn to be diffed.
    differ.differ.keeping.set(diff_body_limit(&config));
    differ.differ.wait_for_room();
    let reader = tokio::task::spawn_blocking(move || {
        let mut offerer = Offerer::new(stats, sender, max_bytes).waiting();
        let mut table = FlowTable::new(
            crate::reassembly::Limits::default(),
            ReassemblyStats::default(),
            {
                let limits = crate::http::Limits::whole_bodies();
                let budgets = crate::http::Budgets {
                    keeping: differ.differ.keeping.clone(),
                    ..crate::http::Budgets::new(&limits)
                };
                move |_| HttpFlow::with_budgets(limits, budgets.clone())
            },
        );
        let mut events = Vec::new();
        let mut last = std::time::SystemTime::UNIX_EPOCH;
        let mut pending = PendingResponses::default();
        let mut handle = |events: &mut Vec<_>, offerer: &mut Offerer| {
            for (flow, event) in events.drain(..) {
                match event {
                    HttpEvent::Request(request) => {
                        let (offered, shadowed) = offerer.offer(flow, &config, &request);
                        let diff = DiffRequest::of(offered, &shadowed, &request, false);
                        if let (Some(diff), Some(shadowed)) = (diff, shadowed) {
                            let waiting = Pending {
                                mapping: shadowed.mapping,
                                last_byte: request.last_byte,
                                id: shadowed.id,
                                diff: Some(diff),
                            };
                            pending.insert(flow, request.sequence, waiting);
                        }
                    }
                    HttpEvent::Unconfirmed(request) => {
                        offerer.unconfirmed(&config, &request);
                    }
                    HttpEvent::Response(response) => {
                        let answered = response
                            .request_sequence
                            .and_then(|sequence| pending.take(flow, sequence));
                        if let Some(Pending {
                            mapping,
                            id,
                            diff: Some(diff),
                            ..
                        }) = answered
                        {
                            differ.differ.answered(id, mapping, *diff, &response);
                        }
                    }
                    _ => {}
                }
            }
        };
        let mut segments = 0u64;
        let counts = read_segments_through(&path, through, |ts, segment| {
            last = ts;
            if let Some(direction) = server_side.direction(segment) {
                table.segment(direction, segment, ts, &mut events);
                handle(&mut events, &mut offerer);
            }
            segments += 1;
            if segments.is_multiple_of(PROGRESS_EVERY) {
                tick();
            }
        })?;
        table.flush(last, &mut events);
        handle(&mut events, &mut offerer);
        Ok::<_, PcapReadError>(counts)
        // The offerer (and its sender) is dropped here: the engine drains and ends.
    });
    let counts = reader.await.map_err(|_| ReplayFileError::Reader)??;
    // The engine ends once the queued copies are done.
    let _ = engine.await;
    Ok(counts)
}

/// The largest body a Mapping of `config` diffs (0: none diffs).
pub fn diff_body_limit(config: &ActiveConfig) -> usize {
    config
        .table
        .groups()
        .iter()
        .filter_map(|group| group.shadow.as_ref()?.diff.as_ref())
        .map(|diff| diff.options.max_body_bytes.max(1))
        .max()
        .unwrap_or(0)
}
