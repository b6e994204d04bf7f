//! Trusting the gateway's certificate: a pinned SHA-256 fingerprint (for a self-signed
//! gateway) or a CA bundle. There is deliberately no "insecure" mode.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trust {
    /// `SHA256:` followed by the certificate's digest in hex (colons optional) or base64.
    Fingerprint(String),
    /// A PEM file of CA certificates (or the gateway's own certificate).
    CaFile(PathBuf),
    /// The operating system's usual roots (a gateway with a public certificate).
    SystemRoots,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "'{0}' is not a SHA-256 fingerprint (expected SHA256: and 64 hex digits, as `rampart serve` prints it)"
    )]
    BadFingerprint(String),
    #[error("cannot read CA file {path}: {source}")]
    CaFile { path: PathBuf, source: std::io::Error },
    #[error("CA file {0} holds no certificate")]
    EmptyCaFile(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot reach the gateway: {0}")]
    Connect(String),
}

/// Parses a fingerprint in the forms people copy: `SHA256:AB:CD…`, `sha256:abcd…`, or
/// OpenSSH-style base64.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TrustError> {
    let bad = || TrustError::BadFingerprint(text.to_string());
    let body = text.trim();
    let body = body.strip_prefix("SHA256:").or_else(|| body.strip_prefix("sha256:")).unwrap_or(body);
    let hexish: String = body.chars().filter(|c| *c != ':').collect();
    let bytes = if hexish.len() == 64 {
        hex::decode(&hexish).map_err(|_| bad())?
    } else {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|_| bad())?
    };
    bytes.try_into().map_err(|_| bad())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rampart_tunnel::tls::provider())
}

/// Builds a rustls client configuration; `alpn` lists the protocols to offer.
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, TrustError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::Fingerprint(text) => {
            let pin = parse_fingerprint(text)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                    pin,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
        Trust::CaFile(path) => {
            let pem =
                std::fs::read(path).map_err(|source| TrustError::CaFile { path: path.clone(), source })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|source| TrustError::CaFile { path: path.clone(), source })?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                return Err(TrustError::EmptyCaFile(path.clone()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::SystemRoots => {
            let mut roots = rustls::RootCertStore::empty();
            if let Ok(pem) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
                for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                    roots.add(cert).ok();
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Accepts exactly one certificate, by its SHA-256 digest, and still checks that the server
/// holds its key (the handshake signature).
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if digest == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let shown: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
            Err(rustls::Error::General(format!(
                "the gateway's certificate does not match the pinned fingerprint (it presents SHA256:{})",
                shown.join(":")
            )))
        }
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The certificates a gateway at `host:port` presents, verified as `trust` says (for handing
/// a pinned self-signed certificate to tools that take only CA files, such as az).
pub async fn gateway_certificates(host: &str, port: u16, trust: &Trust) -> Result<Vec<Vec<u8>>, TrustError> {
    let config = client_config(trust, &[b"http/1.1"])?;
    let connect = |e: std::io::Error| TrustError::Connect(format!("{host}:{port}: {e}"));
    let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(connect)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| TrustError::Connect(format!("'{host}' is not a host name or address")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(connect)?;
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
    Ok(chain.iter().map(|c| c.as_ref().to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_forms() {
        let hex = "AB".repeat(32);
        let colons: Vec<String> = (0..32).map(|_| "ab".to_string()).collect();
        assert_eq!(parse_fingerprint(&format!("SHA256:{hex}")).ok(), Some([0xab; 32]));
        assert_eq!(parse_fingerprint(&format!("sha256:{}", colons.join(":"))).ok(), Some([0xab; 32]));
        assert!(parse_fingerprint("SHA256:abc").is_err());
        assert!(parse_fingerprint("").is_err());
    }
}
