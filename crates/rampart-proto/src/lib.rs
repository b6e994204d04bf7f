//! Rampart's wire formats, sans I/O: the JSON bodies of the HTTP API ([`api`]) and the tunnel
//! protocol ([`tunnel`]): a grant request, then one WebSocket per relayed TCP connection.
//! See `docs/tunnel-protocol.md` for the whole exchange.

pub mod activation;
pub mod api;
pub mod directory;
pub mod mfa;
pub mod mux;
pub mod rdp_file;
pub mod recording;
pub mod shareable;
pub mod tunnel;

pub use api::ErrorBody;
