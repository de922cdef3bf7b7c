//! The protocols as bytes: what a client, a load balancer or a target sends and what we
//! answer, with no sockets and no runtime in the parsing code (the fuzz targets in `fuzz/`
//! call these parsers directly).
//!
//! - [`http`]: request heads (read under size and time bounds by a thin async reader) and
//!   the small responses the proxy writes itself;
//! - [`handshake`]: the RFC 6455 upgrade, and [`hixie`] for the Hixie-75/76 drafts;
//! - [`ws`]: the RFC 6455 frame codec, sans-IO, in place;
//! - [`encoding`]: `binary` or `base64` payloads, chosen by subprotocol;
//! - [`proxy_protocol`]: HAProxy's PROXY header, read and written.
//!
//! The lowest room: it imports no other part of the crate.

pub mod encoding;
pub mod handshake;
pub mod hixie;
pub mod http;
pub mod proxy_protocol;
pub mod ws;
