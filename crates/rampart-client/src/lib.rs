//! Rampart's client library, shared by the `rampart` CLI and the benchmarks.
//!
//! Layout:
//! - [`trust`]: how the client trusts the gateway's certificate (a pinned SHA-256
//!   fingerprint or a CA file; never "accept anything").
//! - [`api`]: typed calls to the gateway's HTTP API, with access-token refresh.
//! - [`federated`]: signing in with an identity provider (browser with a loopback
//!   redirect, or a device code).
//! - [`tunnel`]: the tunnel client: a local listener whose every connection is relayed over
//!   its own WebSocket, using one grant (no token round trip per connection).

pub mod api;
pub mod federated;
pub mod join;
pub mod spin;
pub mod trust;
pub mod tunnel;

pub use api::{ApiClient, ClientError, Session};
pub use trust::Trust;
pub use tunnel::{TunnelClient, TunnelError};
