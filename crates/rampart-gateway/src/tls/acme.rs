//! Certificates from an ACME CA (`--acme-domain`): Let's Encrypt by default, any RFC 8555
//! server with `--acme-directory`. The domain is proven with TLS-ALPN-01 on the gateway's own
//! listening port, so no second port is opened: while an order is pending, a validation
//! connection asking for the `acme-tls/1` protocol is answered with the challenge certificate
//! and then closed. The issued certificate and its key are kept in `DATA_DIR/tls/acme/`, served
//! at the next start at once, and renewed when a third of their life is left. Until the first
//! one is issued the gateway serves its generated self-signed certificate.
//!
//! Each node orders for itself: behind a balancer, give the nodes files instead (or one domain
//! per node), since the CA's validation may reach another node than the one that ordered.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::{CurrentCertificate, ServerCertificate, TlsError};

/// The protocol name a TLS-ALPN-01 validation asks for (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// What `--acme-*` configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The DNS name the certificate is for; the CA must reach this gateway's port 443 (or the
    /// port it is told) under it.
    pub domain: String,
    /// A contact address given to the CA (expiry warnings).
    pub email: Option<String>,
    pub directory: String,
    /// A PEM file of the CA that signs the directory's HTTPS certificate (a private or test
    /// CA); otherwise the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// The `acme_*` settings, checked: a DNS name (CAs issue no certificate for an address), not
/// beside certificate files, and the other settings only with a domain.
pub fn settings(
    domain: Option<&str>,
    email: Option<String>,
    directory: Option<String>,
    ca_file: Option<PathBuf>,
    files: bool,
) -> Result<Option<AcmeSettings>, String> {
    let Some(domain) = domain.map(str::trim).filter(|d| !d.is_empty()) else {
        if email.is_some() || directory.is_some() || ca_file.is_some() {
            return Err("acme_email, acme_directory and acme_ca_file need acme_domain".into());
        }
        return Ok(None);
    };
    let domain = domain.to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.parse::<std::net::IpAddr>().is_ok() || !domain.contains('.') || !domain.split('.').all(label_ok)
    {
        let shown: String = domain.chars().take(80).collect();
        return Err(format!(
            "acme domain '{shown}': a DNS name such as gw.example.com (ACME CAs issue no certificate for an address or a bare host name)"
        ));
    }
    if files {
        return Err("give certificate files (tls_cert) or an ACME domain, not both".into());
    }
    let directory = directory.unwrap_or_else(|| LETS_ENCRYPT.into());
    if !directory.starts_with("https://") {
        return Err(format!("acme directory '{directory}': an https:// URL"));
    }
    Ok(Some(AcmeSettings { domain, email: email.filter(|e| !e.trim().is_empty()), directory, ca_file }))
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME server refused or failed: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the ACME server offers no TLS-ALPN-01 challenge for {0} (the only one Rampart answers)")]
    NoTlsAlpn(String),
    #[error("the authorization for {domain} is {status:?}: the CA could not validate it")]
    Authorization { domain: String, status: AuthorizationStatus },
    #[error("the order ended {0:?}: the CA could not validate the domain on this port")]
    Order(OrderStatus),
    #[error("cannot make the challenge certificate: {0}")]
    Challenge(#[from] rcgen::Error),
    #[error("cannot keep the ACME account: {0}")]
    Account(String),
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("acme")
}

/// The certificate issued before, if there is one.
pub fn stored(data_dir: &Path) -> Option<ServerCertificate> {
    let d = dir(data_dir);
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    (cert.exists() && key.exists()).then(|| super::load(&cert, &key, false).ok()).flatten()
}

/// How long until the stored certificate is due for renewal (zero when missing or due):
/// when a third of its life is left, as Let's Encrypt advises.
fn renew_in(data_dir: &Path) -> Duration {
    let Some(cert) = stored(data_dir) else { return Duration::ZERO };
    let Some((from, until)) = cert.chain.first().and_then(|d| {
        x509_parser::parse_x509_certificate(d.as_ref())
            .ok()
            .map(|(_, c)| (c.validity().not_before.timestamp(), c.validity().not_after.timestamp()))
    }) else {
        return Duration::ZERO;
    };
    let renew_at = until - (until - from) / 3;
    let now = chrono::Utc::now().timestamp();
    Duration::from_secs(u64::try_from(renew_at - now).unwrap_or(0))
}

/// Orders a certificate when none is stored or it is due, installs it, and waits for the next
/// renewal; failures are logged and retried with a growing pause (1 minute to 1 hour).
pub async fn keep_issued(current: Arc<CurrentCertificate>, settings: AcmeSettings, data_dir: PathBuf) {
    // instant-acme's HTTPS client takes the process's default provider; rustls has two built
    // in here (aws-lc-rs and ring) and would panic at choosing. Already set is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut pause = Duration::from_secs(60);
    loop {
        let wait = renew_in(&data_dir);
        if !wait.is_zero() {
            // Looked at again at least twice a day: a clock change or files restored by hand.
            tokio::time::sleep(wait.min(Duration::from_secs(12 * 3600))).await;
            continue;
        }
        tracing::info!(domain = %settings.domain, directory = %settings.directory, "ordering a certificate by ACME");
        let issued = issue(&current, &settings, &data_dir).await;
        current.clear_challenges();
        match issued.and_then(|cert| Ok(current.install(&cert)?)) {
            Ok(fingerprint) => {
                pause = Duration::from_secs(60);
                tracing::warn!(domain = %settings.domain, %fingerprint, "the ACME certificate is installed");
                eprintln!(
                    "rampart: ACME certificate for {} installed; its fingerprint is {fingerprint}",
                    settings.domain
                );
            }
            Err(e) => {
                tracing::error!(domain = %settings.domain, error = %e, retry_in = ?pause, "ACME: no certificate");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(3600));
            }
        }
    }
}

