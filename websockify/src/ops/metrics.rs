//! Prometheus metrics: process-wide counters bumped where things happen, and the small
//! HTTP/1.1 responder behind `--metrics-listen` that serves them as `GET /metrics` in the
//! text exposition format 0.0.4.
//!
//! The counters live in one `static` ([`METRICS`]), so a hook is one line wherever an
//! event happens, with nothing passed around. Counters and gauges are relaxed atomic adds
//! (the byte counters are bumped on every relay write); the labelled families are looked up
//! only for rare events (a refused handshake, a session's end), and the byte counters'
//! two children are resolved once, up front.
//!
//! The metrics are process-wide: two servers in one process (embedding) add up.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::wire::http::HeadError;

/// Every metric of the process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Time a scraper has to send its request head (they send it with the connection).
const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Time a whole exchange may take, the answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read; a scraper's is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// Connections served at once; more are closed at accept.
const MAX_CONCURRENT: usize = 256;
/// Connections served at once from one client address.
const MAX_PER_IP: usize = 8;
/// Buckets of the token lookup latency, in seconds: a token file answers in microseconds,
/// an HTTP API or Redis in milliseconds, a struggling one up to the 5 s deadline.
const LOOKUP_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The metrics, registered in their own [`Registry`] (not the `prometheus` crate's
/// default one, which a host program may use for its own).
pub struct Metrics {
    registry: Registry,
    /// Connections accepted on the public port (any kind: WebSocket, web, TLS, policy).
    pub connections_accepted: IntCounter,
    /// WebSocket sessions relaying now.
    pub sessions_open: IntGauge,
    /// WebSocket sessions that started relaying.
    pub sessions: IntCounter,
    /// Payload bytes written to targets (after unmasking and base64 decoding).
    pub bytes_to_target: IntCounter,
    /// Payload bytes sent to clients (before framing and base64 encoding).
    pub bytes_to_client: IntCounter,
    /// Sessions whose target could not be reached (the client got 101, then 1011).
    pub target_connect_failures: IntCounter,
    /// Time a token plugin took to answer.
    pub token_lookup_seconds: Histogram,
    handshake_failures: IntCounterVec,
    session_closes: IntCounterVec,
    token_lookups: IntCounterVec,
    tls_handshakes: IntCounterVec,
    limits_hit: IntCounterVec,
    sessions_ended_by: IntCounterVec,
}

/// Why a connection that asked for a WebSocket (or at least sent something) got no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// A plain connection under `--ssl-only` (403).
    TlsRequired,
    /// The request head could not be read: malformed (400), too slow (408), too big (431).
    BadRequest,
    /// The upgrade request was refused (400, 426).
    InvalidUpgrade,
    /// A Hixie-76 request without its 8-byte key in time (no answer).
    HixieKey,
    /// The authenticator refused (401, 403).
    Auth,
    /// No token in the request (400).
    NoToken,
    /// The token was unknown, refused, or its source failed (404, 403, 502, 504).
    Token,
    /// A session cap was reached (503, 429).
    Limit,
    /// The client left while we wrote the 101 (after the target connected).
    ClientGone,
}

impl HandshakeFailure {
    fn label(self) -> &'static str {
        match self {
            Self::TlsRequired => "tls_required",
            Self::BadRequest => "bad_request",
            Self::InvalidUpgrade => "invalid_upgrade",
            Self::HixieKey => "hixie_key",
            Self::Auth => "auth",
            Self::NoToken => "no_token",
            Self::Token => "token",
            Self::Limit => "limit",
            Self::ClientGone => "client_gone",
        }
    }
}

