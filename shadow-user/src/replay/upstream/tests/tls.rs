//! `https://` shadows: a rustls server with a throw-away self-signed certificate, trusted
//! through the CA file option, accepted unverified, or rejected.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring::default_provider,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

use super::{GET, Reply, Server, config, send, service};
use crate::{
    config::Scheme,
    replay::upstream::{
        TlsClient, TlsOptions, TlsSetupError, Upstream, UpstreamConfig, UpstreamError,
        error::ConnectStage,
    },
};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A server with a self-signed certificate, and that certificate.
struct TlsServer {
    server: Server,
    cert_pem: String,
}

/// A server whose certificate is for `localhost` and `127.0.0.1`.
async fn tls_server(replies: Vec<Reply>) -> TlsServer {
    tls_server_for(&["localhost", "127.0.0.1"], replies).await
}

async fn tls_server_for(names: &[&str], replies: Vec<Reply>) -> TlsServer {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    TlsServer {
        server: Server::start_with(replies, Some(acceptor)).await,
        cert_pem: certified.cert.pem(),
    }
}

/// A file removed when dropped, even when the test fails.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "shadowd-upstream-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn upstream(host: &str, server: &Server, tls: TlsClient) -> Arc<Upstream> {
    let config = Arc::new(UpstreamConfig {
        tls,
        ..(*config(1, Duration::from_secs(2))).clone()
    });
    Upstream::new(service(Scheme::Https, host, server.addr), config)
}

#[tokio::test]
async fn a_shadow_signed_by_the_extra_ca_is_trusted() {
    let tls = tls_server(vec![Reply::Send(vec![OK]), Reply::Send(vec![OK])]).await;
    let ca_file = TempFile::new(&tls.cert_pem);
    let client = TlsClient::new(&TlsOptions {
        extra_ca_file: Some(ca_file.0.clone()),
        insecure_skip_verify: false,
    })
    .unwrap();
    let upstream = upstream("localhost", &tls.server, client);
    for _ in 0..2 {
        let mut connection = upstream.connection().await.unwrap();
        let exchange = send(&mut connection, GET, false).await.unwrap();
        assert_eq!((exchange.status, exchange.reusable), (200, true));
        upstream.put_back(connection);
    }
    assert_eq!(tls.server.accepted(), 1);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let tls = tls_server(vec![Reply::Send(vec![OK])]).await;
    let client = TlsClient::new(&TlsOptions {
        extra_ca_file: None,
        insecure_skip_verify: true,
    })
    .unwrap();
    let upstream = upstream("127.0.0.1", &tls.server, client);
    let mut connection = upstream.connection().await.unwrap();
    assert_eq!(send(&mut connection, GET, false).await.unwrap().status, 200);
}

#[tokio::test]
async fn an_untrusted_certificate_is_rejected() {
    let tls = tls_server(vec![Reply::Send(vec![OK])]).await;
    let client = TlsClient::new(&TlsOptions::default()).unwrap();
    let upstream = upstream("127.0.0.1", &tls.server, client);
    let err = upstream.connection().await.unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::ConnectFailed {
                stage: ConnectStage::Tls,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(tls.server.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_rejected() {
    let tls = tls_server_for(&["other.example"], vec![Reply::Send(vec![OK])]).await;
    let ca_file = TempFile::new(&tls.cert_pem);
    let client = TlsClient::new(&TlsOptions {
        extra_ca_file: Some(ca_file.0.clone()),
        insecure_skip_verify: false,
    })
    .unwrap();
    let err = upstream("127.0.0.1", &tls.server, client)
        .connection()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::ConnectFailed {
                stage: ConnectStage::Tls,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unusable_ca_files_are_setup_errors() {
    let missing = TlsOptions {
        extra_ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
        insecure_skip_verify: false,
    };
    assert!(matches!(
        TlsClient::new(&missing),
        Err(TlsSetupError::CaFile { .. })
    ));
    let empty = TempFile::new("no certificate here\n");
    let no_certs = TlsOptions {
        extra_ca_file: Some(empty.0.clone()),
        insecure_skip_verify: false,
    };
    assert!(matches!(
        TlsClient::new(&no_certs),
        Err(TlsSetupError::NoCaCertificate { .. })
    ));
}
