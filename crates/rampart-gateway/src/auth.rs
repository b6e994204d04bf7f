//! Sign-in: argon2id password hashes, signed short-lived tokens (HS256 JWTs with a key kept
//! in the data directory), one-time refresh tokens stored as hashes, and the sign-in rate
//! limiter.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tls::{TlsError, write_private};

const ACCESS_AUDIENCE: &str = "rampart-api";
const TUNNEL_AUDIENCE: &str = "rampart-tunnel";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("token signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("signing key: {0}")]
    Key(#[from] TlsError),
    #[error("signing key {0} is not 32 bytes or more")]
    ShortKey(String),
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Constant work whether or not the hash parses, so a bad stored hash looks like a bad
/// password.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A random secret in URL-safe base64 (passwords, refresh tokens, token IDs).
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Refresh tokens are stored as this hash, never as themselves.
pub fn refresh_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Claims of an access token (API calls).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub name: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// How the tunnel's target was named, carried in the tunnel token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetNaming {
    Ip,
    Resource,
}

/// Claims of a tunnel token: bound to one user, bastion, target and port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TunnelClaims {
    pub sub: String,
    pub name: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Tunnel ID.
    pub jti: String,
    pub bastion: String,
    pub ip: String,
    pub port: u16,
    pub naming: TargetNaming,
    /// The target's resource ID, when it was named by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Makes each of several tokens of one tunnel unique (az's single-use WebSocket tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// A key of its own for device codes' check characters, derived from the signing key.
    device_code: [u8; 32],
    /// ID tokens for az are signed with a key of their own, so none passes as an access token.
    id_token: EncodingKey,
}

impl TokenKeys {
    /// Loads the signing key from `path`, creating a random one (mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let key = match std::fs::read(path) {
            Ok(k) => k,
            Err(_) => {
                let mut k = vec![0u8; 32];
                rand::rng().fill_bytes(&mut k);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| TlsError::Write { path: dir.to_path_buf(), source })?;
                }
                write_private(path, &k)?;
                k
            }
        };
        if key.len() < 32 {
            return Err(AuthError::ShortKey(path.display().to_string()));
        }
        Ok(Self::from_secret(&key))
    }

    pub fn from_secret(key: &[u8]) -> Self {
        let mut device = Sha256::new();
        device.update(b"rampart az device code check\0");
        device.update(key);
        let mut id_token = Sha256::new();
        id_token.update(b"rampart az id token\0");
        id_token.update(key);
        TokenKeys {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            device_code: device.finalize().into(),
            id_token: EncodingKey::from_secret(&id_token.finalize()),
        }
    }

    pub(crate) fn device_code_key(&self) -> &[u8] {
        &self.device_code
    }

    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)?)
    }

    /// An ID token (read, not verified, by MSAL): never valid where access tokens are checked.
    pub(crate) fn sign_id_token<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.id_token)?)
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        self.sign(claims)
    }

    pub fn sign_tunnel(&self, claims: &TunnelClaims) -> Result<String, AuthError> {
        self.sign(claims)
    }

    pub(crate) fn verify<T: for<'de> Deserialize<'de>>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // Validate signature, time and audience on untyped claims first, so a token for
        // another purpose is reported as such rather than as unparsable.
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| describe_token_error(e.kind(), audience))?;
        serde_json::from_value(claims).map_err(|_| "the token lacks required claims".to_string())
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, String> {
        self.verify(token, ACCESS_AUDIENCE)
    }

    pub fn verify_tunnel(&self, token: &str) -> Result<TunnelClaims, String> {
        self.verify(token, TUNNEL_AUDIENCE)
    }
}

impl AccessClaims {
    pub fn new(user_id: &str, username: &str, now: i64, ttl: Duration) -> Self {
        AccessClaims {
            sub: user_id.to_string(),
            name: username.to_string(),
            aud: ACCESS_AUDIENCE.to_string(),
            iat: now,
            exp: now + ttl_secs(ttl),
        }
    }
}

impl TunnelClaims {
    pub fn audience() -> String {
        TUNNEL_AUDIENCE.to_string()
    }
}

pub fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

