//! Rampart's OpenID Connect relying party.
//!
//! The protocol is the `openidconnect` crate's (discovery, PKCE, the token requests, id_token
//! signature and claims checks); this crate adds what a gateway needs around it:
//! - an HTTP client that trusts a private CA when asked, follows no redirects and reads
//!   bounded answers ([`http_client`]);
//! - discovery and keys cached, fetched again on a key it does not know (rotation), at most
//!   once per few seconds whatever the traffic ([`Provider`]);
//! - one validation of every id_token with a fixed algorithm allow-list, and refusals with a
//!   named reason ([`Refusal`]) the gateway audits;
//! - the claims a gateway maps to a principal (user name, groups, domain rule) ([`claims`]).
//!
//! No clock or state of its own beyond the cache: the gateway keeps flows (state, nonce,
//! verifier) where every node can read them.

pub mod claims;
mod error;
mod http_client;
mod provider;
pub mod verify;

pub use claims::{ClaimRules, FederatedClaims};
pub use error::{OidcError, Refusal};
pub use provider::{AuthorizationRequest, DevicePoll, DeviceStart, Provider, ProviderConfig, SignedIn};
pub use verify::{ALLOWED_ALGORITHMS, verify_id_token};
