//! The relay: the hot path of a session, after the handshake and the target connection.
//!
//! Two loops run concurrently in the session's task:
//! - **inbound** reads client frames, unmasks payload in its read buffer and writes it to
//!   the target (decoding base64 first in base64 mode);
//! - **outbound** reads target bytes into a buffer that keeps room for a frame header in
//!   front, so each read goes to the client as one frame in one write, with no copy.
//!
//! Each loop awaits its writes before reading again: that is the backpressure. A client
//! that reads nothing stops the outbound loop, and the target then sees a full TCP window;
//! the proxy never holds more than one read buffer per direction.
//!
//! The outbound loop owns the client's write half, so every frame the server sends (data,
//! pong, close) is written there; the inbound loop asks for pongs and closes through a
//! one-message slot (`CtrlSlot`). The outbound loop decides when the session ends.

mod inbound;
mod outbound;

use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::ops::metrics::Limit;
use crate::ops::sessions::{EndedBy, Live};
use crate::session::record::{Direction, Recorder};
use crate::session::splice::Splicer;
use crate::session::stream::AsTcp;
use crate::wire::encoding::{Base64Decoder, Encoding, encode_base64, encoded_len};
use crate::wire::handshake::Framing;
use crate::wire::hixie::{self, HixieDecoder};
use crate::wire::ws::{
    ControlFrame, Decoder, DecoderConfig, Event, MAX_SERVER_HEADER, OpCode, ProtocolError, close_code,
    encode_header_before,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use inbound::Inbound;
use outbound::Outbound;

/// Read buffers start this small (an idle session holds none at all) and double, up to
/// [`MAX_CLIENT_READ`] or [`MAX_BUF`], whenever a read fills them.
const MIN_BUF: usize = 8 * 1024;
/// Client reads: pushing 64 KiB frames, 1 MiB reads took push from 1,256-1,650 MB/s to
/// 2,064-2,163 MB/s against 256 KiB ones (socat: 1,429-1,989), fewer syscalls per byte.
const MAX_CLIENT_READ: usize = 1024 * 1024;
/// Target reads: at this size bulk traffic moves to the splice path instead (1 MiB here
/// made pull slower: 1,333-1,636 against 1,486-1,903 MB/s).
const MAX_BUF: usize = 256 * 1024;
/// Client payload goes to the target in one vectored write per read: chunks at least this
/// big are a slice of their own, where they lie; smaller ones are moved onto the end of
/// the slice before them (over the frame headers in between). Pushing 1 GB in 64 KiB
/// frames took 19,206 `sendto` calls before, 4,060 `writev` now (socat: 3,833 `write`),
/// and push went from 0.64x to about 1.0x the socat relay in the same run.
const DIRECT_WRITE: usize = 8 * 1024;

/// What the relay needs to know about the session.
#[derive(Clone)]
pub struct RelayConfig {
    pub framing: Framing,
    pub encoding: Encoding,
    pub decoder: DecoderConfig,
    /// Send a ping this often.
    pub heartbeat: Option<Duration>,
    /// How long to wait for the client's answer to our close frame, and for a target to
    /// finish after its write side was shut down.
    pub close_timeout: Duration,
    /// Print the `--traffic` legend characters.
    pub traffic: bool,
    /// Record the session (`--record`).
    pub record: Option<Recorder>,
    /// Close the session after this long without data either way.
    pub idle_timeout: Option<Duration>,
    /// Ping and pong frames a client may send per second (0: unlimited).
    pub max_control_rate: u32,
    /// Largest text message held until it has proved to be UTF-8 (binary mode).
    pub max_text_hold: usize,
    /// Bytes of held text all sessions of the process may hold together (0: no budget).
    pub max_held_text_total: usize,
    /// Once one side has closed, time the other direction has to deliver what is left.
    pub drain_timeout: Duration,
    /// The session as the operator sees it (counters, and a way to end it), when an
    /// operator feature is on (`--admin-listen`, `--revoke-live-sessions`).
    pub live: Option<Arc<Live>>,
    /// When the session must end, with what close code and reason, and why
    /// (`--max-session-duration`, `--end-session-at-token-expiry`).
    pub deadline: Option<(Instant, u16, &'static str, EndedBy)>,
}

/// What ends a session from the operator side (the admin API, revocation, a token's
/// expiry, a time limit): a close code, a reason and who ended it. Boxed, and made only when
/// one of those features is on: a plain session carries nothing for it.
pub(super) type OperatorEnd = Pin<Box<dyn Future<Output = (u16, String, EndedBy)> + Send>>;

fn operator_end(config: &RelayConfig) -> Option<OperatorEnd> {
    if config.live.is_none() && config.deadline.is_none() {
        return None;
    }
    let (live, deadline) = (config.live.clone(), config.deadline);
    Some(Box::pin(async move {
        let asked = async {
            match &live {
                Some(live) => {
                    live.ended.cancelled().await;
                    live.end_reason().unwrap_or((close_code::GOING_AWAY, String::new(), EndedBy::Admin))
                }
                None => std::future::pending().await,
            }
        };
        let due = async {
            match deadline {
                Some((at, code, reason, by)) => {
                    tokio::time::sleep_until(at).await;
                    crate::ops::metrics::METRICS.session_ended_by(by.label());
                    (code, reason.to_owned(), by)
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = asked => ended,
            ended = due => ended,
        }
    }))
}

/// The close reason of a session whose target read nothing for `--drain-timeout` while
/// client data waited for it.
pub const TARGET_STALLED: &str = "Target stopped reading";

/// A write that made no progress for `--drain-timeout`: its peer stopped reading (a
/// target or client that hung, or whose other side has closed).
#[derive(Debug)]
pub struct Stalled {
    pub peer: &'static str,
    pub after: Duration,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} read nothing for {} s (--drain-timeout)", self.peer, self.after.as_secs())
    }
}

impl std::error::Error for Stalled {}

/// Completes `after` from its first poll with the [`Stalled`] error. Raced (biased)
/// against a write, it is polled only once the write is pending, so a write that
/// completes at once costs no timer.
pub(super) async fn stall(peer: &'static str, after: Duration) -> io::Error {
    // Boxed: a timer is about 100 bytes, and every session's future would carry room for
    // it (a future is as big as its biggest await); boxed, only a pending write pays.
    Box::pin(tokio::time::sleep(after)).await;
    io::Error::new(io::ErrorKind::TimedOut, Stalled { peer, after })
}

fn is_stall(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stalled>())
}

/// The close reason of a session closed because the process-wide budget for held text
/// (`--max-held-text-total`) was spent.
pub const HELD_TEXT_SPENT: &str = "Too much unfinished text held by all sessions";

/// Bytes of unfinished text messages held by every session of the process (see
/// [`HeldText`]): one client cannot pin more than `max_text_hold`, and all together not
/// more than `max_held_text_total`.
static HELD_TEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A session's held text, counted in [`HELD_TEXT`] while it is held.
#[derive(Default)]
pub(super) struct HeldText {
    bytes: Vec<u8>,
}

impl HeldText {
    /// Holds `data`, unless that would take all sessions' held text past `budget` (0: no
    /// budget): then nothing is held and `false` says the session must close with 1009.
    pub(super) fn hold(&mut self, data: &[u8], budget: usize) -> bool {
        let before = HELD_TEXT.fetch_add(data.len(), Ordering::Relaxed);
        if budget > 0 && before + data.len() > budget {
            HELD_TEXT.fetch_sub(data.len(), Ordering::Relaxed);
            return false;
        }
        self.bytes.extend_from_slice(data);
        true
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Lets go of the text (written, or the session is over) and its memory.
    pub(super) fn release(&mut self) {
        HELD_TEXT.fetch_sub(self.bytes.len(), Ordering::Relaxed);
        self.bytes = Vec::new();
    }
}

impl Drop for HeldText {
    fn drop(&mut self) {
        self.release();
    }
}

/// Bytes held by all sessions now (for tests and the metrics).
pub fn held_text_total() -> usize {
    HELD_TEXT.load(Ordering::Relaxed)
}

/// How a session ended, for its summary log line.
#[derive(Debug)]
pub enum End {
    /// The client started the close handshake; its code (if any) was echoed.
    ClientClosed(Option<u16>),
    /// The target closed; we sent 1000 "Target closed". `acknowledged` says whether the
    /// client answered our close.
    TargetClosed { acknowledged: bool },
    /// The target failed mid-stream; we closed with 1011.
    TargetError(io::Error),
    /// The server is shutting down; we sent 1001.
    Shutdown { acknowledged: bool },
    /// No data moved for the session idle timeout; we sent 1001.
    Idle { acknowledged: bool },
    /// The client broke a protocol rule; we closed with the code it calls for.
    ProtocolError { code: u16, reason: String },
    /// The client's connection dropped or failed without a close handshake.
    ClientGone(Option<io::Error>),
    /// Ended from the operator side (the admin API, a revoked or expired token, a time
    /// limit): we sent this close code and reason.
    Ended { code: u16, reason: String, by: EndedBy, acknowledged: bool },
}

impl End {
    /// The limit that ended the session, if one did (for the metrics).
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Self::ClientGone(Some(e)) | Self::TargetError(e) if is_stall(e) => Some(Limit::DrainTimeout),
            Self::ProtocolError { code: close_code::INTERNAL_ERROR, reason } if reason == TARGET_STALLED => {
                Some(Limit::DrainTimeout)
            }
            Self::Idle { .. } => Some(Limit::SessionIdleTimeout),
            Self::ProtocolError { code: close_code::TOO_BIG, reason } if reason == HELD_TEXT_SPENT => {
                Some(Limit::MaxHeldTextTotal)
            }
            Self::ProtocolError { code: close_code::TOO_BIG, .. } => Some(Limit::MaxMessageSize),
            Self::ProtocolError { code: close_code::POLICY, .. } => Some(Limit::MaxControlRate),
            _ => None,
        }
    }

    /// The close code the client was sent or sent, as it will appear in logs.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::ClientClosed(code) => *code,
            Self::TargetClosed { .. } => Some(close_code::NORMAL),
            Self::TargetError(_) => Some(close_code::INTERNAL_ERROR),
            Self::Shutdown { .. } | Self::Idle { .. } => Some(close_code::GOING_AWAY),
            Self::ProtocolError { code, .. } | Self::Ended { code, .. } => Some(*code),
            Self::ClientGone(_) => None,
        }
    }
}