fn describe_token_error(kind: &ErrorKind, audience: &str) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired; sign in again".into(),
        ErrorKind::InvalidSignature => {
            "the token's signature is invalid (forged, altered, or issued by another gateway)".into()
        }
        ErrorKind::InvalidAudience => {
            format!("the token is not valid here (expected a {audience} token)")
        }
        ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the '{c}' claim"),
        ErrorKind::InvalidAlgorithm => "the token uses an algorithm this gateway does not accept".into(),
        _ => "the token is malformed".into(),
    }
}

/// Counts failed sign-ins per (user name, client address) in a sliding window.
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<(String, IpAddr), VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter { max_failures, window, failures: Mutex::new(HashMap::new()) }
    }

    fn key(username: &str, client: IpAddr) -> (String, IpAddr) {
        (username.to_lowercase(), client)
    }

    /// The key that counts every user name tried from one address (no user name is "").
    fn address_key(client: IpAddr) -> (String, IpAddr) {
        (String::new(), client)
    }

    /// `Some(wait)` when this user name from this address must wait before trying again:
    /// after `max_failures` for the name from the address, or ten times that for all names
    /// from the address (an attacker trying many names).
    pub fn blocked(&self, username: &str, client: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let limits = [
            (Self::key(username, client), self.max_failures),
            (Self::address_key(client), self.max_failures * 10),
        ];
        limits.into_iter().find_map(|(key, max)| {
            let times = map.get_mut(&key)?;
            while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                times.pop_front();
            }
            (times.len() >= max as usize)
                .then(|| times.front().map(|first| self.window.saturating_sub(now.duration_since(*first))))
                .flatten()
        })
    }

    pub fn record_failure(&self, username: &str, client: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of distinct names: forget stale entries first.
        if map.len() > 100_000 {
            map.retain(|_, t| t.back().is_some_and(|l| now.duration_since(*l) < self.window));
        }
        map.entry(Self::key(username, client)).or_default().push_back(now);
        map.entry(Self::address_key(client)).or_default().push_back(now);
    }

    pub fn clear(&self, username: &str, client: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Self::key(username, client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password() -> Result<(), AuthError> {
        let h = hash_password("correct horse")?;
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "not-a-hash"));
        Ok(())
    }

    #[test]
    fn tokens_are_bound_to_key_audience_and_time() -> Result<(), AuthError> {
        let keys = TokenKeys::from_secret(&[7u8; 32]);
        let other = TokenKeys::from_secret(&[8u8; 32]);
        let now = chrono::Utc::now().timestamp();
        let access = keys.sign_access(&AccessClaims::new("u1", "alice", now, Duration::from_secs(60)))?;
        assert_eq!(keys.verify_access(&access).map(|c| c.name), Ok("alice".to_string()));
        let forged = other.verify_access(&access).expect_err("other key");
        assert!(forged.contains("signature"), "{forged}");
        let wrong_use = keys.verify_tunnel(&access).expect_err("audience");
        assert!(wrong_use.contains("not valid here"), "{wrong_use}");
        let expired = keys.sign_access(&AccessClaims {
            exp: now - 1,
            ..AccessClaims::new("u1", "alice", now - 100, Duration::from_secs(1))
        })?;
        assert!(keys.verify_access(&expired).expect_err("expired").contains("expired"));
        assert!(keys.verify_access("garbage").expect_err("bad").contains("malformed"));
        Ok(())
    }

    #[test]
    fn limiter_blocks_after_max_failures_and_forgets_after_window() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.blocked("Admin", ip, t0), None);
            limiter.record_failure("admin", ip, t0);
        }
        assert!(limiter.blocked("ADMIN", ip, t0).is_some());
        assert_eq!(limiter.blocked("admin", ip, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn limiter_slows_many_names_from_one_address() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let other: IpAddr = "192.0.2.8".parse().expect("ip");
        let t0 = Instant::now();
        for i in 0..30 {
            assert_eq!(limiter.blocked(&format!("user{i}"), ip, t0), None, "name {i}");
            limiter.record_failure(&format!("user{i}"), ip, t0);
        }
        assert!(limiter.blocked("someone-new", ip, t0).is_some(), "the address is not slowed");
        assert_eq!(limiter.blocked("someone-new", other, t0), None);
    }
}
