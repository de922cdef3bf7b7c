//! websockify: a WebSocket-to-TCP bridge, a drop-in replacement for Python websockify.
//!
//! # The life of a connection, room by room
//!
//! The source tree has one folder per stage of a connection, in the order a connection
//! meets them:
//!
//! 1. [`front`] accepts it: [`front::listener`] binds and spawns a task per connection
//!    (owned by a task tracker so none outlives shutdown); [`front::accept`] reads a
//!    trusted PROXY header, sniffs the first bytes ([`front::sniff`]): a Flash policy
//!    request is answered there, TLS is unwrapped with [`tls`] (the sniffed bytes replayed
//!    through [`session::stream::Rewind`]); anything else is HTTP.
//! 2. [`session::connection`] reads request heads under size and time limits
//!    ([`wire::http`]). Plain requests go to the static file server in [`web`]
//!    (keep-alive: several per connection).
//! 3. [`wire::handshake`] validates the RFC 6455 upgrade (or a Hixie-75/76 one,
//!    [`wire::hixie`]) and picks the [`wire::encoding`] (`binary` or `base64`) from the
//!    offered subprotocols, or produces the precise HTTP error.
//! 4. [`admission`] decides whether the session may open and where it goes:
//!    [`admission::auth`] checks the request (Basic auth, Origin, client certificate CN),
//!    [`admission::token`] picks the target from the request's token, [`admission::limit`]
//!    applies the session caps; each answers with an HTTP status before any 101.
//! 5. [`outbound`] connects to the [`Target`] (TCP, UNIX socket, TLS); if it cannot, the
//!    client gets a 101 and then close 1011.
//! 6. [`session::relay`] moves bytes both ways until either side ends: client frames are
//!    parsed and unmasked in place by the sans-IO codec in [`wire::ws`], target bytes are
//!    framed with no copy ([`session::splice`]); it performs the close handshake and
//!    reports how the session ended. [`session::record`] writes `--record` files.
//! 7. Along the way every stage counts what happens in [`ops::metrics`].
//!
//! Around them: [`cli`] turns upstream's command line (and a config file) into a validated
//! [`Config`] ([`config`]), the description every stage reads; [`host`] ties the proxy to
//! its OS (a wrapped program, the log sinks, syslog, `--user`). The binary (`main.rs`) is a thin wrapper around
//! [`Server`].
//!
//! # Which room may import which
//!
//! Imports run one way, from the top of this list down; no room imports one above it, so
//! there are no circles. `scripts/check-imports` checks every `crate::` path against this
//! table (and for circles between modules) and fails `scripts/test` otherwise.
//!
//! | room | may import | why |
//! |---|---|---|
//! | [`cli`] | everything below | builds the machinery flags name (token sources, certificates) to check them at start |
//! | [`front`] | everything below but `cli` | hands each connection to the session |
//! | [`session`] | `config`, `web`, `admission`, `host`, `ops`, `outbound`, `tls`, `wire` | drives a connection after accept |
//! | [`config`] | `web`, `admission`, `host`, `outbound`, `tls`, `wire`: **only** the option types and traits listed in `scripts/check-imports` | describes the stages, runs none of them |
//! | [`web`] | `admission`, `wire` | static files; redacts tokens in its log lines |
//! | [`admission`] | `outbound`, `tls`, `wire` | token APIs connect out over TLS |
//! | [`host`] | `outbound` | the wrapped program's port is a target |
//! | [`ops`] | `wire` | every stage counts here, so it knows none of them: they map their own errors to its labels |
//! | [`outbound`] | `tls` | where sessions go: [`Target`] and the connector |
//! | [`tls`] | nothing | rustls configurations from files, server and client side |
//! | [`wire`] | nothing | the protocols as bytes, sans-IO |
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
//! Where a session goes can be decided per session by a [`admission::token::TokenResolver`] (put in
//! [`Config::route`] as a [`Route::Token`]), and who may connect by an
//! [`admission::auth::Authenticator`] (in [`Config::auth`]). The library installs no logger: it
//! reports through [`tracing`], for the host's subscriber.
//!
//! Runnable examples, each run by `tests/embedding.rs` against a real client:
//!
//! | example | shows |
//! |---|---|
//! | `examples/token_resolver.rs` | a custom [`admission::token::TokenResolver`]: targets from the host's own table |
//! | `examples/authenticator.rs` | a custom [`admission::auth::Authenticator`]: only sessions with a known cookie |
//! | `examples/run_once.rs` | [`Config::run_once`]: serve one session, then return |
//! | `examples/graceful_shutdown.rs` | the host stops the server: live sessions get 1001 |

pub mod admission;
pub mod cli;
pub mod config;
pub mod front;
pub mod host;
pub mod ops;
pub mod outbound;
pub mod session;
pub mod tls;
pub mod web;
pub mod wire;

pub use config::{Config, Limits, ListenAddr, Route};
pub use front::listener::Server;
pub use outbound::Target;

// The paths of earlier versions, kept for embedders and `examples/`.
#[doc(no_inline)]
pub use admission::{auth, token};
#[doc(no_inline)]
pub use wire::{handshake, http, ws};
