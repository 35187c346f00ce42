//! The admin HTTP server (Ambassador's diagnostics port, 8877 by default): readiness,
//! liveness, Prometheus metrics, `/diag` and Ambassador's `/ambassador/v0/diag/` errors view;
//! and the optional metrics listener, which serves `/metrics` alone.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use std::{collections::HashMap, fmt::Write as _};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse},
    routing::get,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::{
    capture::heartbeat::{Heartbeat, Liveness},
    diag::Sources,
    kubernetes::WatchHealth,
    labels::label_value,
};

mod listener;

/// What the admin endpoints read.
pub struct AdminState {
    /// Set once the program is attached and the configuration loaded (cleared when
    /// shutting down).
    pub ready: AtomicBool,
    pub registry: Registry,
    pub diag: Sources,
    /// The capture thread's: `/healthz` fails when it stalls or ends.
    pub capture: Heartbeat,
    /// With the kubernetes source, its watches: `/readyz` waits for the required ones to
    /// list, and says how each is doing.
    pub kubernetes: Option<WatchHealth>,
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("binding the {listener} listener to {addr}")]
    Bind {
        listener: Listener,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The two listeners: the admin server has everything; the optional metrics listener only
/// `/metrics`, so Prometheus can reach it on the node's address while `/diag` (route table,
/// service names, file paths) stays on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    Admin,
    Metrics,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Admin => "admin",
            Listener::Metrics => "metrics",
        }
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

label_value!(Listener);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: Listener,
}

/// Counters of the listeners, registered as `shadowd_admin_*`.
#[derive(Debug, Clone, Default)]
pub struct AdminMetrics {
    refused: Family<ListenerLabel, Counter>,
}

impl AdminMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = AdminMetrics::default();
        registry.sub_registry_with_prefix("admin").register(
            "refused_connections",
            "Connections closed at once: the listener had as many open as it serves",
            metrics.refused.clone(),
        );
        metrics
    }
}

/// A listener bound to its address, not yet serving: binding before anything is attached
/// reports a taken port before the program touches the node.
pub struct Bound {
    listener: Listener,
    tcp: TcpListener,
}

impl Bound {
    pub async fn bind(listener: Listener, addr: SocketAddr) -> Result<Bound, AdminError> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind {
                listener,
                addr,
                source,
            })?;
        Ok(Bound { listener, tcp })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// Serves this listener's routes of `state` until the process ends.
    pub fn serve(self, state: Arc<AdminState>, metrics: &AdminMetrics) {
        let app = match self.listener {
            Listener::Admin => Router::new()
                .route("/readyz", get(readyz))
                .route("/healthz", get(healthz))
                .route("/metrics", get(metrics_text))
                .route("/diag", get(diag))
                .route("/ambassador/v0/diag/", get(ambassador_diag)),
            Listener::Metrics => Router::new().route("/metrics", get(metrics_text)),
        }
        .with_state(state);
        let refused = metrics
            .refused
            .get_or_create(&ListenerLabel {
                listener: self.listener,
            })
            .clone();
        tracing::info!(listener = %self.listener, bound = ?self.local_addr(), "listening");
        tokio::spawn(listener::serve(self.tcp, app, refused));
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut ready = state.ready.load(Ordering::Acquire);
    let mut detail = String::new();
    if let Some(health) = &state.kubernetes {
        ready &= health.ready();
        for watch in health.reports() {
            let _ = write!(
                detail,
                "kubernetes {}: {}, {} errors",
                watch.resource,
                if watch.listed { "listed" } else { "not listed" },
                watch.errors
            );
            if let Some(error) = &watch.last_error {
                let _ = write!(detail, ", failing: {error}");
            }
            detail.push('\n');
        }
    }
    if ready {
        (StatusCode::OK, format!("ready\n{detail}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{detail}"),
        )
    }
}

/// Liveness: 200 while the capture thread reads; 503 when it has stalled or ended, so the
/// kubelet restarts a pod that no longer shadows.
async fn healthz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    match state.capture.state() {
        Liveness::Alive => (StatusCode::OK, "ok\n".to_owned()),
        Liveness::Stalled(silent) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("capture stalled: the reader has not read for {silent:.1?}\n"),
        ),
        Liveness::Ended => (
            StatusCode::SERVICE_UNAVAILABLE,
            "capture stopped: the reader thread ended\n".to_owned(),
        ),
    }
}

async fn metrics_text(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `?json=true` (any value but `false`) asks for JSON.
fn wants_json(query: &HashMap<String, String>) -> bool {
    query.get("json").is_some_and(|v| v != "false")
}

async fn diag(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let report = state.diag.report(state.ready.load(Ordering::Acquire));
    if wants_json(&query) {
        Json(report).into_response()
    } else {
        Html(crate::diag::html::render(&report)).into_response()
    }
}

/// Ambassador's diagnostics URL: with `filter=errors`, the `[[rkey, message], ...]` list
/// existing tooling reads; otherwise the whole report.
async fn ambassador_diag(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let report = state.diag.report(state.ready.load(Ordering::Acquire));
    if query.get("filter").is_some_and(|f| f == "errors") {
        Json(report.errors).into_response()
    } else if wants_json(&query) {
        Json(report).into_response()
    } else {
        Html(crate::diag::html::render(&report)).into_response()
    }
}