/// Byte counts of a session, in payload bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub to_target: u64,
    pub to_client: u64,
}

/// Requests from the inbound loop to the outbound loop, which owns the client writer.
enum Ctrl {
    /// Boxed: a control frame is 128 bytes, and every session's slot has room for one
    /// message (pings are rare).
    Pong(Box<ControlFrame>),
    /// The client sent a close frame (its code and reason); all client data before it has
    /// been written to the target and the target's write side is shut down.
    Close(Option<u16>, String),
    /// The client broke the protocol: close with this code and reason.
    Fail(u16, String),
    /// The client's connection ended without a close frame.
    Gone(Option<io::Error>),
}

/// The inbound loop's messages to the outbound loop: a pong at a time, the sender waiting
/// while one is pending (a client that pings faster than its pongs can be written is
/// slowed down, as with a bounded channel), and the loop's last word (close, failure, end
/// of the connection) in a place of its own, so that it never waits behind a pong: sent
/// right after the target's write side is shut down, it must reach the outbound loop
/// before the target's answering FIN does (else the client is told "Target closed" instead
/// of why the session really ended).
///
/// Both loops run in the session's task, so slots in the task's own state do: a
/// `tokio::sync::mpsc` channel cost each session two allocations (1.5 KB: its block has
/// room for 32 messages) for what is at most a pong now and then and one closing word.
struct CtrlSlot {
    /// The pending pong, and the last word.
    slots: Mutex<(Option<Ctrl>, Option<Ctrl>)>,
    /// The inbound loop has finished (it sends nothing more).
    closed: std::sync::atomic::AtomicBool,
    filled: Notify,
    emptied: Notify,
}

