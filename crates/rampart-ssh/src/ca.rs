//! The SSH certificate authority. For identity sign-in (`rampart ssh --auth-type AAD`)
//! the gateway signs a short-lived OpenSSH user certificate for a key pair the client made;
//! a VM whose sshd trusts the CA (`TrustedUserCAKeys`) needs no per-user setup.
//!
//! The CA key is an Ed25519 key in OpenSSH format, created on first use, mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum SshCaError {
    #[error("cannot read or write the SSH CA key {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the SSH CA key {path} is not an OpenSSH private key: {source}")]
    BadKey { path: PathBuf, source: ssh_key::Error },
    #[error("the shared SSH CA key in the store is not an OpenSSH private key: {0}")]
    BadSharedKey(ssh_key::Error),
    #[error("the public key is not in OpenSSH form (e.g. ssh-ed25519 AAAA…): {0}")]
    BadPublicKey(ssh_key::Error),
    #[error("signing the certificate failed: {0}")]
    Sign(ssh_key::Error),
    #[error("a principal must be 1 to 64 characters of letters, digits, '.', '_' and '-', not '{0}'")]
    BadPrincipal(String),
}

/// What to put in a user certificate.
#[derive(Debug, Clone)]
pub struct CertificateRequest<'a> {
    /// The user's public key, one OpenSSH line.
    pub public_key: &'a str,
    /// The account names it may log in as.
    pub principals: &'a [String],
    /// Names the certificate in sshd's log (user and target).
    pub key_id: &'a str,
    /// Unix seconds.
    pub valid_after: u64,
    pub valid_before: u64,
    pub serial: u64,
}

pub struct SshCa {
    key: PrivateKey,
}

impl SshCa {
    /// A new random CA key as OpenSSH private-key text, for nodes that share their CA through
    /// a store (the store keeps the first one any node offered).
    pub fn generate_openssh() -> Result<String, SshCaError> {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(SshCaError::Sign)?;
        Ok(key.to_openssh(LineEnding::LF).map_err(SshCaError::Sign)?.to_string())
    }

    /// The CA from OpenSSH private-key text (a shared one).
    pub fn from_openssh(text: &str) -> Result<SshCa, SshCaError> {
        Ok(SshCa { key: PrivateKey::from_openssh(text).map_err(SshCaError::BadSharedKey)? })
    }

    /// Loads the CA key from `path`, creating it if missing.
    pub fn load_or_create(path: &Path) -> Result<SshCa, SshCaError> {
        let io = |source| SshCaError::Io { path: path.to_path_buf(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = PrivateKey::from_openssh(&text)
                    .map_err(|source| SshCaError::BadKey { path: path.to_path_buf(), source })?;
                Ok(SshCa { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key =
                    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(SshCaError::Sign)?;
                let text = key.to_openssh(LineEnding::LF).map_err(SshCaError::Sign)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(text.as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(SshCa { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The CA's public key line, for `TrustedUserCAKeys`.
    pub fn public_key(&self) -> String {
        let mut public = self.key.public_key().clone();
        public.set_comment("rampart-ssh-ca");
        public.to_openssh().unwrap_or_default()
    }

    /// Signs a user certificate; returns it as one OpenSSH line.
    pub fn sign(&self, req: &CertificateRequest<'_>) -> Result<String, SshCaError> {
        let user_key = PublicKey::from_openssh(req.public_key.trim()).map_err(SshCaError::BadPublicKey)?;
        let mut builder = Builder::new_with_random_nonce(
            &mut rand::rng(),
            user_key.key_data().clone(),
            req.valid_after,
            req.valid_before,
        )
        .map_err(SshCaError::Sign)?;
        builder.serial(req.serial).map_err(SshCaError::Sign)?;
        builder.key_id(req.key_id).map_err(SshCaError::Sign)?;
        builder.cert_type(CertType::User).map_err(SshCaError::Sign)?;
        for p in req.principals {
            if p.is_empty()
                || p.len() > 64
                || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(SshCaError::BadPrincipal(p.clone()));
            }
            builder.valid_principal(p.as_str()).map_err(SshCaError::Sign)?;
        }
        // What an interactive session and `ssh -L` need; no agent or X11 forwarding.
        for ext in ["permit-pty", "permit-port-forwarding"] {
            builder.extension(ext, "").map_err(SshCaError::Sign)?;
        }
        let cert = builder.sign(&self.key).map_err(SshCaError::Sign)?;
        cert.to_openssh().map_err(SshCaError::Sign)
    }
}

/// An RSA public key given as its modulus and exponent (big-endian, as a JWK's `n` and `e`
/// decode), as one OpenSSH line: what az's `ssh` extension sends for a certificate.
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Result<String, SshCaError> {
    let mpint = ssh_key::Mpint::from_positive_bytes;
    let key = ssh_key::public::RsaPublicKey::new(mpint(exponent), mpint(modulus))
        .map_err(SshCaError::BadPublicKey)?;
    PublicKey::from(ssh_key::public::KeyData::Rsa(key)).to_openssh().map_err(SshCaError::BadPublicKey)
}

/// A key pair made for one sign-in, in OpenSSH form: (private, public).
pub fn session_key() -> Result<(String, String), SshCaError> {
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(SshCaError::Sign)?;
    let public = key.public_key().to_openssh().map_err(SshCaError::Sign)?;
    let private = key.to_openssh(ssh_key::LineEnding::LF).map_err(SshCaError::Sign)?.to_string();
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_reloads_and_signs() -> Result<(), SshCaError> {
        let dir = tempfile::tempdir().map_err(|source| SshCaError::Io { path: "tmp".into(), source })?;
        let path = dir.path().join("keys").join("ssh-ca");
        let ca = SshCa::load_or_create(&path)?;
        let again = SshCa::load_or_create(&path)?;
        assert_eq!(ca.public_key(), again.public_key());
        assert!(ca.public_key().starts_with("ssh-ed25519 "));
        let user = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(SshCaError::Sign)?;
        let public = user.public_key().to_openssh().map_err(SshCaError::Sign)?;
        let cert = ca.sign(&CertificateRequest {
            public_key: &public,
            principals: &["alice".to_string()],
            key_id: "rampart:alice",
            valid_after: 1_000,
            valid_before: 2_000,
            serial: 7,
        })?;
        assert!(cert.starts_with("ssh-ed25519-cert-v01@openssh.com "));
        let bad = ca.sign(&CertificateRequest {
            public_key: &public,
            principals: &["al ice".to_string()],
            key_id: "x",
            valid_after: 0,
            valid_before: 1,
            serial: 1,
        });
        assert!(matches!(bad, Err(SshCaError::BadPrincipal(_))));
        Ok(())
    }
}
