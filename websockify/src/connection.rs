//! One client connection, from accept to close: sniff what it is (TLS, Flash policy or
//! HTTP), unwrap TLS, read request heads, serve static files or validate the WebSocket
//! handshake, connect to the target, then relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::config::{Config, Route, Target};
use crate::forwarded;
use crate::handshake::{self, RequestKind};
use crate::http::{self, Request, Response};
use crate::limit::SessionLimits;
use crate::metrics::{HandshakeFailure, Limit, Lookup, METRICS};
use crate::proxy_protocol::{self, Header};
use crate::record::Recorder;
use crate::relay::{self, End, RelayConfig};
use crate::sniff::{self, Kind};
use crate::stream::{Rewind, Split};
use crate::target::{self, TargetStream};
use crate::tls::TlsServer;
use crate::token;
use crate::web;
use crate::ws::{ControlFrame, close_code};

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
}

/// What a connection turned out to be, for the accept loop (`--run-once` counts sessions).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A WebSocket handshake was accepted (whether or not the target could be reached).
    Session,
    /// Anything else: static files, refused or malformed requests, clients that left.
    NotSession,
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

/// Serves one accepted connection. Logs its own events; never fails the caller.
pub async fn serve<S: Split + 'static>(mut client: S, id: u64, mut addrs: Addrs, ctx: Arc<Context>) -> Outcome {
    let limits = ctx.config.limits;
    let accepted = Instant::now();
    let Some(first) = Box::pin(proxy_header(&mut client, &mut addrs, &ctx)).await else {
        return Outcome::NotSession;
    };
    let kind = match sniff::sniff_after(&mut client, first, limits.first_byte_timeout.min(limits.head.timeout)).await {
        Ok(kind) => kind,
        Err(e) => {
            tracing::debug!("dropped: {e}");
            METRICS.sniff_failed(&e);
            return Outcome::NotSession;
        }
    };
    if let (Some(from), Kind::Http(first)) = (&ctx.config.accept_proxy, &kind)
        && proxy_protocol::starts_with_header(first)
    {
        let who = addrs.peer.map_or_else(|| "a UNIX socket peer".to_owned(), |p| p.ip().to_string());
        tracing::warn!("connection refused: PROXY protocol header from {who}, not in --proxy-protocol-from ({from})");
        return Outcome::NotSession;
    }
    match kind {
        Kind::FlashPolicy => {
            tracing::info!("Flash policy request answered");
            let _ = client.write_all(sniff::POLICY_RESPONSE).await;
            let _ = client.shutdown().await;
            Outcome::NotSession
        }
        Kind::Tls(prefix) => {
            let Some(tls) = &ctx.tls else {
                tracing::info!("TLS connection refused: no certificate loaded (see --cert)");
                METRICS.tls_handshake(false);
                return Outcome::NotSession;
            };
            let io = Rewind::new(prefix.freeze(), client);
            let stream = match tokio::time::timeout(limits.tls_handshake_timeout, tls.acceptor().accept(io)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!("TLS handshake failed: {e}");
                    METRICS.tls_handshake(false);
                    return Outcome::NotSession;
                }
                Err(_) => {
                    tracing::info!("TLS handshake not complete within {:?}", limits.tls_handshake_timeout);
                    METRICS.tls_handshake(false);
                    METRICS.limit_hit(Limit::TlsHandshakeTimeout);
                    return Outcome::NotSession;
                }
            };
            METRICS.tls_handshake(true);
            // The verified client certificate's CN, for ClientCertCNAuth.
            let client_cn =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| auth::common_name(c));
            tracing::debug!(client_cn = client_cn.as_deref(), "TLS established");
            // Boxed, as the other large steps below: an async fn's state is as big as its
            // biggest step, and a session would carry that for its whole life. With the
            // steps inline, a connection's task was 14.6 KB; boxed, 3.2 KB (and the heap of an
            // idle session, buffers included, went from 38 KB to 8.7 KB).
            Box::pin(serve_http(
                stream,
                BytesMut::new(),
                Peer { id, addrs, secure: true, client_cn, accepted: Instant::now() },
                &ctx,
            ))
            .await
        }
        Kind::Http(buf) => {
            if ctx.config.ssl_only {
                tracing::info!("plain connection refused: --ssl-only");
                METRICS.handshake_failed(HandshakeFailure::TlsRequired, Some(403));
                let _ = Response::error(403, "This server accepts only TLS connections (https://, wss://)")
                    .write_to(&mut client)
                    .await;
                return Outcome::NotSession;
            }
            serve_http(client, buf, Peer { id, addrs, secure: false, client_cn: None, accepted }, &ctx).await
        }
    }
}

