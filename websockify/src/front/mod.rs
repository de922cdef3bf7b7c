//! The front door: listening, accepting, and finding out what a connection is before any
//! HTTP is read.
//!
//! - [`listener`]: binding (TCP, UNIX socket, inetd, systemd), the accept loop, and the
//!   [`Server`](listener::Server) an embedder runs;
//! - [`accept`]: one accepted connection up to HTTP: a trusted PROXY header, sniffing,
//!   the Flash policy answer, the TLS handshake; then [`crate::session`] takes over;
//! - [`sniff`]: telling TLS, Flash policy and HTTP apart by their first bytes.
//!
//! The top stage: it may import every room but [`crate::cli`].

pub mod accept;
pub mod listener;
pub mod sniff;
