//! The admin API (`--admin-listen`): list the live sessions and end them.
//!
//! ```text
//! GET    /sessions                      the live sessions, as JSON
//! DELETE /sessions/ID                   end one session
//! DELETE /sessions?token=TOKEN_ID       end every session of one token (its id, as logs show it)
//! DELETE /sessions?target=HOST:PORT     end every session to one target
//! ```
//!
//! Every request carries `Authorization: Bearer TOKEN` with the token of
//! `--admin-token-file` (compared in constant time); anything else is 401. The listener
//! is a loopback TCP address or a UNIX socket: it is plain HTTP, so a non-loopback
//! address is refused at start (put a TLS-terminating proxy in front to reach it from
//! elsewhere). Who can reach it can end every session, and learns client addresses and
//! targets, never tokens (only their ids).
//!
//! An ended session's client gets a close frame with code 1000 and the reason given
//! (`?reason=` or "Ended by the administrator"); its target gets a FIN. Stock noVNC shows
//! only "Disconnected" (docs/session-control.md).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ops::sessions::{EndedBy, Registry};
use crate::wire::http::{printable, reason_phrase};

/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// Requests served at once; more are closed at accept.
const MAX_CONCURRENT: usize = 64;
/// The close code an ended session's client gets: a normal closure, with a reason.
const ENDED_CODE: u16 = 1000;
/// The longest close reason a client can get (a close frame's payload is 125 bytes).
const MAX_REASON: usize = 120;

/// Where the admin API listens.
pub enum AdminListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl AdminListener {
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l.local_addr().map_or_else(|_| "?".into(), |a| format!("http://{a}/sessions")),
            Self::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix socket {}", p.display())))
                .unwrap_or_else(|| "unix socket".into()),
        }
    }
}

/// Serves the admin API until `shutdown`.
pub async fn serve(listener: AdminListener, registry: Arc<Registry>, token: Arc<str>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = accept(&listener) => a,
        };
        let Some(stream) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let (registry, token, shutdown) = (registry.clone(), token.clone(), shutdown.clone());
        tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = answer(stream, &registry, &token) => {}
            }
            drop(slot);
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// A stream of either kind of listener.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn accept(listener: &AdminListener) -> Option<Box<dyn Stream>> {
    let accepted: std::io::Result<Box<dyn Stream>> = match listener {
        AdminListener::Tcp(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Stream>),
        AdminListener::Unix(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Stream>),
    };
    match accepted {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("admin API: accept failed: {e}");
            None
        }
    }
}

/// A request as the admin API reads it.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    bearer: Option<String>,
}

async fn answer(mut stream: Box<dyn Stream>, registry: &Registry, token: &str) -> std::io::Result<()> {
    let Some(request) = read_request(&mut stream).await? else {
        return respond(&mut stream, 400, &json!({"error": "bad request"})).await;
    };
    let authorized =
        request.bearer.as_deref().is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())));
    if !authorized {
        tracing::warn!("admin API: {} {} refused: no or wrong bearer token", request.method, printable(&request.path));
        return respond(&mut stream, 401, &json!({"error": "a valid Authorization: Bearer token is required"})).await;
    }
    let (status, body) = route(&request, registry);
    respond(&mut stream, status, &body).await
}

fn route(request: &Request, registry: &Registry) -> (u16, serde_json::Value) {
    let param = |name: &str| request.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/sessions") => {
            (200, json!({ "sessions": registry.list().iter().map(|l| session_json(l)).collect::<Vec<_>>() }))
        }
        ("DELETE", path) if path == "/sessions" || path.starts_with("/sessions/") => {
            let reason = param("reason").unwrap_or("Ended by the administrator");
            let reason: String = reason.chars().filter(|c| !c.is_control()).take(MAX_REASON).collect();
            let (what, ended) = if let Some(id) = path.strip_prefix("/sessions/") {
                let Ok(id) = id.parse::<u64>() else { return (400, json!({"error": "a session id is a number"})) };
                (format!("session {id}"), registry.end_where(|l| l.id == id, ENDED_CODE, &reason, EndedBy::Admin))
            } else if let Some(token_id) = param("token") {
                let n = registry.end_where(
                    |l| l.token_id.as_deref() == Some(token_id),
                    ENDED_CODE,
                    &reason,
                    EndedBy::Admin,
                );
                (format!("the sessions of token [{}]", printable(token_id)), n)
            } else if let Some(target) = param("target") {
                let n = registry.end_where(
                    |l| l.target_key == target || l.target == target,
                    ENDED_CODE,
                    &reason,
                    EndedBy::Admin,
                );
                (format!("the sessions to {}", printable(target)), n)
            } else {
                return (
                    400,
                    json!({"error": "DELETE /sessions/ID, /sessions?token=TOKEN_ID or /sessions?target=HOST:PORT"}),
                );
            };
            tracing::info!("admin API: ended {ended} ({what}): {reason:?}");
            (200, json!({ "ended": ended }))
        }
        ("GET" | "DELETE", _) => (404, json!({"error": "not found: GET /sessions, DELETE /sessions/ID"})),
        _ => (405, json!({"error": "GET or DELETE"})),
    }
}

fn session_json(l: &crate::ops::sessions::Live) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let started = l.started.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    json!({
        "id": l.id,
        "client": l.client.map(|c| c.to_string()),
        "target": l.target,
        "token_id": l.token_id,
        "tls": l.tls,
        "subprotocol": l.subprotocol,
        "started": started,
        "bytes_to_target": l.to_target.load(Relaxed),
        "bytes_to_client": l.to_client.load(Relaxed),
        "idle_seconds": l.idle_secs(),
    })
}

/// Reads one request head (`None` if it is not one this API takes).
async fn read_request(stream: &mut Box<dyn Stream>) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let due = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        let Ok(read) = tokio::time::timeout_at(due, stream.read(&mut chunk)).await else { return Ok(None) };
        let n = read?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let target = parsed.path.unwrap_or_default();
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let query = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.split_once('=').unwrap_or((p, "")))
                    .map(|(k, v)| (decode(k), decode(v)))
                    .collect();
                let bearer = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("Authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().strip_prefix("Bearer "))
                    .map(|t| t.trim().to_owned());
                return Ok(Some(Request {
                    method: parsed.method.unwrap_or_default().to_owned(),
                    path: decode(path),
                    query,
                    bearer,
                }));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => {}
            _ => return Ok(None),
        }
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

async fn respond(stream: &mut Box<dyn Stream>, status: u16, body: &serde_json::Value) -> std::io::Result<()> {
    let body = body.to_string() + "\n";
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}
