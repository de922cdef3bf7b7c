//! One client connection from its first request head to its close: serve static files
//! while the client keeps the connection alive, or validate the WebSocket handshake, admit
//! the session (auth, token, caps), connect to the target, then relay. What came before
//! (PROXY header, sniffing, TLS) is [`crate::front::accept`]'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::admission::auth;
use crate::admission::forwarded;
use crate::admission::limit::{Refusal, SessionLimits};
use crate::admission::token;
use crate::config::{Config, Route};
use crate::ops::metrics::{HandshakeFailure, Limit, Lookup, METRICS};
use crate::ops::sessions::{EndedBy, Live, Registry};
use crate::outbound::Target;
use crate::outbound::{self, TargetStream};
use crate::session::record::Recorder;
use crate::session::relay::{self, End, RelayConfig};
use crate::session::stream::Split;
use crate::tls::TlsServer;
use crate::web;
use crate::wire::handshake::{self, RequestKind};
use crate::wire::http::{self, Request, Response};
use crate::wire::proxy_protocol;
use crate::wire::ws::{ControlFrame, close_code};

/// What every connection shares.
pub struct Context {
    pub config: Arc<Config>,
    /// The loaded TLS configuration, if any (reloadable).
    pub tls: Option<Arc<TlsServer>>,
    /// The client side for `--ssl-target`.
    pub target_tls: Option<TlsConnector>,
    /// Cancelled when the server shuts down: sessions close with 1001.
    pub shutdown: CancellationToken,
    /// Live session counts against the configured caps.
    pub sessions: Arc<SessionLimits>,
    /// Places for connections that are not yet sessions (`--max-pending-handshakes`).
    pub pending: Arc<tokio::sync::Semaphore>,
    /// The live sessions, when an operator feature needs them (admin API, revocation).
    pub registry: Option<Arc<Registry>>,
}

/// What a connection turned out to be, for the accept loop (`--run-once` counts sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A WebSocket handshake was accepted (whether or not the target could be reached).
    Session,
    /// Anything else: static files, refused or malformed requests, clients that left.
    NotSession,
}

/// What serving a connection up to its WebSocket session gave.
// Returned once per connection and moved into the task's state: a box would be one more
// allocation per session.
#[allow(clippy::large_enum_variant)]
pub enum Served<S> {
    /// The connection is done: not a session, or a session that ended as it started (a
    /// target that cannot be reached, a client that left before the 101).
    Done(Outcome),
    /// A WebSocket session, admitted and connected, ready to relay.
    Session(Established<S>),
}

/// A WebSocket session once admitted and connected: all it keeps while it relays. The
/// handshake's state (request head, buffers, the steps' futures) is gone by then: a session
/// may last days, and its task carries only this and the relay.
pub struct Established<S> {
    io: S,
    target: TargetStream,
    /// Client bytes read past the handshake.
    pending: Vec<u8>,
    relay: RelayConfig,
    /// The target as the logs show it (no token in it).
    shown_destination: String,
    token: Option<String>,
    client: Option<SocketAddr>,
    started: Instant,
    /// Held until the session ends: its place under the session caps, its entry in the
    /// registry, its count in the open sessions gauge.
    _permit: crate::admission::limit::Permit,
    _registered: Option<crate::ops::sessions::Registered>,
    _open: crate::ops::metrics::OpenSession,
}

