//! The certificate in use, replaced while the gateway runs: certificate files are read again
//! when they change (looked at every few seconds) or on SIGHUP, and a generated certificate is
//! renewed a month before it ends. New TLS connections get the new certificate; connections
//! already open (tunnels, browser sessions) keep theirs and are not dropped. A change is logged
//! with the new fingerprint; files that do not form a certificate and key are refused and the
//! one in use stays.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{ServerCertificate, TlsError};

/// How often certificate files are looked at for a change.
pub const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Where the certificate comes from.
pub enum Source {
    /// The operator's files, as they are now.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated into this directory, renewed before it ends.
    Generated { data_dir: PathBuf },
    /// Issued by an ACME CA: [`super::acme::keep_issued`] orders, renews and installs it.
    Acme,
}

pub struct CurrentCertificate {
    key: RwLock<Arc<CertifiedKey>>,
    fingerprint: RwLock<String>,
    source: Source,
    provider: Arc<CryptoProvider>,
    /// The files' modification times when last read.
    seen: Mutex<Option<(SystemTime, SystemTime)>>,
    /// TLS-ALPN-01 answers by domain, while an ACME order is pending.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurrentCertificate({})", self.fingerprint())
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Only a CA's validation asks for acme-tls/1; it gets the challenge or nothing.
        if hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == super::acme::ACME_TLS_ALPN)) {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.lock().unwrap_or_else(|p| p.into_inner()).get(&name).cloned();
        }
        Some(self.key.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn certified(cert: &ServerCertificate, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let signer = provider.key_provider.load_private_key(cert.key.clone_key())?;
    let key = CertifiedKey::new(cert.chain.clone(), signer);
    key.keys_match()?;
    Ok(Arc::new(key))
}

fn stamps(cert: &PathBuf, key: &PathBuf) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

impl CurrentCertificate {
    pub fn new(
        cert: &ServerCertificate,
        source: Source,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<CurrentCertificate>, TlsError> {
        let seen = match &source {
            Source::Files { cert, key } => stamps(cert, key),
            Source::Generated { .. } | Source::Acme => None,
        };
        Ok(Arc::new(CurrentCertificate {
            key: RwLock::new(certified(cert, &provider)?),
            fingerprint: RwLock::new(cert.fingerprint()),
            source,
            provider,
            seen: Mutex::new(seen),
            challenges: Mutex::new(HashMap::new()),
        }))
    }

    /// A TLS-ALPN-01 challenge certificate and its key in the form the resolver serves. Not
    /// put through `keys_match`: webpki refuses the critical acmeIdentifier extension such a
    /// certificate must carry, and the pair was made together a moment ago.
    pub fn challenge_key(
        &self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let signer = self.provider.key_provider.load_private_key(key)?;
        Ok(Arc::new(CertifiedKey::new(chain, signer)))
    }

    /// Serves `cert` to new connections from now on; its fingerprint.
    pub fn install(&self, cert: &ServerCertificate) -> Result<String, TlsError> {
        let key = certified(cert, &self.provider)?;
        let fingerprint = cert.fingerprint();
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = key;
        *self.fingerprint.write().unwrap_or_else(|p| p.into_inner()) = fingerprint.clone();
        Ok(fingerprint)
    }

    pub fn set_challenge(&self, domain: &str, answer: Arc<CertifiedKey>) {
        self.challenges.lock().unwrap_or_else(|p| p.into_inner()).insert(domain.to_ascii_lowercase(), answer);
    }

    pub fn clear_challenges(&self) {
        self.challenges.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the files again if they changed (or `forced`: SIGHUP), or renews a generated
    /// certificate near its end. `Ok(Some(fingerprint))` when the certificate in use changed.
    pub fn refresh(&self, forced: bool) -> Result<Option<String>, TlsError> {
        let next = match &self.source {
            Source::Files { cert, key } => {
                let now = stamps(cert, key);
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if !forced && (now.is_none() || now == *seen) {
                    return Ok(None);
                }
                // Remembered even when the new files are refused: the same bad files are not
                // reported every few seconds.
                *seen = now;
                super::load(cert, key, false)?
            }
            Source::Generated { data_dir } => match super::renew_if_due(data_dir)? {
                Some(renewed) => renewed,
                None => return Ok(None),
            },
            Source::Acme => return Ok(None),
        };
        // Checked even when the certificate is the same: a key that no longer matches it
        // would stop the next start, so it is reported now.
        let key = certified(&next, &self.provider)?;
        let fingerprint = next.fingerprint();
        if fingerprint == self.fingerprint() {
            return Ok(None);
        }
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = key;
        *self.fingerprint.write().unwrap_or_else(|p| p.into_inner()) = fingerprint.clone();
        Ok(Some(fingerprint))
    }
}

/// Keeps the certificate current: on SIGHUP, every [`LOOK_EVERY`] for files, hourly for a
/// generated one.
pub async fn keep_current(current: Arc<CurrentCertificate>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let every = match current.source {
        Source::Files { .. } => LOOK_EVERY,
        Source::Generated { .. } | Source::Acme => Duration::from_secs(3600),
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let before = current.fingerprint();
        match current.refresh(forced) {
            Ok(Some(now)) => {
                tracing::warn!(before = %before, now = %now, "the server certificate changed: clients that pin it need the new fingerprint");
                eprintln!("rampart: the server certificate changed; its fingerprint is now {now}");
            }
            Ok(None) if forced => {
                tracing::info!(fingerprint = %before, "SIGHUP: the certificate is unchanged")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "the new certificate files are refused; the one in use stays")
            }
        }
    }
}
