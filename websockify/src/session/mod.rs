//! One connection once we know it speaks HTTP (plain, or TLS already unwrapped by
//! [`crate::front`]): read its requests, serve files through [`crate::web`] or take the
//! WebSocket upgrade through [`crate::admission`], connect to the target, and relay.
//!
//! - [`connection`]: the driver, from the first request head to the session's last log line;
//! - [`relay`]: the hot path, both directions and the close handshake, and [`splice`] for
//!   zero-copy target-to-client forwarding;
//! - [`stream`]: streams the relay can split, and `Rewind` for bytes read ahead;
//! - [`record`]: `--record` files.

pub mod connection;
pub mod record;
pub mod relay;
pub mod splice;
pub mod stream;