impl<S: Split> Established<S> {
    /// Relays until the session ends, then logs its summary.
    ///
    /// By reference: the session stays where it is while it relays (moved into this
    /// future, it would be stored twice: rustc keeps room for a moved-from value).
    pub async fn run(&mut self, ctx: &Context) -> Outcome {
        let pending = std::mem::take(&mut self.pending);
        let (io, config, shutdown) = (&mut self.io, &self.relay, &ctx.shutdown);
        // A plain TCP target inline; the others boxed, so that the common case sets the
        // size of the session's task.
        let (end, counts) = match &mut self.target {
            TargetStream::Tcp(t) => relay_with(io, pending, t, config, shutdown).await,
            TargetStream::Unix(t) => Box::pin(relay_with(io, pending, t, config, shutdown)).await,
            TargetStream::Tls(t) => Box::pin(relay_with(io, pending, &mut **t, config, shutdown)).await,
        };
        let (started, client, shown_destination, token) =
            (self.started, self.client, &self.shown_destination, &self.token);
        METRICS.session_ended(end.close_code(), end.limit());
        // The session's summary (`--log-format json` makes each field a key); the token is
        // logged as its id, as some plugins' tokens are secrets.
        let reason = describe(&end);
        tracing::info!(
            to_target = counts.to_target,
            to_client = counts.to_client,
            secs = format_args!("{:.3}", started.elapsed().as_secs_f64()),
            close_code = end.close_code(),
            close_reason = %reason,
            client = %client.map_or_else(|| "unix".to_owned(), |c| c.to_string()),
            target = %shown_destination,
            token_id = token.as_deref().map(token::id).map(tracing::field::display),
            "session closed: {reason}"
        );
        Outcome::Session
    }
}

/// A connection's two ends as its socket says (TCP; `None` for UNIX sockets), or as a
/// trusted PROXY protocol header says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addrs {
    /// The client.
    pub peer: Option<SocketAddr>,
    /// The address it connected to.
    pub local: Option<SocketAddr>,
}

