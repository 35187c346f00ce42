//! Counts of HTTP events (requests, responses, drops by reason), registered as
//! `shadowd_http_*`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::metrics::Registered;

use crate::{
    http::{HttpEvent, Notice, UnsupportedReason},
    packet::Direction,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub direction: Direction,
    /// `DropReason::as_str`: one value per kind (`malformed` whatever was malformed).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnsupportedLabel {
    pub reason: UnsupportedReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoticeLabel {
    pub reason: Notice,
}

/// Counts of HTTP events, registered as `shadowd_http_*`.
#[derive(Debug, Default, Clone)]
pub struct HttpCounters {
    pub requests: Counter,
    /// Complete requests production was never shown to have read as requests.
    pub unconfirmed: Counter,
    pub responses: Counter,
    pub dropped: Family<DropLabels, Counter>,
    pub unsupported: Family<UnsupportedLabel, Counter>,
    pub notices: Family<NoticeLabel, Counter>,
    /// Requests that match no group, or whose group has no shadow.
    pub not_shadowed: Counter,
}

impl HttpCounters {
    /// Counts one event.
    pub fn count(&self, event: &HttpEvent) {
        match event {
            // A streamed request counts once, when it is complete.
            HttpEvent::Request(_) | HttpEvent::RequestEnd { .. } => {
                self.requests.inc();
            }
            HttpEvent::RequestBroken { unread: true, .. } => {
                self.unconfirmed.inc();
            }
            // Its loss is counted by the `Dropped` that comes with it.
            HttpEvent::RequestStreaming(_)
            | HttpEvent::RequestBody { .. }
            | HttpEvent::RequestBroken { .. } => {}
            HttpEvent::Unconfirmed(_) => {
                self.unconfirmed.inc();
            }
            HttpEvent::Response(_) => {
                self.responses.inc();
            }
            HttpEvent::Dropped { direction, reason } => {
                self.dropped
                    .get_or_create(&DropLabels {
                        direction: *direction,
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            HttpEvent::Unsupported { reason } => {
                self.unsupported
                    .get_or_create(&UnsupportedLabel { reason: *reason })
                    .inc();
            }
            HttpEvent::Notice { what } => {
                self.notices
                    .get_or_create(&NoticeLabel { reason: *what })
                    .inc();
            }
        }
    }
}

impl Registered for HttpCounters {
    fn register_in(&self, registry: &mut Registry) {
        let http = registry.sub_registry_with_prefix("http");
        http.register(
            "requests",
            "Complete requests extracted",
            self.requests.clone(),
        );
        http.register(
            "unconfirmed_requests",
            "Complete requests never copied: production was not shown to read them as requests (no handshake seen, no answer acknowledging them)",
            self.unconfirmed.clone(),
        );
        http.register(
            "responses",
            "Complete responses extracted",
            self.responses.clone(),
        );
        http.register(
            "dropped_messages",
            "Messages that could not be produced, by reason",
            self.dropped.clone(),
        );
        http.register(
            "unsupported_flows",
            "Connections that stopped being HTTP/1",
            self.unsupported.clone(),
        );
        http.register(
            "notices",
            "Oddities in messages that were still produced",
            self.notices.clone(),
        );
        http.register(
            "requests_not_shadowed",
            "Requests matching no group, or a group without a shadow",
            self.not_shadowed.clone(),
        );
    }
}