/// A limit that stopped something, named after the option that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `--max-sessions` (503).
    MaxSessions,
    /// `--max-sessions-per-ip` (429).
    MaxSessionsPerIp,
    /// `--max-sessions-per-token` (429).
    MaxSessionsPerToken,
    /// `--max-message-size`: a client message closed with 1009.
    MaxMessageSize,
    /// `--max-control-rate`: a client closed with 1008 for too many pings and pongs.
    MaxControlRate,
    /// `--first-byte-timeout`: a connection that sent nothing in time.
    FirstByteTimeout,
    /// `--handshake-timeout`: no complete request head in time (408).
    HandshakeTimeout,
    /// `--max-request-head` (431).
    MaxRequestHead,
    /// `--max-headers` (431).
    MaxHeaders,
    /// `--tls-handshake-timeout`.
    TlsHandshakeTimeout,
    /// `--session-idle-timeout`: a session closed with 1001 for want of data.
    SessionIdleTimeout,
    /// `--max-pending-handshakes`: a connection closed at accept, too many not yet sessions.
    MaxPendingHandshakes,
    /// `--max-held-text-total`: a session closed with 1009, the process-wide budget for
    /// unfinished text messages spent.
    MaxHeldTextTotal,
    /// `--drain-timeout`: a session ended with one side closed and the other not draining.
    DrainTimeout,
}

impl Limit {
    const ALL: [Self; 14] = [
        Self::MaxSessions,
        Self::MaxSessionsPerIp,
        Self::MaxSessionsPerToken,
        Self::MaxMessageSize,
        Self::MaxControlRate,
        Self::FirstByteTimeout,
        Self::HandshakeTimeout,
        Self::MaxRequestHead,
        Self::MaxHeaders,
        Self::TlsHandshakeTimeout,
        Self::SessionIdleTimeout,
        Self::MaxPendingHandshakes,
        Self::MaxHeldTextTotal,
        Self::DrainTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::MaxSessions => "max-sessions",
            Self::MaxSessionsPerIp => "max-sessions-per-ip",
            Self::MaxSessionsPerToken => "max-sessions-per-token",
            Self::MaxMessageSize => "max-message-size",
            Self::MaxControlRate => "max-control-rate",
            Self::FirstByteTimeout => "first-byte-timeout",
            Self::HandshakeTimeout => "handshake-timeout",
            Self::MaxRequestHead => "max-request-head",
            Self::MaxHeaders => "max-headers",
            Self::TlsHandshakeTimeout => "tls-handshake-timeout",
            Self::SessionIdleTimeout => "session-idle-timeout",
            Self::MaxPendingHandshakes => "max-pending-handshakes",
            Self::MaxHeldTextTotal => "max-held-text-total",
            Self::DrainTimeout => "drain-timeout",
        }
    }
}

/// What a token lookup answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found,
    NotFound,
    /// The plugin refused the token (a JWT's signature or dates): 403.
    Refused,
    /// The token source did not answer in time: 504.
    Timeout,
    /// The token source failed: 502.
    Error,
}

impl Lookup {
    const ALL: [Self; 5] = [Self::Found, Self::NotFound, Self::Refused, Self::Timeout, Self::Error];