/// The account key is kept beside the certificate, with the directory it belongs to.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

async fn account(settings: &AcmeSettings, data_dir: &Path) -> Result<Account, AcmeError> {
    let builder = || match &settings.ca_file {
        Some(pem) => Account::builder_with_root(pem),
        None => Account::builder(),
    };
    let path = dir(data_dir).join("account.json");
    if let Some(stored) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<StoredAccount>(&b).ok())
        .filter(|s| s.directory == settings.directory)
    {
        return Ok(builder()?.from_credentials(stored.credentials).await?);
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder()?.create(&new, settings.directory.clone(), None).await?;
    let stored = StoredAccount { directory: settings.directory.clone(), credentials };
    let json = serde_json::to_vec(&stored).map_err(|e| AcmeError::Account(e.to_string()))?;
    std::fs::create_dir_all(dir(data_dir)).map_err(|e| AcmeError::Account(e.to_string()))?;
    super::write_private(&path, &json)?;
    Ok(account)
}

/// One order, from the account to the certificate written into the data directory.
async fn issue(
    current: &CurrentCertificate,
    settings: &AcmeSettings,
    data_dir: &Path,
) -> Result<ServerCertificate, AcmeError> {
    let account = account(settings, data_dir).await?;
    let identifiers = [Identifier::Dns(settings.domain.clone())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => return Err(AcmeError::Authorization { domain: settings.domain.clone(), status }),
        }
        let mut challenge = authz
            .challenge(ChallengeType::TlsAlpn01)
            .ok_or_else(|| AcmeError::NoTlsAlpn(settings.domain.clone()))?;
        let answer = challenge_certificate(
            &settings.domain,
            challenge.key_authorization().digest().as_ref(),
            current,
        )?;
        current.set_challenge(&settings.domain, answer);
        challenge.set_ready().await?;
    }
    let status = order.poll_ready(&RetryPolicy::default()).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(status));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&RetryPolicy::default()).await?;
    let d = dir(data_dir);
    let (cert_path, key_path) = (d.join("cert.pem"), d.join("key.pem"));
    // Key first, each replaced whole: a crash in between leaves a pair that does not match,
    // which the next start refuses and orders again, never a half-written file.
    let next_key = d.join("key.pem.next");
    super::write_private(&next_key, key_pem.as_bytes())?;
    let next_cert = d.join("cert.pem.next");
    std::fs::write(&next_cert, chain_pem.as_bytes())
        .map_err(|source| TlsError::Write { path: next_cert.clone(), source })?;
    for (from, to) in [(&next_key, &key_path), (&next_cert, &cert_path)] {
        std::fs::rename(from, to).map_err(|source| TlsError::Write { path: to.clone(), source })?;
    }
    Ok(super::load(&cert_path, &key_path, false)?)
}

/// The self-signed certificate RFC 8737 asks for: the domain as its only name and the key
/// authorization's digest in the critical `acmeIdentifier` extension.
fn challenge_certificate(
    domain: &str,
    digest: &[u8],
    current: &CurrentCertificate,
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(current.challenge_key(vec![cert.der().clone()], der)?)
}

#[cfg(test)]
mod tests {
    use super::settings;

    #[test]
    fn a_dns_name_is_required_and_files_exclude_acme() {
        let ok = settings(Some("GW.Example.com"), None, None, None, false).expect("valid").expect("on");
        assert_eq!(ok.domain, "gw.example.com");
        assert_eq!(ok.directory, super::LETS_ENCRYPT);
        for bad in ["127.0.0.1", "::1", "localhost", "-a.example.com", "a..b", "a b.com"] {
            let e = settings(Some(bad), None, None, None, false).expect_err(bad);
            assert!(e.contains("DNS name"), "{bad}: {e}");
        }
        assert!(settings(Some("gw.test"), None, None, None, true).is_err());
        assert!(settings(None, Some("a@b.c".into()), None, None, false).is_err());
        assert!(settings(Some("gw.test"), None, Some("http://x/dir".into()), None, false).is_err());
        assert_eq!(settings(None, None, None, None, false), Ok(None));
    }
}
