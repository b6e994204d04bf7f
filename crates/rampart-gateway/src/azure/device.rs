//! `az login --use-device-code` for Rampart's users: az asks for a device code, the user
//! approves its user code in the portal (signed in as there, with their second factor or
//! their identity provider), and az's polling then receives the user's tokens.
//!
//! Nothing is held per code on a node, so any node answers any step: the device code is a
//! signed token naming its user code; the user code carries two check characters (an HMAC
//! of the rest), so the portal tells a mistyped code from one the gateway gave out; an
//! approval is a one-time credential in the store's refresh-token table under a hash of the
//! user code, which the first poll after it redeems.

use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth;
use crate::server::Gateway;

const DEVICE_AUDIENCE: &str = "rampart-az-device";
/// How long a code may wait for its approval.
pub const DEVICE_CODE_TTL_SECS: i64 = 900;
/// How often az polls, in seconds.
pub const POLL_INTERVAL_SECS: u64 = 3;
/// Consonants only: no words, no 0/O or 1/I to confuse.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const RANDOM_CHARS: usize = 8;
const CHECK_CHARS: usize = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeviceClaims {
    /// Always "device": the code names no user until it is approved.
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    pub user_code: String,
    pub client_id: String,
}

/// The check characters of a user code's random part.
fn check(gw: &Gateway, random: &str) -> Result<String, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(gw.keys.device_code_key()).map_err(|e| e.to_string())?;
    mac.update(random.as_bytes());
    let digest = mac.finalize().into_bytes();
    Ok(digest.iter().take(CHECK_CHARS).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

/// A new device code (signed) and its user code (`XXXXX-XXXXX`).
pub(crate) fn issue(gw: &Gateway, client_id: &str, now: i64) -> Result<(String, String), String> {
    let mut rng = rand::rng();
    let random: String =
        (0..RANDOM_CHARS).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    let code = format!("{random}{}", check(gw, &random)?);
    let claims = DeviceClaims {
        sub: "device".into(),
        aud: DEVICE_AUDIENCE.into(),
        iat: now,
        exp: now + DEVICE_CODE_TTL_SECS,
        user_code: code.clone(),
        client_id: client_id.chars().take(64).collect(),
    };
    let device_code = gw.keys.sign(&claims).map_err(|e| e.to_string())?;
    Ok((device_code, display(&code)))
}

/// `ABCDEFGHJK` as people read it: `ABCDE-FGHJK`.
fn display(code: &str) -> String {
    format!("{}-{}", &code[..code.len() / 2], &code[code.len() / 2..])
}

/// A typed user code without its dash and spaces, upper case, if the gateway gave it out.
pub(crate) fn normalize(gw: &Gateway, typed: &str) -> Option<String> {
    let code: String =
        typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    if code.len() != RANDOM_CHARS + CHECK_CHARS || !code.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    let (random, given) = code.split_at(RANDOM_CHARS);
    let expected = check(gw, random).ok()?;
    let same = expected.len() == given.len() && expected.bytes().zip(given.bytes()).all(|(a, b)| a == b);
    same.then_some(code)
}

/// A device code az polls with: its claims, or why not (`expired_token`, `invalid_grant`).
pub(crate) fn verify(gw: &Gateway, device_code: &str) -> Result<DeviceClaims, (&'static str, String)> {
    gw.keys.verify::<DeviceClaims>(device_code, DEVICE_AUDIENCE).map_err(|e| {
        if e.contains("expired") {
            ("expired_token", "the device code expired: run `az login --use-device-code` again".to_string())
        } else {
            ("invalid_grant", format!("device code: {e}"))
        }
    })
}

/// Where an approval of `user_code` waits in the refresh-token table: prefixed, so no string
/// presented as a refresh token (stored as its bare SHA-256) can ever name it.
pub(crate) fn approval_key(user_code: &str) -> String {
    format!("az-device-code:{}", auth::refresh_token_hash(user_code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_read_in_two_halves() {
        assert_eq!(display("BCDFGHJKLM"), "BCDFG-HJKLM");
    }

    #[test]
    fn an_approval_is_never_a_refresh_token() {
        let key = approval_key("BCDFGHJKLM");
        assert!(key.starts_with("az-device-code:"));
        assert_ne!(key, auth::refresh_token_hash("az-device-code:BCDFGHJKLM"));
        assert_eq!(auth::refresh_token_hash("x").len(), 64, "refresh tokens are stored as bare hex");
    }
}
