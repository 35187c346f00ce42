//! The admin HTTP server (Ambassador's diagnostics port, 8877 by default): readiness,
//! liveness, Prometheus metrics, `/diag` and Ambassador's `/ambassador/v0/diag/` errors view.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse},
    routing::get,
};

use crate::diag::Sources;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// What the admin endpoints read.
pub struct AdminState {
    /// Set once the program is attached and the configuration loaded (cleared when
    /// shutting down).
    pub ready: AtomicBool,
    pub registry: Registry,
    pub diag: Sources,
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("binding the admin server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` and serves until the process ends. Binding happens before this returns, so a
/// port conflict is reported at start-up.
pub async fn serve(addr: SocketAddr, state: Arc<AdminState>) -> Result<SocketAddr, AdminError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = Router::new()
        .route("/readyz", get(readyz))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/diag", get(diag))
        .route("/ambassador/v0/diag/", get(ambassador_diag))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "admin server stopped");
        }
    });
    tracing::info!(%bound, "admin server listening");
    Ok(bound)
}

async fn readyz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
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
