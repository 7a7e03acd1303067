//! TLS material: PEM files read into rustls configurations, for the server (`serve --tls-cert
//! --tls-key`) and for this node's calls to its peers (`--peer-cacert`).
//!
//! Design decision: rustls on the `ring` provider, chosen explicitly rather than through a
//! process-wide default (aws-lc-rs needs cmake and clang to build). A peer is trusted only
//! through the cluster's CA given to the node, never through the web's roots: a node's
//! certificate signed by some public CA proves nothing about membership in this cluster.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be used; each message is one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificates in {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot read the private key in {path}: {reason}")]
    PrivateKey { path: String, reason: String },
    #[error("the certificate and private key cannot be used together: {0}")]
    Config(String),
}

/// The cryptography every TLS configuration here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, in file order (a chain: the node's own first).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let failed = |reason: String| TlsError::Certificates { path: path.display().to_string(), reason };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(pem_reason(e)))?;
    if certificates.is_empty() {
        return Err(failed("it holds no PEM certificate".into()));
    }
    Ok(certificates)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::PrivateKey { path: path.display().to_string(), reason: pem_reason(e) })
}

/// The server side: this node's certificate chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certificates(cert)?;
    let key = read_private_key(key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The client side for calls to peers: trusts exactly the certificates in `ca` (the cluster's
/// CA, or a self-signed certificate every node serves).
pub fn peer_client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(ca)? {
        roots.add(certificate).map_err(|e| TlsError::Certificates {
            path: ca.display().to_string(),
            reason: format!("not a usable CA certificate ({e})"),
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn pem_reason(error: rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::NoItemsFound => "it holds no PEM item of that kind".into(),
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        other => format!("not valid PEM ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let error = read_certificates(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(error.to_string().starts_with("cannot read the certificates in /nonexistent/cert.pem"), "{error}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not pem at all\n").unwrap();
        let error = read_certificates(&path).unwrap_err();
        assert!(error.to_string().contains("no PEM"), "{error}");
        let error = read_private_key(&path).unwrap_err();
        assert!(error.to_string().starts_with("cannot read the private key in"), "{error}");
    }
}
