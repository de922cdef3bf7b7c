//! One accepted connection up to its first HTTP byte: the PROXY header a trusted balancer
//! puts first, sniffing (Flash policy, TLS or HTTP), the TLS handshake; then
//! [`crate::session::connection`] reads its requests.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::admission::auth;
use crate::front::sniff::{self, Kind};
use crate::ops::metrics::{HandshakeFailure, Limit, METRICS};
use crate::session::connection::{Addrs, Context, Established, Outcome, Peer, Served, serve_http};
use crate::session::stream::{Rewind, Split};
use crate::wire::http::Response;
use crate::wire::proxy_protocol::{self, Header};

/// Serves one accepted connection. Logs its own events; never fails the caller.
///
/// `pending` is the connection's place among those that are not yet sessions; it is given
/// back when a WebSocket session starts, or when the connection ends.
///
/// Two stages: everything up to the session's start runs on the heap (`start`, boxed)
/// and is gone once the session runs; the task then holds only the session and its relay.
/// (An async fn's state is as big as its biggest step, and rustc lays out the locals of
/// the steps side by side rather than over each other: with the handshake's steps and the
/// relay in one state, an idle session's task was 4 KB, of which the handshake's part was
/// dead weight for the session's whole life.)
pub async fn serve<S: Split + 'static>(
    client: S,
    id: u64,
    addrs: Addrs,
    ctx: Arc<Context>,
    pending: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Outcome {
    let mut started = Box::pin(start(client, id, addrs, &ctx, pending)).await;
    // By reference: moved out, the session would be stored twice in this task's state.
    match &mut started {
        Started::Done(outcome) => *outcome,
        Started::Plain(session) => session.run(&ctx).await,
        Started::Tls(session) => Box::pin(session.run(&ctx)).await,
    }
}

/// What [`start`] gave: a session to run, over plain TCP or TLS, or nothing more to do.
// The plain session is meant to be inline: it lives in the task's state (one allocation per
// connection), not in a box of its own.
#[allow(clippy::large_enum_variant)]
enum Started<S> {
    Done(Outcome),
    Plain(Established<S>),
    /// Boxed: a TLS stream is 1.2 KB, which plain sessions need not make room for.
    Tls(Box<Established<tokio_rustls::server::TlsStream<Rewind<S>>>>),
}

impl<S> From<Served<S>> for Started<S> {
    fn from(served: Served<S>) -> Self {
        match served {
            Served::Done(outcome) => Self::Done(outcome),
            Served::Session(session) => Self::Plain(session),
        }
    }
}

/// The connection up to its session: the PROXY header, sniffing, TLS, the request heads.
async fn start<S: Split + 'static>(
    mut client: S,
    id: u64,
    mut addrs: Addrs,
    ctx: &Context,
    pending: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Started<S> {
    let limits = &ctx.config.limits;
    let accepted = Instant::now();
    let Some(first) = proxy_header(&mut client, &mut addrs, ctx).await else {
        return Started::Done(Outcome::NotSession);
    };
    let kind = match sniff::sniff_after(&mut client, first, limits.first_byte_timeout.min(limits.head.timeout)).await {
        Ok(kind) => kind,
        Err(e) => {
            tracing::debug!("dropped: {e}");
            if matches!(e, sniff::SniffError::Timeout(_)) {
                METRICS.limit_hit(Limit::FirstByteTimeout);
            }
            return Started::Done(Outcome::NotSession);
        }
    };
    if let (Some(from), Kind::Http(first)) = (&ctx.config.accept_proxy, &kind)
        && proxy_protocol::starts_with_header(first)
    {
        let who = addrs.peer.map_or_else(|| "a UNIX socket peer".to_owned(), |p| p.ip().to_string());
        tracing::warn!("connection refused: PROXY protocol header from {who}, not in --proxy-protocol-from ({from})");
        return Started::Done(Outcome::NotSession);
    }
    match kind {
        Kind::FlashPolicy => {
            tracing::info!("Flash policy request answered");
            let _ = client.write_all(sniff::POLICY_RESPONSE).await;
            let _ = client.shutdown().await;
            Started::Done(Outcome::NotSession)
        }
        Kind::Tls(prefix) => {
            let Some(tls) = &ctx.tls else {
                tracing::info!("TLS connection refused: no certificate loaded (see --cert)");
                METRICS.tls_handshake(false);
                return Started::Done(Outcome::NotSession);
            };
            let io = Rewind::new(prefix.freeze(), client);
            let stream = match tokio::time::timeout(limits.tls_handshake_timeout, tls.acceptor().accept(io)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!("TLS handshake failed: {e}");
                    METRICS.tls_handshake(false);
                    return Started::Done(Outcome::NotSession);
                }
                Err(_) => {
                    tracing::info!("TLS handshake not complete within {:?}", limits.tls_handshake_timeout);
                    METRICS.tls_handshake(false);
                    METRICS.limit_hit(Limit::TlsHandshakeTimeout);
                    return Started::Done(Outcome::NotSession);
                }
            };
            METRICS.tls_handshake(true);
            // The verified client certificate's CN, for ClientCertCNAuth.
            let client_cn =
                stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| auth::common_name(c));
            tracing::debug!(client_cn = client_cn.as_deref(), "TLS established");
            // Boxed: a TLS session's handshake state is its own, plain ones carry none of it.
            let served = Box::pin(serve_http(
                stream,
                BytesMut::new(),
                Peer { id, addrs, secure: true, client_cn, accepted: Instant::now(), pending },
                ctx,
            ))
            .await;
            match served {
                Served::Done(outcome) => Started::Done(outcome),
                Served::Session(session) => Started::Tls(Box::new(session)),
            }
        }
        Kind::Http(buf) => {
            if ctx.config.ssl_only {
                tracing::info!("plain connection refused: --ssl-only");
                METRICS.handshake_failed(HandshakeFailure::TlsRequired, Some(403));
                let _ = Response::error(403, "This server accepts only TLS connections (https://, wss://)")
                    .write_to(&mut client)
                    .await;
                return Started::Done(Outcome::NotSession);
            }
            let peer = Peer { id, addrs, secure: false, client_cn: None, accepted, pending };
            serve_http(client, buf, peer, ctx).await.into()
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