impl CtrlSlot {
    fn new() -> Self {
        Self {
            slots: Mutex::new((None, None)),
            closed: std::sync::atomic::AtomicBool::new(false),
            filled: Notify::new(),
            emptied: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Ctrl>, Option<Ctrl>)> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `ctrl` over: a pong once the previous one is taken, anything else at once.
    /// (`Notify` keeps a wake-up that comes before the wait, so none is lost between the
    /// look and the wait.)
    async fn send(&self, ctrl: Ctrl) {
        let mut ctrl = Some(ctrl);
        loop {
            {
                let mut slots = self.lock();
                let slot = if matches!(ctrl, Some(Ctrl::Pong(_))) { &mut slots.0 } else { &mut slots.1 };
                if slot.is_none() {
                    *slot = ctrl.take();
                    drop(slots);
                    self.filled.notify_one();
                    return;
                }
            }
            self.emptied.notified().await;
        }
    }

    /// The next message (a pending pong before the last word); `None` once the inbound
    /// loop has finished and everything it sent is taken.
    async fn recv(&self) -> Option<Ctrl> {
        loop {
            {
                let mut slots = self.lock();
                if let Some(pong) = slots.0.take() {
                    drop(slots);
                    self.emptied.notify_one();
                    return Some(pong);
                }
                if let Some(last) = slots.1.take() {
                    return Some(last);
                }
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            self.filled.notified().await;
        }
    }

    /// The inbound loop has finished.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.filled.notify_one();
    }
}

/// Relays between an upgraded client connection and a connected target until the
/// session ends. `pending` holds client bytes already read past the handshake.
#[allow(clippy::too_many_arguments)]
pub async fn run<CR, CW, TR, TW>(
    client_r: CR,
    client_w: CW,
    pending: Vec<u8>,
    target_r: TR,
    target_w: TW,
    config: &RelayConfig,
    shutdown: &CancellationToken,
) -> (End, Counts)
where
    CR: AsyncRead + AsTcp + Unpin,
    CW: AsyncWrite + AsTcp + Unpin,
    TR: AsyncRead + AsTcp + Unpin,
    TW: AsyncWrite + Unpin,
{
    let ctrl = CtrlSlot::new();
    let local_count = AtomicU64::new(0);
    let to_target = config.live.as_ref().map_or(&local_count, |live| &live.to_target);
    let activity = Activity::new(config.idle_timeout.is_some(), config.live.clone());
    let inbound = Inbound {
        reader: client_r,
        target: target_w,
        ctrl: &ctrl,
        config,
        written: to_target,
        activity: &activity,
        stalled: false,
    };
    let outbound = Outbound {
        target: target_r,
        client: client_w,
        ctrl: &ctrl,
        config,
        shutdown,
        to_client: 0,
        activity: &activity,
        read_size: MIN_BUF,
        splice: None,
        operator_end: operator_end(config),
    };
    // The outbound loop decides the end. The inbound loop then either has finished or is
    // lingering: after a protocol error it may linger for the close timeout (the client
    // has yet to answer our close frame); otherwise it is cut short when the outbound loop
    // ends (it may also be stuck writing to a target that reads nothing). Both are polled
    // here, in the session's task (no token, no channel: nothing on the heap for it).
    let inbound = async {
        inbound.run(pending).await;
        ctrl.close();
    };
    let mut inbound = std::pin::pin!(inbound);
    let mut outbound = std::pin::pin!(outbound.run());
    let mut inbound_done = false;
    let (end, to_client) = std::future::poll_fn(|cx| {
        if !inbound_done && inbound.as_mut().poll(cx).is_ready() {
            inbound_done = true;
        }
        outbound.as_mut().poll(cx)
    })
    .await;
    if !inbound_done && matches!(end, End::ProtocolError { .. }) {
        inbound.await;
    }
    (end, Counts { to_target: to_target.load(Ordering::Relaxed), to_client })
}

/// When data last moved in either direction (`--session-idle-timeout`).
struct Activity {
    /// Off without `--session-idle-timeout`: then nothing reads the clock per read.
    enabled: bool,
    start: Instant,
    /// Milliseconds from `start` to the last data.
    last_ms: AtomicU64,
    /// The operator's view of the session, told too.
    live: Option<Arc<Live>>,
}

impl Activity {
    fn new(enabled: bool, live: Option<Arc<Live>>) -> Self {
        Self { enabled, start: Instant::now(), last_ms: AtomicU64::new(0), live }
    }

