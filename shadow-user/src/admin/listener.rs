//! Serving an admin router with bounds, since the listener may face more than the kubelet
//! and Prometheus: at most [`MAX_CONNECTIONS`] at once (one more is closed at once and
//! counted), a request head must arrive within [`HEAD_TIMEOUT`] (a slow client cannot hold a
//! connection), and no connection lives longer than [`MAX_CONNECTION_AGE`].

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use prometheus_client::metrics::counter::Counter;
use tokio::{net::TcpListener, sync::Semaphore};

/// Connections served at once per listener: probes and scrapes need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request head, and to start the next one on a
/// kept-alive connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any connection is served; a scraper reconnects.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` until the process ends; `refused` counts connections closed
/// because [`MAX_CONNECTIONS`] were open.
pub async fn serve(listener: TcpListener, app: Router, refused: Counter) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                // Out of file descriptors, most likely: try again shortly rather than spin.
                tracing::warn!(error = %err, "accepting an admin connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refused.inc();
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(MAX_CONNECTION_AGE, connection).await;
            drop(permit);
        });
    }
}