/// `--accept-proxy-protocol`: reads the PROXY header that a connection from a trusted
/// balancer must start with, and puts the client's address in `addrs`. Returns the bytes
/// read past the header (none if there was no header to read), or `None` when the
/// connection is refused (logged here). UNIX socket peers are trusted: the socket's
/// permissions decide who connects.
async fn proxy_header<S: Split>(client: &mut S, addrs: &mut Addrs, ctx: &Context) -> Option<BytesMut> {
    let Some(from) = &ctx.config.accept_proxy else { return Some(BytesMut::new()) };
    if let Some(peer) = addrs.peer
        && !from.contains(peer.ip())
    {
        return Some(BytesMut::new());
    }
    match proxy_protocol::read_header(client, ctx.config.limits.head.timeout).await {
        Ok((Header::Proxied { version, source, destination }, rest)) => {
            tracing::Span::current().record("client", tracing::field::display(source));
            tracing::debug!("PROXY {version} header: client {source}, which connected to {destination}");
            *addrs = Addrs { peer: Some(source), local: Some(destination) };
            Some(rest)
        }
        Ok((Header::Local { version }, rest)) => {
            tracing::debug!("PROXY {version} header without a client address (LOCAL or UNKNOWN): the balancer's own");
            Some(rest)
        }
        // A port probe (a balancer's plain TCP health check): nothing to report.
        Err(e @ proxy_protocol::ProxyError::Closed(0)) => {
            tracing::debug!("dropped: {e}");
            None
        }
        Err(e) => {
            tracing::warn!("connection refused: {e} (PROXY protocol required from {from})");
            None
        }
    }
}

/// What the connection itself says about the client.
struct Peer {
    /// The connection id (log lines, recording file names).
    id: u64,
    /// The client's address (TCP clients; after any PROXY header) and the one it connected
    /// to: for per-IP session caps and the target's PROXY header.
    addrs: Addrs,
    /// Over TLS.
    secure: bool,
    /// Subject CN of the verified client certificate.
    client_cn: Option<String>,
    /// When the connection was accepted (TLS: established): the first request head is due
    /// within the handshake timeout of this.
    accepted: Instant,
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
    fn authenticate(
        &self,
        request: &Request,
        client: Option<SocketAddr>,
        ctx: &Context,
    ) -> Result<(), auth::AuthError> {
        match &ctx.config.auth {
            Some(a) => a.authenticate(&auth::AuthRequest { request, client_cn: self.client_cn.as_deref(), client }),
            None => Ok(()),
        }
    }
}

/// Reads request heads on a (possibly TLS) connection: serves files while the client keeps
/// the connection alive, until a WebSocket upgrade takes it over.
async fn serve_http<S: Split>(mut io: S, mut buf: BytesMut, peer: Peer, ctx: &Context) -> Outcome {
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
                return Outcome::NotSession;
            }
        };
        // Evaluated only when debug logging is on.
        tracing::debug!(method = %request.method, path = %shown_target(&request, config), "request");
        if handshake::classify(&request) == RequestKind::WebSocket {
            return websocket(io, request, buf, &peer, ctx).await;
        }
        let shown = shown_target(&request, config);
        let Some(web) = &config.web else {
            tracing::info!("{} {shown}: 405, plain HTTP is not served (no --web)", request.method);
            let response =
                Response::error(405, "Method Not Allowed: this is a WebSocket proxy; it serves no plain HTTP")
                    .with_header("Allow", "GET (WebSocket upgrade)");
            let _ = response.write_to(&mut io).await;
            return Outcome::NotSession;
        };
        if config.web_auth
            && let Err(e) = peer.authenticate(&request, peer.client(&request, ctx), ctx)
        {
            tracing::info!("{} {shown}: {} ({})", request.method, e.status, e.log);
            let _ = e.response().write_to(&mut io).await;
            return Outcome::NotSession;
        }
        match Box::pin(web::serve(&mut io, &request, web)).await {
            Ok(true) => tracing::debug!("{} {shown} served", request.method),
            Ok(false) => {
                let _ = io.shutdown().await;
                return Outcome::NotSession;
            }
            Err(e) => {
                tracing::debug!("{} {shown}: {e}", request.method);
                return Outcome::NotSession;
            }
        }
    }
}

