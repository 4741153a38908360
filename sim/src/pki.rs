//! The checked-in test PKI (`sim/pki/`, rebuilt by `sim/pki/regen.sh`) and the rustls configs
//! built from it. The PEM files are compiled in, so the binary works from any directory.
//!
//! Never use these keys for anything but tests.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test CA certificate (what goes into the service-account `ca.crt`).
pub const CA_CRT: &str = include_str!("../pki/ca.crt");
/// The API server certificate: SAN IP:127.0.0.1, DNS:localhost.
pub const SERVER_CRT: &str = include_str!("../pki/server.crt");
/// Its key (PKCS#8, P-256).
pub const SERVER_KEY: &str = include_str!("../pki/server.key");
/// A server certificate signed by the CA with only a DNS:localhost SAN.
pub const DNS_ONLY_CRT: &str = include_str!("../pki/dns-only.crt");
/// Its key.
pub const DNS_ONLY_KEY: &str = include_str!("../pki/dns-only.key");
/// An unrelated CA, for "wrong CA" tests.
pub const OTHER_CA_CRT: &str = include_str!("../pki/other-ca.crt");
/// A server certificate for 127.0.0.1/localhost signed by the unrelated CA: no client that
/// trusts the system roots or [`CA_CRT`] accepts it (webhook sinks' TLS-failure mode).
pub const UNTRUSTED_CRT: &str = include_str!("../pki/untrusted.crt");
/// Its key.
pub const UNTRUSTED_KEY: &str = include_str!("../pki/untrusted.key");

/// The `sim/pki` directory in the source tree (for tests that want file paths).
pub fn pki_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pki")
}

/// Which certificate the fake API server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerCert {
    /// `server.crt` (IP and DNS SANs).
    #[default]
    Normal,
    /// `dns-only.crt` (no IP SAN: clients connecting to 127.0.0.1 must reject it).
    DnsOnly,
    /// `untrusted.crt` (signed by the unrelated CA).
    Untrusted,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS server config: HTTP/1.1 only (no ALPN, so h2-capable clients fall back).
pub fn server_config(cert: ServerCert) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let (crt, key) = match cert {
        ServerCert::Normal => (SERVER_CRT, SERVER_KEY),
        ServerCert::DnsOnly => (DNS_ONLY_CRT, DNS_ONLY_KEY),
        ServerCert::Untrusted => (UNTRUSTED_CRT, UNTRUSTED_KEY),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(std::io::Error::other)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(std::io::Error::other)?;
    // Stateless session tickets, as Go's crypto/tls (kube-apiserver) issues by default: a
    // client's later connections resume without a certificate exchange. rustls' default is a
    // stateful cache of 256 sessions, which hundreds of handlers opening connections at one
    // notice overflow, so that almost every handshake was a full one.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(std::io::Error::other)?;
    Ok(Arc::new(cfg))
}

/// A client config trusting exactly the PEM certificates in `ca_pem`.
pub fn client_config(ca_pem: &str) -> std::io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
