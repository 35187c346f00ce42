//! TLS for `https://` shadow services: the system's CA certificates plus an optional extra
//! CA file, or, for test setups only, no verification at all.

use std::{path::PathBuf, sync::Arc};

use tokio_rustls::{
    TlsConnector,
    rustls::{
        self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        crypto::WebPkiSupportedAlgorithms,
        pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    },
};

/// How shadow services' certificates are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates trusted besides the system's (for shadows with
    /// certificates from a private CA).
    pub extra_ca_file: Option<PathBuf>,
    /// UNSAFE: accept any certificate for any name, so anyone on the path can read and
    /// alter the copies. For test setups with throw-away certificates only.
    pub insecure_skip_verify: bool,
}

/// Why the TLS client could not be set up (at start-up, before anything is attached).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The extra CA file could not be read or holds a malformed PEM section.
    #[error("cannot read CA certificates from {}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The extra CA file holds no `CERTIFICATE` section.
    #[error("{} holds no CA certificate", path.display())]
    NoCaCertificate { path: PathBuf },
    /// A certificate of the extra CA file is not usable as a trust anchor.
    #[error("unusable CA certificate in {}", path.display())]
    BadCaCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// The crypto provider offers no protocol version this client allows.
    #[error("cannot set up TLS 1.2/1.3")]
    Protocols {
        #[source]
        source: rustls::Error,
    },
}

/// A TLS client configuration, built once and shared by every connection.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl TlsClient {
    /// Loads the trusted certificates: the system's and `extra_ca_file`'s (none with
    /// `insecure_skip_verify`). System certificates that cannot be loaded are logged, not
    /// fatal: shadows may all be plain HTTP.
    pub fn new(options: &TlsOptions) -> Result<Self, TlsSetupError> {
        // The provider is named rather than taken from the process default, which does not
        // exist (and would panic) when no single provider is built in.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::Protocols { source })?;
        let mut config = if options.insecure_skip_verify {
            tracing::warn!("certificates of https shadow services are not verified");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(roots(options)?)
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient {
            config: Arc::new(config),
        })
    }

    pub(super) fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }

    /// The name the certificate must hold: the service's host (a DNS name or an IP).
    pub(super) fn server_name(host: &str) -> Result<ServerName<'static>, std::io::Error> {
        ServerName::try_from(super::resolve::bare_host(host).to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

fn roots(options: &TlsOptions) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::warn!(%error, "cannot load a system CA certificate");
    }
    let (_, ignored) = roots.add_parsable_certificates(system.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "unusable system CA certificates ignored");
    }
    if let Some(path) = &options.extra_ca_file {
        let ca_file = |source| TlsSetupError::CaFile {
            path: path.clone(),
            source,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(ca_file)? {
            roots.add(cert.map_err(ca_file)?).map_err(|source| {
                TlsSetupError::BadCaCertificate {
                    path: path.clone(),
                    source,
                }
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsSetupError::NoCaCertificate { path: path.clone() });
        }
    }
    Ok(roots)
}

/// The verifier behind `insecure_skip_verify`: any certificate passes. Handshake
/// signatures are still checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
