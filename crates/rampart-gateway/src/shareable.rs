//! Shareable links' pieces shared by the API (making, listing, deleting them), the link's own
//! pages and the admission service (deciding on a session through one): tokens, their
//! hashes, the link's URL, and the record as the rules see it.

use std::str::FromStr;

use rampart_core::{Identity, IdentityKind, ResourceId, ShareableLink};
use rampart_store::ShareableLinkRecord;

/// Where a link points: `https://HOST/share/{token}`.
pub const PATH_PREFIX: &str = "/share/";
/// Connect attempts per link from one address per minute (ten times that for all links from
/// one address, and for unknown tokens).
pub const USES_PER_MINUTE: u32 = 10;

/// A new link's token: 32 random bytes, URL-safe.
pub fn new_token() -> String {
    crate::auth::random_secret(32)
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    crate::auth::refresh_token_hash(token)
}

/// The token in what a user pasted: the link itself, or just its token.
pub fn token_of(text: &str) -> &str {
    let text = text.trim();
    let token = text.rsplit_once(PATH_PREFIX).map_or(text, |(_, t)| t);
    token.split(['?', '#', '/']).next().unwrap_or_default()
}

/// The link handed out, on the host the request that made it was sent to.
pub fn url(host: &str, token: &str) -> String {
    format!("https://{host}{PATH_PREFIX}{token}")
}

/// Whoever holds the link, as sessions and audit records name them.
pub fn identity(link_id: &str) -> Identity {
    Identity {
        id: link_id.to_string(),
        name: format!("shareable-link:{link_id}"),
        kind: IdentityKind::ShareableLink,
    }
}

/// The stored link as the rules see it.
pub fn from_record(r: &ShareableLinkRecord) -> Result<ShareableLink, String> {
    let id = |raw: &str| ResourceId::from_str(raw).map_err(|e| format!("shareable link {}: {e}", r.id));
    Ok(ShareableLink {
        id: r.id.clone(),
        bastion: id(&r.bastion_id)?,
        target: id(&r.target_id)?,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_in_a_link_or_alone() {
        assert_eq!(token_of("https://gw.example:8443/share/abc_-1"), "abc_-1");
        assert_eq!(token_of(" abc_-1 "), "abc_-1");
        assert_eq!(token_of("https://gw/share/abc?x=1"), "abc");
        assert_eq!(token_of("https://gw/share/"), "");
        assert_ne!(token_hash("a"), token_hash("b"));
        assert_eq!(new_token().len(), 43);
    }
}