/// What the connection itself says about the client.
pub struct Peer {
    /// The connection id (log lines, recording file names).
    pub id: u64,
    /// The client's address (TCP clients; after any PROXY header) and the one it connected
    /// to: for per-IP session caps and the target's PROXY header.
    pub addrs: Addrs,
    /// Over TLS.
    pub secure: bool,
    /// Subject CN of the verified client certificate.
    pub client_cn: Option<String>,
    /// When the connection was accepted (TLS: established): the first request head is due
    /// within the handshake timeout of this.
    pub accepted: Instant,
    /// Its place among the connections that are not yet sessions, given back at the 101.
    pub pending: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Peer {
    /// The client's address for a request: the connection's, or, from a proxy trusted with
    /// `--trusted-proxy`, the one its `X-Forwarded-For` or `Forwarded` header gives (with
    /// port 0: those headers have none).
    fn client(&self, request: &Request, ctx: &Context) -> Option<SocketAddr> {
        let peer = self.addrs.peer?;
        let trusted = &ctx.config.trusted_proxies;
        match forwarded::client_ip(request, peer.ip(), trusted) {
            Some(ip) if ip != peer.ip() => {
                tracing::Span::current().record("forwarded_for", tracing::field::display(ip));
                tracing::debug!("client {ip}, as forwarded by {}", peer.ip());
                Some(SocketAddr::new(ip, 0))
            }
            _ => Some(peer),
        }
    }

    /// Runs the configured authenticator on a request from `client` (see [`Peer::client`]).
    async fn authenticate(
        &self,
        request: &Request,
        client: Option<SocketAddr>,
        ctx: &Context,
    ) -> Result<(), auth::AuthError> {
        match &ctx.config.auth {
            Some(a) => {
                a.authenticate_async(auth::AuthRequest { request, client_cn: self.client_cn.as_deref(), client }).await
            }
            None => Ok(()),
        }
    }
}

/// Reads request heads on a (possibly TLS) connection: serves files while the client keeps
/// the connection alive, until a WebSocket upgrade takes it over.
pub async fn serve_http<S: Split>(mut io: S, mut buf: BytesMut, mut peer: Peer, ctx: &Context) -> Served<S> {
    let config = &ctx.config;
    let mut first = true;
    loop {
        let mut limits = config.limits.head;
        if std::mem::take(&mut first) {
            let left = limits.timeout.saturating_sub(peer.accepted.elapsed());
            limits.timeout = left.max(std::time::Duration::from_millis(1));
        }
        let request = match http::read_head(&mut io, &mut buf, limits).await {
            Ok(request) => request,
            Err(e) => {
                // Name the configured deadline, not what was left of it for this head.
                let e = match e {
                    http::HeadError::Timeout(_) => http::HeadError::Timeout(config.limits.head.timeout),
                    e => e,
                };
                match e.status() {
                    Some(status) => {
                        tracing::info!("bad request: {e}");
                        METRICS.bad_request(&e);
                        let _ = Response::error(status, capitalise(&e.to_string())).write_to(&mut io).await;
                    }
                    None => tracing::debug!("no request: {e}"),
                }
                return Served::Done(Outcome::NotSession);
            }
        };
        // Evaluated only when debug logging is on.
        tracing::debug!(method = %request.method, path = %shown_target(&request, config), "request");
        if handshake::classify(&request) == RequestKind::WebSocket {
            // The permit apart, so that the session borrows the peer (a second copy of it
            // would be part of every session's state for its whole life).
            let pending = peer.pending.take();
            return websocket(io, request, buf, &peer, pending, ctx).await;
        }
        let shown = shown_target(&request, config);
        let Some(web) = &config.web else {
            tracing::info!("{} {shown}: 405, plain HTTP is not served (no --web)", request.method);
            let response =
                Response::error(405, "Method Not Allowed: this is a WebSocket proxy; it serves no plain HTTP")
                    .with_header("Allow", "GET (WebSocket upgrade)");
            let _ = response.write_to(&mut io).await;
            return Served::Done(Outcome::NotSession);
        };
        if config.web_auth
            && let Err(e) = peer.authenticate(&request, peer.client(&request, ctx), ctx).await
        {
            tracing::info!("{} {shown}: {} ({})", request.method, e.status, e.log);
            let _ = e.response().write_to(&mut io).await;
            return Served::Done(Outcome::NotSession);
        }
        match Box::pin(web::serve(&mut io, &request, web)).await {
            Ok(true) => tracing::debug!("{} {shown} served", request.method),
            Ok(false) => {
                let _ = io.shutdown().await;
                return Served::Done(Outcome::NotSession);
            }
            Err(e) => {
                tracing::debug!("{} {shown}: {e}", request.method);
                return Served::Done(Outcome::NotSession);
            }
        }
    }
}

/// The WebSocket part: handshake, admission, target; the relay is the caller's.
async fn websocket<S: Split>(
    mut io: S,
    request: Request,
    mut buf: BytesMut,
    peer: &Peer,
    pending: Option<tokio::sync::OwnedSemaphorePermit>,
    ctx: &Context,
) -> Served<S> {
    let config = &ctx.config;
    let secure = peer.secure;
    // Hixie-76 sends 8 bytes after its head; wait for them within the head deadline.
    let needed = handshake::body_needed(&request);
    if buf.len() < needed {
        let read = async {
            while buf.len() < needed {
                if io.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok::<_, std::io::Error>(())
        };
        if !matches!(tokio::time::timeout(config.limits.head.timeout, read).await, Ok(Ok(()))) {
            tracing::info!("Hixie-76 handshake without its 8-byte key");
            METRICS.handshake_failed(HandshakeFailure::HixieKey, None);
            return Served::Done(Outcome::NotSession);
        }
    }
    let accepted = match handshake::accept(&request, &buf, secure) {
        Ok(accepted) => accepted,
        Err(response) => {
            tracing::info!("handshake refused: {} {}", response.status, response.body.trim_end());
            METRICS.handshake_failed(HandshakeFailure::InvalidUpgrade, Some(response.status));
            let _ = response.write_to(&mut io).await;
            return Served::Done(Outcome::NotSession);
        }
    };
    let _ = buf.split_to(accepted.consumed);
    let client = peer.client(&request, ctx);
    if let Err(e) = peer.authenticate(&request, client, ctx).await {
        tracing::info!("authentication failed: {} ({})", e.status, e.log);
        METRICS.handshake_failed(HandshakeFailure::Auth, Some(e.status));
        let _ = e.response().write_to(&mut io).await;
        return Served::Done(Outcome::NotSession);
    }
    let (destination, token, counted_as, expires) = match Box::pin(choose_target(&request, ctx)).await {
        Ok(found) => found,
        Err(response) => {
            let _ = response.write_to(&mut io).await;
            return Served::Done(Outcome::NotSession);
        }
    };
    // Held until the session ends.
    let _permit = match ctx.sessions.acquire(client.map(|c| c.ip()), counted_as.as_deref().or(token.as_deref())) {
        Ok(permit) => permit,
        Err(refusal) => {
            tracing::warn!("session refused: {refusal}");
            METRICS.session_refused(
                refusal.status(),
                match refusal {
                    Refusal::Total(_) => Limit::MaxSessions,
                    Refusal::Ip(..) => Limit::MaxSessionsPerIp,
                    Refusal::Token(_) => Limit::MaxSessionsPerToken,
                },
            );
            let body = if refusal.status() == 503 { "Server full, try again later" } else { "Too many sessions" };
            let _ = Response::error(refusal.status(), body).with_header("Retry-After", "5").write_to(&mut io).await;
            return Served::Done(Outcome::NotSession);
        }
    };

    // What logs show of the target: without a token in it.
    let shown_destination = token::redact_target(&destination, token.as_deref());
    // One line per session start, in upstream's words so that operators' log alerts keep
    // matching ("Plain non-SSL (ws://) WebSocket connection", "connecting to: HOST:PORT").
    {
        let draft = if accepted.framing == handshake::Framing::Hixie { " Hixie" } else { "" };
        let connecting = match shown_destination.strip_prefix("unix socket ") {
            Some(path) => format!("connecting to unix socket: {path}"),
            None => format!("connecting to: {shown_destination}"),
        };
        tracing::info!(
            "{} WebSocket connection: {}{draft} session, {connecting}{} ({})",
            if secure { "SSL/TLS (wss://)" } else { "Plain non-SSL (ws://)" },
            accepted.encoding.name(),
            if ctx.target_tls.is_some() { " (using SSL)" } else { "" },
            shown_target(&request, config)
        );
    }
    let started = Instant::now();
    let target = match Box::pin(outbound::connect(
        &destination,
        config.prefer_ipv6,
        ctx.target_tls.as_ref(),
        config.limits.connect_timeout,
        config.target_proxy.map(|v| proxy_protocol::encode(v, client, peer.addrs.local)).as_deref(),
    ))
    .await
    {
        Ok(target) => target,
        Err(e) => {
            // The client gets a WebSocket close with a reason it can show, not an HTTP error
            // a browser would hide from the page.
            let e = e.to_string().replace(&destination.to_string(), &shown_destination);
            tracing::error!("failed to connect to {shown_destination}: {e}");
            METRICS.target_connect_failures.inc();
            let _ = io.write_all(&accepted.response).await;
            if accepted.framing == handshake::Framing::Rfc6455 {
                let close =
                    ControlFrame::close(Some(close_code::INTERNAL_ERROR), "Failed to connect to downstream server");
                let _ = io.write_all(close.as_bytes()).await;
            } else {
                let _ = io.write_all(&crate::wire::hixie::CLOSE).await;
            }
            let _ = io.shutdown().await;
            // Every session whose start was logged logs its end.
            tracing::info!("session closed: target unreachable, closed with 1011");
            return Served::Done(Outcome::Session);
        }
    };
    if let Err(e) = async {
        io.write_all(&accepted.response).await?;
        io.flush().await
    }
    .await
    {
        tracing::info!("session closed: client left during the handshake: {e}");
        METRICS.handshake_failed(HandshakeFailure::ClientGone, None);
        return Served::Done(Outcome::Session);
    }
    // A session now: its place among the pending connections goes to the next one.
    drop(pending);
    let record = match &config.record {
        Some(base) => match Recorder::start(base, peer.id, accepted.encoding).await {
            Ok(r) => Some(r),
            Err(e) => {
                let path = crate::session::record::path_for(base, peer.id);
                tracing::error!("cannot record to {}: {e}; the session goes on unrecorded", path.display());
                None
            }
        },
        None => None,
    };
    // The operator's view of the session, and when it must end at the latest.
    let registered = ctx.registry.as_ref().map(|registry| {
        registry.register(Live::new(
            peer.id,
            client,
            shown_destination.clone(),
            destination.to_string(),
            token.as_deref().map(token::id),
            secure,
            accepted.encoding.name(),
            token.clone().filter(|_| config.revoke_interval.is_some()),
        ))
    });
    let deadline = session_deadline(config, expires);
    let relay_config = RelayConfig {
        record,
        framing: accepted.framing,
        encoding: accepted.encoding,
        decoder: config.limits.decoder,
        heartbeat: config.heartbeat,
        close_timeout: config.limits.close_timeout,
        traffic: config.traffic,
        idle_timeout: config.limits.session_idle_timeout,
        max_control_rate: config.limits.max_control_rate,
        max_text_hold: config.limits.max_text_hold,
        max_held_text_total: config.limits.max_held_text_total,
        drain_timeout: config.limits.drain_timeout,
        live: registered.as_ref().map(|r| r.live.clone()),
        deadline,
    };
    let _open = METRICS.session_started();
    Served::Session(Established {
        io,
        target,
        pending: buf.to_vec(),
        relay: relay_config,
        shown_destination,
        token,
        client,
        started,
        _permit,
        _registered: registered,
        _open,
    })
}

/// When the session must end at the latest (`--max-session-duration`, and with
/// `--end-session-at-token-expiry` its token's expiry), with what close code and reason.
fn session_deadline(
    config: &Config,
    expires: Option<std::time::SystemTime>,
) -> Option<(tokio::time::Instant, u16, &'static str, EndedBy)> {
    let mut deadline = config
        .limits
        .max_session_duration
        .map(|d| (tokio::time::Instant::now() + d, close_code::GOING_AWAY, "Session time limit", EndedBy::TimeLimit));
    if config.end_at_token_expiry
        && let Some(expires) = expires
    {
        let left = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
        let at = tokio::time::Instant::now() + left;
        if deadline.is_none_or(|(d, ..)| at < d) {
            deadline = Some((at, close_code::POLICY, "Token expired", EndedBy::Expired));
        }
    }
    deadline
}

/// The session's target: the fixed one, or the one its token maps to. Token problems end
/// here with an HTTP status and a short reason; the log line says exactly why.
/// Also what the session counts as for the per-token cap, when not the token itself.
/// The token's expiry too, when the source knows it.
#[allow(clippy::type_complexity)]
async fn choose_target(
    request: &Request,
    ctx: &Context,
) -> Result<(Target, Option<String>, Option<String>, Option<std::time::SystemTime>), Response> {
    let route = match &ctx.config.route {
        Route::Fixed(target) => return Ok((target.clone(), None, None, None)),
        Route::Token(route) => route,
    };
    let Some((token, place)) = token::extract_from(request, route.source) else {
        tracing::info!("no token in the request ({})", shown_target(request, &ctx.config));
        METRICS.handshake_failed(HandshakeFailure::NoToken, Some(400));
        let place = if route.source.host { "the Host header" } else { "the request (?token=...)" };
        return Err(Response::error(400, format!("Missing token: expected one in {place}")));
    };
    // A cookie rides along on a request another site's page makes (cross-site WebSocket
    // hijacking): its token counts only for a page of our own origin, or of an origin an
    // ExpectOrigin authenticator has already accepted.
    if place == token::Place::Cookie
        && !token::same_origin(request)
        && !ctx.config.auth.as_ref().is_some_and(|a| a.checks_origin())
    {
        tracing::warn!(
            "token from a cookie on a cross-site request refused: Origin {:?} is not Host {:?}",
            request.header("Origin").unwrap_or_default(),
            request.header("Host").unwrap_or_default()
        );
        METRICS.handshake_failed(HandshakeFailure::Auth, Some(403));
        return Err(Response::error(403, "Invalid Origin"));
    }
    let started = Instant::now();
    let found = route.resolver.lookup_counted(&token).await;
    let took = started.elapsed();
    let ms = took.as_secs_f64() * 1000.0;
    match found {
        Ok(Some(token::Found { target, counted_as, expires })) => {
            // Debug: the session's start line that follows names the token's id and the
            // target (a line per session costs about 5% of the session rate), and the
            // lookup's time is in the metrics' histogram.
            tracing::debug!(
                "token [{}] -> {} ({ms:.1} ms)",
                token::id(&token),
                token::redact_target(&target, Some(&token))
            );
            METRICS.token_lookup(Lookup::Found, took);
            Ok((target, Some(token), counted_as, expires))
        }
        Ok(None) => {
            tracing::info!("Token '[{}]' not found ({ms:.1} ms)", token::id(&token));
            METRICS.token_lookup(Lookup::NotFound, took);
            METRICS.handshake_failed(HandshakeFailure::Token, Some(404));
            Err(Response::error(404, "Unknown token"))
        }
        Err(e) => {
            tracing::warn!("token [{}]: {e} ({ms:.1} ms)", token::id(&token));
            let (reason, result) = match e.status() {
                403 => ("Token refused", Lookup::Refused),
                504 => ("Token lookup timed out", Lookup::Timeout),
                _ => ("Token lookup failed", Lookup::Error),
            };
            METRICS.token_lookup(result, took);
            METRICS.handshake_failed(HandshakeFailure::Token, Some(e.status()));
            Err(Response::error(e.status(), reason))
        }
    }
}

async fn relay_with<C: Split, T: Split>(
    client: &mut C,
    pending: Vec<u8>,
    target: &mut T,
    config: &RelayConfig,
    shutdown: &CancellationToken,
) -> (End, relay::Counts) {
    let (cr, cw) = client.split_io();
    let (tr, tw) = target.split_io();
    relay::run(cr, cw, pending, tr, tw, config, shutdown).await
}

fn describe(end: &End) -> String {
    match end {
        End::ClientClosed(code) => format!("client closed ({})", code.map_or("no code".into(), |c| c.to_string())),
        End::TargetClosed { acknowledged } => format!("target closed{}", ack(*acknowledged)),
        End::TargetError(e) => format!("target connection failed: {e}"),
        End::Shutdown { acknowledged } => format!("server shutting down{}", ack(*acknowledged)),
        End::Idle { acknowledged } => format!("idle timeout{}", ack(*acknowledged)),
        End::ProtocolError { code, reason } => format!("protocol error, closed with {code}: {reason}"),
        End::ClientGone(None) => "client disconnected without a close frame".into(),
        End::ClientGone(Some(e)) => format!("client connection failed: {e}"),
        End::Ended { code, reason, by, acknowledged } => {
            format!("ended ({}), closed with {code} {reason:?}{}", by.label(), ack(*acknowledged))
        }
    }
}

fn ack(acknowledged: bool) -> &'static str {
    if acknowledged { "" } else { "; the client did not answer our close" }
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The request target for logs: tokens in it replaced by their ids ([`token::redact`]).
fn shown_target(request: &Request, config: &Config) -> String {
    let source = match &config.route {
        Route::Token(route) => route.source,
        Route::Fixed(_) => token::TokenSource::default(),
    };
    token::redact(&request.target, source)
}
