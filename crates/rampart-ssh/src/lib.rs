//! Rampart's SSH pieces, through russh: the certificate authority that signs short-lived user
//! certificates for identity sign-in ([`ca`]), and the SSH client the gateway runs for a
//! browser terminal ([`terminal`]) with its file panel's SFTP ([`files`]).

pub mod ca;
pub mod files;
pub mod terminal;

pub use ca::{CertificateRequest, SshCa, SshCaError, rsa_public_key, session_key};
