//! websockify: a WebSocket-to-TCP bridge, a drop-in replacement for Python websockify.
//!
//! # The life of a connection
//!
//! 1. [`listener`] accepts it and spawns a task for it (one task per connection, owned by
//!    a task tracker so none outlives shutdown).
//! 2. [`connection`] drives it. [`sniff`] reads its first bytes: a Flash policy request is
//!    answered there; TLS is unwrapped by [`tls`] (the sniffed bytes replayed through
//!    [`stream::Rewind`]); anything else is HTTP.
//! 3. [`http`] reads request heads under size and time limits. Plain requests go to the
//!    static file server in [`web`] (keep-alive: several per connection).
//! 4. [`handshake`] validates the RFC 6455 upgrade (or a Hixie-75/76 one, [`hixie`]) and
//!    picks the [`encoding`] (`binary` or `base64`) from the offered subprotocols, or
//!    produces the precise HTTP error.
//! 5. [`auth`] checks the request (Basic auth, Origin, client certificate CN), and
//!    [`token`] picks the target from the request's token when targets are chosen per
//!    session; both answer with an HTTP status before any 101.
//! 6. [`target`] connects to where the session goes (TCP or UNIX socket); if it cannot,
//!    the client gets a 101 and then close 1011.
//! 7. [`relay`] moves bytes both ways until either side ends: client frames are parsed and
//!    unmasked in place by the sans-IO codec in [`ws`], target bytes are framed with no
//!    copy. It performs the close handshake and reports how the session ended.
//!
//! [`cli`] turns upstream's command line (and a [`config_file`]) into a validated
//! [`Config`]; the binary is a thin wrapper around [`Server`].
//!
//! # Embedding
//!
//! A host program builds a [`Config`] (where to listen, where sessions go, and any of the
//! fields the command line would set), [binds](Server::bind) a [`Server`] and
//! [runs](Server::run) it until its [`CancellationToken`](tokio_util::sync::CancellationToken)
//! is cancelled:
//!
//! ```
//! use std::time::Duration;
//! use tokio_util::sync::CancellationToken;
//! use websockify::{Config, ListenAddr, Server, Target};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::new(ListenAddr::parse("127.0.0.1:0")?, Target::parse_tcp("localhost:5900")?);
//! config.heartbeat = Some(Duration::from_secs(30));
//! let server = Server::bind(config).await?;
//! println!("WebSocket clients connect to ws://{}/", server.local_addr()?);
//!
//! let shutdown = CancellationToken::new();
//! let running = tokio::spawn(server.run(shutdown.clone()));
//! // ... later: stop accepting, close every session with 1001, and return.
//! shutdown.cancel();
//! running.await?;
//! # Ok(()) }
//! ```
//!
//! Where a session goes can be decided per session by a [`token::TokenResolver`] (put in
//! [`Config::route`] as a [`Route::Token`]), and who may connect by an
//! [`auth::Authenticator`] (in [`Config::auth`]). The library installs no logger: it
//! reports through [`tracing`], for the host's subscriber.
//!
//! Runnable examples, each run by `tests/embedding.rs` against a real client:
//!
//! | example | shows |
//! |---|---|
//! | `examples/token_resolver.rs` | a custom [`token::TokenResolver`]: targets from the host's own table |
//! | `examples/authenticator.rs` | a custom [`auth::Authenticator`]: only sessions with a known cookie |
//! | `examples/run_once.rs` | [`Config::run_once`]: serve one session, then return |
//! | `examples/graceful_shutdown.rs` | the host stops the server: live sessions get 1001 |

pub mod auth;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod connection;
pub mod encoding;
pub mod forwarded;
pub mod handshake;
pub mod hixie;
pub mod http;
pub mod limit;
pub mod listener;
pub mod metrics;
pub mod proxy_protocol;
pub mod record;
pub mod relay;
pub mod sniff;
pub mod splice;
pub mod stream;
pub mod syslog;
pub mod target;
pub mod tls;
pub mod token;
pub mod web;
pub mod wrap;
pub mod ws;

pub use config::{Config, Limits, ListenAddr, Route, Target};
pub use listener::Server;
