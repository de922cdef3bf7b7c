//! One client connection, from accept to close: read the request head, answer plain HTTP
//! or validate the WebSocket handshake, connect to the target, then relay.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::handshake::{self, RequestKind};
use crate::http::{self, Response};
use crate::relay::{self, End, RelayConfig};
use crate::target::{self, TargetStream};
use crate::ws::{ControlFrame, close_code};

/// What a connection turned out to be, for the accept loop (`--run-once` counts sessions).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A WebSocket handshake was accepted (whether or not the target could be reached).
    Session,
    /// Anything else: a refused or non-WebSocket request, or a client that went away.
    NotSession,
}

/// Serves one accepted connection. Logs its own events; never fails the caller.
pub async fn serve(mut client: TcpStream, config: Arc<Config>, shutdown: CancellationToken) -> Outcome {
    target::tune_tcp(&client);
    let mut buf = BytesMut::new();
    let request = match http::read_head(&mut client, &mut buf, config.limits.head).await {
        Ok(request) => request,
        Err(e) => {
            match e.status() {
                Some(status) => {
                    tracing::info!("bad request: {e}");
                    let _ = Response::error(status, capitalise(&e.to_string())).write_to(&mut client).await;
                }
                None => tracing::debug!("no request: {e}"),
            }
            return Outcome::NotSession;
        }
    };
    tracing::debug!(method = %request.method, path = %request.target, "request");
    if handshake::classify(&request) == RequestKind::Http {
        tracing::info!("{} {}: 405, plain HTTP is not served", request.method, request.target);
        let response = Response::error(405, "Method Not Allowed: this is a WebSocket proxy; it serves no plain HTTP")
            .with_header("Allow", "GET (WebSocket upgrade)");
        let _ = response.write_to(&mut client).await;
        return Outcome::NotSession;
    }
    let accepted = match handshake::accept(&request) {
        Ok(accepted) => accepted,
        Err(response) => {
            tracing::info!("handshake refused: {} {}", response.status, response.body.trim_end());
            let _ = response.write_to(&mut client).await;
            return Outcome::NotSession;
        }
    };

    let started = Instant::now();
    let target = match target::connect(&config.target, config.prefer_ipv6, config.limits.connect_timeout).await {
        Ok(target) => target,
        Err(e) => {
            // The client gets a WebSocket close with a reason it can show, not an HTTP error
            // a browser would hide from the page.
            tracing::error!("failed to connect to {}: {e}", config.target);
            let _ = accepted.response.write_to(&mut client).await;
            let close = ControlFrame::close(Some(close_code::INTERNAL_ERROR), "Failed to connect to downstream server");
            let _ = client.write_all(close.as_bytes()).await;
            let _ = client.shutdown().await;
            return Outcome::Session;
        }
    };
    if let Err(e) = accepted.response.write_to(&mut client).await {
        tracing::info!("client left during the handshake: {e}");
        return Outcome::Session;
    }
    tracing::info!("{} WebSocket session to {} ({})", accepted.encoding.name(), config.target, request.target);

    let relay_config = RelayConfig {
        encoding: accepted.encoding,
        decoder: config.limits.decoder,
        heartbeat: config.heartbeat,
        close_timeout: config.limits.close_timeout,
        traffic: config.traffic,
    };
    let pending = buf.to_vec();
    let (cr, cw) = client.split();
    let (end, counts) = match target {
        TargetStream::Tcp(mut t) => {
            let (tr, tw) = t.split();
            relay::run(cr, cw, pending, tr, tw, &relay_config, &shutdown).await
        }
        TargetStream::Unix(mut t) => {
            let (tr, tw) = t.split();
            relay::run(cr, cw, pending, tr, tw, &relay_config, &shutdown).await
        }
    };
    let how = describe(&end);
    tracing::info!(
        to_target = counts.to_target,
        to_client = counts.to_client,
        secs = format_args!("{:.3}", started.elapsed().as_secs_f64()),
        close_code = end.close_code(),
        "session closed: {how}"
    );
    Outcome::Session
}

fn describe(end: &End) -> String {
    match end {
        End::ClientClosed(code) => format!("client closed ({})", code.map_or("no code".into(), |c| c.to_string())),
        End::TargetClosed { acknowledged } => format!("target closed{}", ack(*acknowledged)),
        End::TargetError(e) => format!("target connection failed: {e}"),
        End::Shutdown { acknowledged } => format!("server shutting down{}", ack(*acknowledged)),
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