    fn label(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let family = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let build_info = IntGaugeVec::new(
            Opts::new("websockify_build_info", "The running websockify: always 1, its version as a label"),
            &["version"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build_info)).expect("registered once");
        let sessions_open =
            IntGauge::new("websockify_sessions_open", "WebSocket sessions relaying now").expect("valid metric");
        registry.register(Box::new(sessions_open.clone())).expect("registered once");
        let bytes = family(
            "websockify_bytes_total",
            "Payload bytes relayed, counted as they move: to_target (client to target) and to_client",
            &["direction"],
        );
        let token_lookup_seconds = Histogram::with_opts(
            HistogramOpts::new("websockify_token_lookup_duration_seconds", "Time token plugins took to answer")
                .buckets(LOOKUP_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry.register(Box::new(token_lookup_seconds.clone())).expect("registered once");
        let metrics = Self {
            connections_accepted: counter(
                "websockify_connections_accepted_total",
                "Connections accepted on the public port (WebSocket, web, TLS or Flash policy)",
            ),
            sessions_open,
            sessions: counter("websockify_sessions_total", "WebSocket sessions that started relaying"),
            bytes_to_target: bytes.with_label_values(&["to_target"]),
            bytes_to_client: bytes.with_label_values(&["to_client"]),
            target_connect_failures: counter(
                "websockify_target_connect_failures_total",
                "Sessions whose target could not be reached (101, then close 1011)",
            ),
            token_lookup_seconds,
            handshake_failures: family(
                "websockify_handshake_failures_total",
                "Connections refused before a session: by reason, and the HTTP status answered (none: no answer)",
                &["reason", "status"],
            ),
            session_closes: family(
                "websockify_session_closes_total",
                "Sessions ended, by the close code sent or received (none: the connection dropped)",
                &["code"],
            ),
            token_lookups: family("websockify_token_lookups_total", "Token lookups, by result", &["result"]),
            tls_handshakes: family("websockify_tls_handshakes_total", "Client TLS handshakes, by result", &["result"]),
            limits_hit: family(
                "websockify_limits_hit_total",
                "Times a limit stopped a connection, session or message, by the option that sets it",
                &["limit"],
            ),
            sessions_ended_by: family(
                "websockify_sessions_ended_total",
                "Sessions ended from the operator side: by the admin API, token revocation or expiry, a time limit",
                &["by"],
            ),
            registry,
        };
        // Series that exist from the start, at 0, so that rates over them work at once.
        for limit in Limit::ALL {
            metrics.limits_hit.with_label_values(&[limit.label()]);
        }
        for result in Lookup::ALL {
            metrics.token_lookups.with_label_values(&[result.label()]);
        }
        for result in ["ok", "failed"] {
            metrics.tls_handshakes.with_label_values(&[result]);
        }
        for by in ["admin", "revoked", "expired", "time-limit"] {
            metrics.sessions_ended_by.with_label_values(&[by]);
        }
        metrics
    }

    /// The registry holding every metric, for a host program that serves them itself.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A connection got no session; `status` is the HTTP status it was answered with.
    pub fn handshake_failed(&self, reason: HandshakeFailure, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.handshake_failures.with_label_values(&[reason.label(), &status]).inc();
    }

    /// A session ended from the operator side: `by` is one of admin, revoked, expired,
    /// time-limit (the labels of `ops::sessions::EndedBy`).
    pub fn session_ended_by(&self, by: &str) {
        self.sessions_ended_by.with_label_values(&[by]).inc();
    }

    pub fn limit_hit(&self, limit: Limit) {
        self.limits_hit.with_label_values(&[limit.label()]).inc();
    }

    /// A request head that could not be read and was answered with an error status.
    pub fn bad_request(&self, e: &HeadError) {
        self.handshake_failed(HandshakeFailure::BadRequest, e.status());
        match e {
            HeadError::Timeout(_) => self.limit_hit(Limit::HandshakeTimeout),
            HeadError::TooLarge(_) => self.limit_hit(Limit::MaxRequestHead),
            HeadError::TooManyHeaders(_) => self.limit_hit(Limit::MaxHeaders),
            _ => {}
        }
    }

    /// A session refused by a cap (`limit`), answered with `status`.
    pub fn session_refused(&self, status: u16, limit: Limit) {
        self.handshake_failed(HandshakeFailure::Limit, Some(status));
        self.limit_hit(limit);
    }

    pub fn token_lookup(&self, result: Lookup, took: Duration) {
        self.token_lookups.with_label_values(&[result.label()]).inc();
        self.token_lookup_seconds.observe(took.as_secs_f64());
    }

    pub fn tls_handshake(&self, ok: bool) {
        self.tls_handshakes.with_label_values(&[if ok { "ok" } else { "failed" }]).inc();
    }

    /// A relayed session ended: its close code, and the limit that ended it, if one did.
    pub fn session_ended(&self, close_code: Option<u16>, limit: Option<Limit>) {
        self.session_closes.with_label_values(&[&close_code_label(close_code)]).inc();
        if let Some(limit) = limit {
            self.limit_hit(limit);
        }
    }

    /// Counts a session as open until the returned guard is dropped.
    pub fn session_started(&self) -> OpenSession {
        self.sessions.inc();
        self.sessions_open.inc();
        OpenSession(())
    }

    /// The text exposition format 0.0.4 of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Encoding into a String fails only on invalid UTF-8, which the names cannot hold.
        let _ = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text);
        text
    }
}

/// A session counted in `websockify_sessions_open` while this lives.
#[derive(Debug)]
pub struct OpenSession(());

impl Drop for OpenSession {
    fn drop(&mut self) {
        METRICS.sessions_open.dec();
    }
}

