//! websockify: a WebSocket-to-TCP bridge, a drop-in replacement for Python websockify.
//!
//! # The life of a connection
//!
//! 1. [`listener`] accepts it and spawns a task for it (one task per connection, owned by
//!    a task tracker so none outlives shutdown).
//! 2. [`connection`] drives it: [`http`] reads the request head under size and time
//!    limits; plain HTTP is answered there.
//! 3. [`handshake`] validates the RFC 6455 upgrade and picks the [`encoding`] (`binary` or
//!    `base64`) from the offered subprotocols, or produces the precise HTTP error.
//! 4. [`target`] connects to where the session goes (TCP or UNIX socket); if it cannot,
//!    the client gets a 101 and then close 1011.
//! 5. [`relay`] moves bytes both ways until either side ends: client frames are parsed and
//!    unmasked in place by the sans-IO codec in [`ws`], target bytes are framed with no
//!    copy. It performs the close handshake and reports how the session ended.
//!
//! [`cli`] turns upstream's command line into a validated [`Config`]; the binary is a
//! thin wrapper around [`Server`].
//!
//! # Embedding
//!
//! ```no_run
//! use websockify::{Config, ListenAddr, Server, Target};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::new(ListenAddr::parse("127.0.0.1:6080")?, Target::parse_tcp("localhost:5900")?);
//! let server = Server::bind(config).await?;
//! let shutdown = CancellationToken::new();
//! tokio::spawn(server.run(shutdown.clone()));
//! // ... later: close every session with 1001 and stop.
//! shutdown.cancel();
//! # Ok(()) }
//! ```

pub mod cli;
pub mod config;
pub mod connection;
pub mod encoding;
pub mod handshake;
pub mod http;
pub mod listener;
pub mod relay;
pub mod target;
pub mod ws;

pub use config::{Config, Limits, ListenAddr, Target};
pub use listener::Server;
