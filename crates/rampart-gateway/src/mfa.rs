//! Multi-factor authentication of local accounts: TOTP (RFC 6238, through totp-rs: SHA-1, six
//! digits, 30 s steps, one step of skew either way, as authenticator apps expect), a code
//! accepted once (the store keeps the last step, so also across nodes), recovery codes shown
//! once and kept as hashes, and the setting that requires MFA of every local account or of the
//! holders of chosen roles.

use rand::RngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// The issuer authenticator apps show next to the account.
const ISSUER: &str = "Rampart";
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, thiserror::Error)]
#[error("the stored authenticator secret is unusable: {0}")]
pub struct MfaError(String);

fn totp(secret_base32: &str, account: &str) -> Result<Totp, MfaError> {
    let secret = Secret::try_from_base32(secret_base32).map_err(|e| MfaError(format!("{e:?}")))?;
    // otpauth forbids ':' in account names; a name keeps its meaning with it replaced.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| MfaError(format!("{e:?}")))
}

/// A new secret: 20 random bytes (160 bits, RFC 4226's recommendation), in base32.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    Secret::from(bytes).to_base32()
}

/// The `otpauth://totp/…` URI an authenticator app reads (from a QR code or pasted).
pub fn otpauth_uri(secret_base32: &str, account: &str) -> Result<String, MfaError> {
    totp(secret_base32, account)?.to_url().map_err(|e| MfaError(format!("{e:?}")))
}

/// The time step `code` is valid for at `now` (Unix seconds), if it is; anything but six
/// digits (spaces allowed, as apps show them) is simply not valid.
pub fn check(secret_base32: &str, code: &str, now: u64) -> Result<Option<u64>, MfaError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp(secret_base32, "check")?.check(&code, now))
}

/// Whether `code` looks like a recovery code rather than a TOTP code.
pub fn is_recovery_code(code: &str) -> bool {
    normalize_recovery(code).len() == 16
}

fn normalize_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// Fresh recovery codes, `xxxx-xxxx-xxxx-xxxx` (80 random bits each).
pub fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            let chars: Vec<char> =
                bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
            chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// How a recovery code is stored.
pub fn recovery_hash(code: &str) -> String {
    hex::encode(Sha256::digest(format!("rampart-recovery:{}", normalize_recovery(code)).as_bytes()))
}

/// Who must sign in with a second factor (`require_mfa`): nobody, every local account, or the
/// local accounts holding one of these roles anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Requirement {
    #[default]
    Off,
    AllLocal,
    Roles(Vec<String>),
}

impl std::str::FromStr for Requirement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "" | "off" | "none" => Ok(Requirement::Off),
            "all" => Ok(Requirement::AllLocal),
            _ => match s.split_once(':') {
                Some((k, roles)) if k.eq_ignore_ascii_case("roles") => {
                    let roles: Vec<String> =
                        roles.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
                    if roles.is_empty() {
                        return Err("require_mfa 'roles:' names no role".into());
                    }
                    Ok(Requirement::Roles(roles))
                }
                _ => Err(format!("require_mfa '{s}' is not off, all or roles:NAME[,NAME…]")),
            },
        }
    }
}

impl Requirement {
    /// Whether a local account holding `roles` must have passed a second factor.
    pub fn applies(&self, roles: &[&str]) -> bool {
        match self {
            Requirement::Off => false,
            Requirement::AllLocal => true,
            Requirement::Roles(wanted) => {
                roles.iter().any(|r| wanted.iter().any(|w| w.eq_ignore_ascii_case(r)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_valid_in_its_step_and_the_next_only() -> Result<(), MfaError> {
        let secret = new_secret();
        let t = totp(&secret, "alice")?;
        let now = 1_800_000_000;
        let code = t.generate(now).to_string();
        assert_eq!(check(&secret, &code, now)?, Some(now / 30));
        assert_eq!(check(&secret, &format!("{} {}", &code[..3], &code[3..]), now)?, Some(now / 30));
        assert!(check(&secret, &code, now + 30)?.is_some(), "one step of skew");
        assert_eq!(check(&secret, &code, now + 95)?, None, "three steps later it is stale");
        for junk in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", &"9".repeat(10_000)] {
            assert_eq!(check(&secret, junk, now)?, None, "{junk:.12}");
        }
        Ok(())
    }

    #[test]
    fn the_uri_names_the_issuer_and_account() -> Result<(), MfaError> {
        let uri = otpauth_uri(&new_secret(), "bob:x")?;
        assert!(uri.starts_with("otpauth://totp/Rampart:bob_x?"), "{uri}");
        assert!(uri.contains("issuer=Rampart") && uri.contains("secret="), "{uri}");
        Ok(())
    }

    #[test]
    fn recovery_codes_are_distinct_and_hashed_loosely() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| is_recovery_code(c) && c.len() == 19));
        assert_ne!(codes[0], codes[1]);
        assert_eq!(recovery_hash(&codes[0]), recovery_hash(&codes[0].to_uppercase().replace('-', " ")));
    }

    #[test]
    fn the_requirement_reads_its_setting() {
        assert_eq!("off".parse(), Ok(Requirement::Off));
        assert_eq!("ALL".parse(), Ok(Requirement::AllLocal));
        let r: Requirement = "roles: Owner, Contributor".parse().unwrap_or_default();
        assert!(r.applies(&["owner"]) && !r.applies(&["Reader"]));
        assert!("roles:".parse::<Requirement>().is_err() && "sometimes".parse::<Requirement>().is_err());
    }
}
