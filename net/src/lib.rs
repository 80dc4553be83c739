//! Outbound network plumbing for everything the collector sends
//! (notification receivers, remote_write, event forwarding):
//!
//! - [`connect`]: a TCP or TLS byte stream to one host and port, opened
//!   within a deadline.
//! - [`http_client`]: the one HTTP/1.1 client, keeping its connection open
//!   between requests and reading each answer into a
//!   [`SendError`](send_error::SendError).
//! - [`send_error`]: why a delivery failed, and whether a retry can help.
//! - [`backoff`]: the one retry schedule (exponential, capped, jittered).
//! - [`secret`]: the one reader of secret files named in configs.
//!
//! **Invariant:** the caller builds the TLS configuration (which roots it
//! trusts, whether it presents a certificate), so this crate has no opinion
//! about trust; the only files it reads are the secrets `secret` is asked
//! for.

// Senders never panic on purpose outside tests (clippy.toml allows it in
// tests); unwrap and expect are denied workspace-wide.
#![deny(clippy::panic, clippy::todo, clippy::unimplemented)]

pub mod backoff;
pub mod connect;
pub mod http_client;
pub mod secret;
pub mod send_error;