/// The WebSocket part: handshake, target, relay.
async fn websocket<S: Split>(mut io: S, request: Request, mut buf: BytesMut, peer: &Peer, ctx: &Context) -> Outcome {
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
            return Outcome::NotSession;
        }
    }
    let accepted = match handshake::accept(&request, &buf, secure) {
        Ok(accepted) => accepted,
        Err(response) => {
            tracing::info!("handshake refused: {} {}", response.status, response.body.trim_end());
            METRICS.handshake_failed(HandshakeFailure::InvalidUpgrade, Some(response.status));
            let _ = response.write_to(&mut io).await;
            return Outcome::NotSession;
        }
    };
    let _ = buf.split_to(accepted.consumed);
    let client = peer.client(&request, ctx);
    if let Err(e) = peer.authenticate(&request, client, ctx) {
        tracing::info!("authentication failed: {} ({})", e.status, e.log);
        METRICS.handshake_failed(HandshakeFailure::Auth, Some(e.status));
        let _ = e.response().write_to(&mut io).await;
        return Outcome::NotSession;
    }
    let (destination, token) = match Box::pin(choose_target(&request, ctx)).await {
        Ok(found) => found,
        Err(response) => {
            let _ = response.write_to(&mut io).await;
            return Outcome::NotSession;
        }
    };
    // Held until the session ends.
    let _permit = match ctx.sessions.acquire(client.map(|c| c.ip()), token.as_deref()) {
        Ok(permit) => permit,
        Err(refusal) => {
            tracing::warn!("session refused: {refusal}");
            METRICS.session_refused(&refusal);
            let body = if refusal.status() == 503 { "Server full, try again later" } else { "Too many sessions" };
            let _ = Response::error(refusal.status(), body).with_header("Retry-After", "5").write_to(&mut io).await;
            return Outcome::NotSession;
        }
    };

    // What logs show of the target: without a token in it.
    let shown_destination = token::redact_target(&destination, token.as_deref());
    let started = Instant::now();
    let target = match Box::pin(target::connect(
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
                let _ = io.write_all(&crate::hixie::CLOSE).await;
            }
            let _ = io.shutdown().await;
            return Outcome::Session;
        }
    };
    if let Err(e) = async {
        io.write_all(&accepted.response).await?;
        io.flush().await
    }
    .await
    {
        tracing::info!("client left during the handshake: {e}");
        METRICS.handshake_failed(HandshakeFailure::ClientGone, None);
        return Outcome::Session;
    }
    let scheme = if secure { "wss" } else { "ws" };
    let draft = if accepted.framing == handshake::Framing::Hixie { " Hixie" } else { "" };
    tracing::info!(
        "{}{draft} WebSocket session over {scheme}:// to {} ({})",
        accepted.encoding.name(),
        shown_destination,
        shown_target(&request, config)
    );

    let record = match &config.record {
        Some(base) => match Recorder::start(base, peer.id, accepted.encoding).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!("cannot record to {}.{}: {e}; the session goes on unrecorded", base.display(), peer.id);
                None
            }
        },
        None => None,
    };
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
    };
    let _open = METRICS.session_started();
    let pending = buf.to_vec();
    // Not needed while the session lasts, which may be days.
    drop((buf, request, accepted));
    let (end, counts) = match target {
        TargetStream::Tcp(t) => Box::pin(relay_with(io, pending, t, &relay_config, &ctx.shutdown)).await,
        TargetStream::Unix(t) => Box::pin(relay_with(io, pending, t, &relay_config, &ctx.shutdown)).await,
        TargetStream::Tls(t) => Box::pin(relay_with(io, pending, *t, &relay_config, &ctx.shutdown)).await,
    };
    METRICS.session_ended(&end);
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

/// The session's target: the fixed one, or the one its token maps to. Token problems end
/// here with an HTTP status and a short reason; the log line says exactly why.
async fn choose_target(request: &Request, ctx: &Context) -> Result<(Target, Option<String>), Response> {
    let route = match &ctx.config.route {
        Route::Fixed(target) => return Ok((target.clone(), None)),
        Route::Token(route) => route,
    };
    let Some(token) = token::extract(request, route.source) else {
        tracing::info!("no token in the request ({})", shown_target(request, &ctx.config));
        METRICS.handshake_failed(HandshakeFailure::NoToken, Some(400));
        let place = if route.source.host { "the Host header" } else { "the request (?token=...)" };
        return Err(Response::error(400, format!("Missing token: expected one in {place}")));
    };
    let started = Instant::now();
    let found = route.resolver.lookup(&token).await;
    let took = started.elapsed();
    let ms = took.as_secs_f64() * 1000.0;
    match found {
        Ok(Some(target)) => {
            tracing::info!(
                "token [{}] -> {} ({ms:.1} ms)",
                token::id(&token),
                token::redact_target(&target, Some(&token))
            );
            METRICS.token_lookup(Lookup::Found, took);
            Ok((target, Some(token)))
        }
        Ok(None) => {
            tracing::info!("token [{}] not found ({ms:.1} ms)", token::id(&token));
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
    mut client: C,
    pending: Vec<u8>,
    mut target: T,
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
    }
}

fn ack(acknowledged: bool) -> &'static str {
    if acknowledged { "" } else { "; the client did not answer our close" }
}

fn capitalise(s: &str) -> String {
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
