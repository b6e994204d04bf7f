//! Rampart's gateway: the HTTPS server users sign in to, the API that manages bastions, and
//! the tunnel relay that carries TCP connections to targets.
//!
//! Layout:
//! - [`config`]: every setting, with defaults.
//! - [`tls`]: the server certificate (generated self-signed on first start, or given).
//! - [`auth`]: password hashing, signed access and tunnel tokens, refresh tokens, sign-in
//!   rate limits.
//! - [`api`]: the HTTP routes (axum) and their JSON errors.
//! - [`admission`]: the one path by which every session reaches its target.
//! - [`lifecycle`]: the one life every session runs: start, data, stop, end, observers.
//! - [`tunnel`]: tunnel grants and the three carriers of tunnelled connections.
//! - [`federation`]: single sign-on with OpenID Connect providers (users, groups, flows).
//! - [`portal`]: the browser portal (pages, sign-in cookie, CSRF) and SSH in the browser.
//! - [`rd_gateway`]: the Remote Desktop Gateway endpoint stock RDP clients connect through.
//! - [`azure`]: what the real Azure CLI talks to: cloud metadata, an OAuth authority, ARM
//!   reads and the bastion data plane of `az network bastion tunnel|ssh`.
//! - [`node`]: this gateway among the nodes sharing its store: heartbeats, lost nodes.
//! - [`server`]: first-start bootstrap, the TLS accept loop, drain and shutdown.

pub mod admission;
pub mod api;
pub mod auth;
pub mod azure;
pub mod config;
pub mod federation;
pub mod fuzzing;
pub mod lifecycle;
pub mod mfa;
pub mod node;
pub mod portal;
pub mod proxy_protocol;
pub mod rd_gateway;
pub mod recording;
pub mod server;
pub mod shareable;
pub mod tls;
pub mod tunnel;

pub use config::GatewayConfig;
pub use server::{Gateway, GatewayError, StartedGateway, open_store};