/// A close code as a label value. Codes come from clients: ranges that any client may use
/// share one value each, so that a client cannot make the label set grow without bound.
fn close_code_label(code: Option<u16>) -> String {
    match code {
        None => "none".to_owned(),
        Some(c @ 1000..=1015) => c.to_string(),
        Some(3000..=3999) => "3xxx".to_owned(),
        Some(4000..=4999) => "4xxx".to_owned(),
        Some(_) => "other".to_owned(),
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`; anything else gets 404. One
/// request per connection (`Connection: close`).
///
/// Scrapers send their request at once and leave: a connection has `HEAD_TIMEOUT` (1 s) for
/// its request head, `MAX_CONCURRENT` (256) are served at once and at most `MAX_PER_IP` (8) of
/// them per client address, so that idle connections (16 of them starved every scrape
/// for 5 s before) cannot keep a scraper out. Connections past the caps are closed at
/// accept.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let per_ip = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<std::net::IpAddr, usize>::new()));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics endpoint: {MAX_CONCURRENT} connections open, closing one from {peer}");
            continue;
        };
        let ip = peer.ip().to_canonical();
        {
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(ip).or_default();
            if *n >= MAX_PER_IP {
                tracing::debug!("metrics endpoint: {MAX_PER_IP} connections open from {ip}, closing another");
                continue;
            }
            *n += 1;
        }
        let (shutdown, per_ip) = (shutdown.clone(), per_ip.clone());
        tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream)) => {}
            }
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
            drop(slot);
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_due = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let (method, path) = loop {
        let Ok(read) = tokio::time::timeout_at(head_due, stream.read(&mut chunk)).await else {
            return Ok(());
        };
        let n = read?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default().to_owned();
                let path = request.path.unwrap_or_default();
                break (method, path.split('?').next().unwrap_or_default().to_owned());
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => {}
            _ => return respond(&mut stream, "400 Bad Request", "text/plain", "Bad request\n", true).await,
        }
    };
    let with_body = method != "HEAD";
    if (method == "GET" || method == "HEAD") && path == "/metrics" {
        let text = METRICS.render();
        return respond(&mut stream, "200 OK", prometheus::TEXT_FORMAT, &text, with_body).await;
    }
    respond(&mut stream, "404 Not Found", "text/plain", "Not found: metrics are at GET /metrics\n", with_body).await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

impl Metrics {
    /// The counter of `websockify_log_lines_dropped_total{sink}` for `sink` (`stderr`,
    /// `file`, `syslog`): log lines lost because the sink was not keeping up (or failed to
    /// write), so that logging never stopped the proxy. The family is registered on first
    /// use: the binary asks for its sinks' counters at start, so they exist from 0.
    pub fn log_lines_dropped(&self, sink: &str) -> IntCounter {
        static FAMILY: std::sync::OnceLock<IntCounterVec> = std::sync::OnceLock::new();
        let family = FAMILY.get_or_init(|| {
            let c = IntCounterVec::new(
                Opts::new(
                    "websockify_log_lines_dropped_total",
                    "Log lines dropped because their sink (stderr, file, syslog) was not keeping up or failed",
                ),
                &["sink"],
            )
            .expect("valid metric");
            // METRICS is the only `Metrics`, so this registers once.
            let _ = self.registry.register(Box::new(c.clone()));
            c
        });
        family.with_label_values(&[sink])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_labels_are_bounded() {
        assert_eq!(close_code_label(None), "none");
        assert_eq!(close_code_label(Some(1000)), "1000");
        assert_eq!(close_code_label(Some(1009)), "1009");
        assert_eq!(close_code_label(Some(3007)), "3xxx");
        assert_eq!(close_code_label(Some(4999)), "4xxx");
        assert_eq!(close_code_label(Some(2000)), "other");
    }

    #[test]
    fn text_format_names_every_family() {
        METRICS.bytes_to_client.inc_by(0);
        let text = METRICS.render();
        for name in [
            "websockify_build_info",
            "websockify_connections_accepted_total",
            "websockify_sessions_open",
            "websockify_sessions_total",
            "websockify_bytes_total",
            "websockify_target_connect_failures_total",
            "websockify_token_lookup_duration_seconds",
            "websockify_token_lookups_total",
            "websockify_tls_handshakes_total",
            "websockify_limits_hit_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
        }
        assert!(text.contains(&format!("websockify_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
        assert!(text.contains("websockify_limits_hit_total{limit=\"max-sessions-per-ip\"} 0"), "{text}");
    }
}