    fn touch(&self) {
        if self.enabled {
            self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        if let Some(live) = &self.live {
            live.touch();
        }
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::inbound::queue;
    use super::*;

    /// The inbound loop's last word never waits behind a pending pong (it must reach the
    /// outbound loop before the target's FIN that its shutdown causes), and comes after it.
    #[tokio::test]
    async fn the_last_word_never_waits_behind_a_pong() {
        let slot = CtrlSlot::new();
        slot.send(Ctrl::Pong(Box::new(ControlFrame::new(OpCode::Pong, b"p")))).await;
        let second_pong = slot.send(Ctrl::Pong(Box::new(ControlFrame::new(OpCode::Pong, b"q"))));
        assert!(tokio::time::timeout(Duration::from_millis(50), second_pong).await.is_err(), "a second pong waits");
        let fail = slot.send(Ctrl::Fail(close_code::POLICY, "Too many control frames".into()));
        tokio::time::timeout(Duration::from_secs(1), fail).await.expect("the last word waited behind a pong");
        assert!(matches!(slot.recv().await, Some(Ctrl::Pong(_))));
        assert!(matches!(slot.recv().await, Some(Ctrl::Fail(close_code::POLICY, _))));
        slot.close();
        assert!(slot.recv().await.is_none());
    }

    /// Payloads separated by headers, big and small in every order, come out as the
    /// same bytes in the same order.
    #[test]
    fn queue_keeps_order_and_bytes() {
        let sizes = [3, DIRECT_WRITE, 1, 2, DIRECT_WRITE + 5, 7, 0, DIRECT_WRITE, DIRECT_WRITE - 1];
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        let mut expected = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            buf.extend_from_slice(&[0xEE; 6]); // a header
            let start = buf.len();
            let payload: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            buf.extend_from_slice(&payload);
            expected.extend_from_slice(&payload);
            ranges.push(start..buf.len());
        }
        let mut queued = Vec::new();
        for r in ranges {
            queue(&mut buf, &mut queued, r);
        }
        let out: Vec<u8> = queued.iter().flat_map(|r| buf[r.clone()].to_vec()).collect();
        assert_eq!(out, expected);
        // Small payloads joined their neighbours: one slice per big chunk, plus the first.
        assert_eq!(queued.len(), 4);
    }
}
