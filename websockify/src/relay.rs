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
//! small channel. The outbound loop decides when the session ends.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::encoding::{Base64Decoder, Encoding, encode_base64, encoded_len};
use crate::handshake::Framing;
use crate::hixie::{self, HixieDecoder};
use crate::record::{Direction, Recorder};
use crate::splice::Splicer;
use crate::stream::AsTcp;
use crate::ws::{
    ControlFrame, Decoder, DecoderConfig, Event, MAX_SERVER_HEADER, OpCode, ProtocolError, close_code,
    encode_header_before,
};

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
}

impl End {
    /// The close code the client was sent or sent, as it will appear in logs.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::ClientClosed(code) => *code,
            Self::TargetClosed { .. } => Some(close_code::NORMAL),
            Self::TargetError(_) => Some(close_code::INTERNAL_ERROR),
            Self::Shutdown { .. } | Self::Idle { .. } => Some(close_code::GOING_AWAY),
            Self::ProtocolError { code, .. } => Some(*code),
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
    /// Boxed: a control frame is 128 bytes, and the channel allocates room for 32 messages.
    Pong(Box<ControlFrame>),
    /// The client sent a close frame (its code and reason); all client data before it has
    /// been written to the target and the target's write side is shut down.
    Close(Option<u16>, String),
    /// The client broke the protocol: close with this code and reason.
    Fail(u16, String),
    /// The client's connection ended without a close frame.
    Gone(Option<io::Error>),
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
    let (ctrl_tx, ctrl_rx) = mpsc::channel(4);
    let to_target = AtomicU64::new(0);
    let activity = Activity::new(config.idle_timeout.is_some());
    let inbound =
        Inbound { reader: client_r, target: target_w, ctrl: ctrl_tx, config, written: &to_target, activity: &activity };
    let outbound = Outbound {
        target: target_r,
        client: client_w,
        ctrl: ctrl_rx,
        config,
        shutdown,
        to_client: 0,
        activity: &activity,
        read_size: MIN_BUF,
        splice: None,
    };
    // The outbound loop decides the end. The inbound loop then either has finished or is
    // lingering: after a protocol error it may linger for the close timeout (the client
    // has yet to answer our close frame); otherwise it is cut short when the outbound loop
    // ends (it may also be stuck writing to a target that reads nothing).
    let done = CancellationToken::new();
    let ((), (end, to_client)) = tokio::join!(
        async {
            tokio::select! {
                () = inbound.run(pending) => {}
                () = done.cancelled() => {}
            }
        },
        async {
            let result = outbound.run().await;
            if !matches!(result.0, End::ProtocolError { .. }) {
                done.cancel();
            }
            result
        }
    );
    (end, Counts { to_target: to_target.load(Ordering::Relaxed), to_client })
}

/// Client -> target.
struct Inbound<'a, CR, TW> {
    reader: CR,
    target: TW,
    ctrl: mpsc::Sender<Ctrl>,
    config: &'a RelayConfig,
    /// Payload bytes written to the target so far.
    written: &'a AtomicU64,
    activity: &'a Activity,
}

impl<CR: AsyncRead + AsTcp + Unpin, TW: AsyncWrite + Unpin> Inbound<'_, CR, TW> {
    /// Runs until the client's close frame, a protocol error or the end of the client's
    /// connection.
    async fn run(mut self, mut buf: Vec<u8>) {
        let mut decoder = FrameDecoder::new(self.config);
        let mut base64 = (self.config.encoding == Encoding::Base64).then(|| (Base64Decoder::default(), Vec::new()));
        let mut held = Vec::new();
        let mut recorded = Vec::new();
        // Once the target refuses writes, client data is dropped but frames are still
        // decoded, so that the close handshake can finish.
        let mut target_ok = true;
        // How much to read at a time: doubles while reads fill the buffer.
        let mut size = MIN_BUF;
        let mut streaming_text = false;
        let mut events = 0u32;
        let mut control_rate = ControlRate::new(self.config.max_control_rate);
        // Payload ranges of `buf` to write to the target, in order.
        let mut queued: Vec<Range<usize>> = Vec::new();
        loop {
            // Decode everything buffered; payload is queued as slices of `buf`.
            let mut pos = 0;
            queued.clear();
            let step = loop {
                let (event, used) = match decoder.decode(&mut buf[pos..]) {
                    Ok(ok) => ok,
                    Err(e) => break Step::Fail(e.close_code(), e.to_string()),
                };
                let at = pos;
                pos += used;
                // A read of tiny frames is tens of thousands of events: count them against
                // the task's scheduling budget, so a client sending 1-byte frames yields its
                // worker every millisecond or so instead of every 128 reads (at 256 KiB of
                // 1-byte frames per read, other sessions saw p99 latencies of 110-230 ms).
                events += 1;
                if events % 256 == 0 {
                    tokio::task::consume_budget().await;
                }
                match event {
                    Event::NeedMore => break Step::Read,
                    Event::Data { payload, text, last } => {
                        let (start, end) = (at + payload.start, at + payload.end);
                        if let Some(rec) = &self.config.record {
                            // A base64 entry must be whole base64 text: record messages.
                            if base64.is_some() && text {
                                recorded.extend_from_slice(&buf[start..end]);
                                if last {
                                    rec.record(Direction::FromClient, &recorded);
                                    recorded.clear();
                                }
                            } else {
                                rec.record(Direction::FromClient, &buf[start..end]);
                            }
                        }
                        if let Some((decoder, out)) = base64.as_mut().filter(|_| text) {
                            if let Err(e) = decoder.feed(&buf[start..end], last, out) {
                                break Step::Fail(close_code::INVALID_PAYLOAD, e.to_string());
                            }
                        } else if text && !streaming_text {
                            // A text message reaches the target only once all of it has proved
                            // to be UTF-8: the target never sees part of a message that is then
                            // refused with 1007. Held up to `max_text_hold`; the rest of a
                            // longer one is forwarded as it arrives (and still validated).
                            held.extend_from_slice(&buf[start..end]);
                            if last || held.len() > self.config.max_text_hold {
                                self.write_queued(&buf, &mut queued, &mut target_ok).await;
                                self.write(&held, &mut target_ok).await;
                                held = Vec::new();
                                streaming_text = !last;
                            }
                        } else {
                            queue(&mut buf, &mut queued, start..end);
                            if last {
                                streaming_text = false;
                            }
                        }
                    }
                    Event::Ping(_) | Event::Pong(_) if !control_rate.allow() => {
                        break Step::Fail(close_code::POLICY, "Too many control frames".into());
                    }
                    Event::Ping(payload) => {
                        let pong = ControlFrame::new(OpCode::Pong, &buf[at + payload.start..at + payload.end]);
                        if self.ctrl.send(Ctrl::Pong(Box::new(pong))).await.is_err() {
                            return;
                        }
                    }
                    Event::Pong(_) => {}
                    Event::Close { code, reason } => {
                        let reason = String::from_utf8_lossy(&buf[at + reason.start..at + reason.end]).into_owned();
                        break Step::Close(code, reason);
                    }
                }
            };
            self.write_queued(&buf, &mut queued, &mut target_ok).await;
            if let Some((_, out)) = base64.as_mut().filter(|(_, out)| !out.is_empty()) {
                self.write(out, &mut target_ok).await;
                out.clear();
            }
            match step {
                Step::Read => {}
                Step::Close(code, reason) => {
                    // The client's close frame is its last word (RFC 6455 §5.5.1), but a TLS
                    // client may still send close_notify: read on while the outbound loop
                    // finishes (it cancels this loop then, so the server closes first,
                    // §7.1.1), so that closing does not reset the connection.
                    let _ = self.target.shutdown().await;
                    let _ = self.ctrl.send(Ctrl::Close(code, reason)).await;
                    self.linger().await;
                    return;
                }
                Step::Fail(code, reason) => {
                    let _ = self.target.shutdown().await;
                    let _ = self.ctrl.send(Ctrl::Fail(code, reason)).await;
                    self.linger().await;
                    return;
                }
            }
            buf.drain(..pos);
            if buf.is_empty()
                && let Some(tcp) = self.reader.as_tcp()
            {
                // An idle session holds no read buffer: wait for bytes, then allocate (with
                // the same in the outbound loop, 16 KB less per idle session).
                buf = Vec::new();
                if let Err(e) = tcp.readable().await {
                    let _ = self.ctrl.send(Ctrl::Gone(Some(e))).await;
                    return;
                }
            }
            if buf.capacity() - buf.len() < MIN_BUF / 2 {
                let want = (buf.capacity() * 2).clamp(size, MAX_CLIENT_READ).max(buf.len() + MIN_BUF);
                buf.reserve_exact(want - buf.len());
            }
            match self.reader.read_buf(&mut buf).await {
                Ok(0) => {
                    let _ = self.target.shutdown().await;
                    let _ = self.ctrl.send(Ctrl::Gone(None)).await;
                    return;
                }
                Ok(_) => {
                    self.activity.touch();
                    if self.config.traffic {
                        eprint!("}}");
                    }
                    // A full buffer means the client has more: read bigger next time.
                    if buf.len() == buf.capacity() && buf.capacity() < MAX_CLIENT_READ {
                        size = (buf.capacity() * 2).min(MAX_CLIENT_READ);
                        buf.reserve_exact(size - buf.len());
                    }
                }
                Err(e) => {
                    let _ = self.ctrl.send(Ctrl::Gone(Some(e))).await;
                    return;
                }
            }
        }
    }

    /// Writes the queued ranges of `buf` to the target, in one `writev` when the target
    /// takes them all at once, and empties the queue.
    async fn write_queued(&mut self, buf: &[u8], queued: &mut Vec<Range<usize>>, target_ok: &mut bool) {
        match queued.as_slice() {
            [] => {}
            [one] => self.write(&buf[one.clone()], target_ok).await,
            many => {
                let mut slices: Vec<IoSlice> = many.iter().map(|r| IoSlice::new(&buf[r.clone()])).collect();
                self.write_slices(&mut slices, target_ok).await;
            }
        }
        queued.clear();
    }

    /// Writes to the target; after the first failure, drops data silently (the outbound
    /// loop sees the target's end and closes the session).
    async fn write(&mut self, bytes: &[u8], target_ok: &mut bool) {
        self.write_slices(&mut [IoSlice::new(bytes)], target_ok).await;
    }

    async fn write_slices(&mut self, mut slices: &mut [IoSlice<'_>], target_ok: &mut bool) {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        if total == 0 || !*target_ok {
            return;
        }
        while !slices.is_empty() {
            let written = tokio::select! {
                // The usual case, a write that completes at once, never polls the watcher.
                biased;
                r = self.target.write_vectored(slices) => r,
                () = stalled_after_client_left(&self.reader, self.config.close_timeout) => {
                    Err(io::Error::other("the client left while the target was not reading"))
                }
            };
            match written {
                Ok(0) => {
                    tracing::debug!("target write failed: wrote zero bytes");
                    *target_ok = false;
                    return;
                }
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) => {
                    tracing::debug!("target write failed: {e}");
                    *target_ok = false;
                    return;
                }
            }
        }
        self.written.fetch_add(total as u64, Ordering::Relaxed);
        crate::metrics::METRICS.bytes_to_target.inc_by(total as u64);
        if self.config.traffic {
            eprint!(">");
        }
    }

    /// After the client's close frame or our close frame for a protocol error, keep reading
    /// (and dropping) what the client still sends until it closes, so that closing our
    /// socket does not reset the connection and destroy the close frame in flight. At most
    /// the close timeout (5 s), and cut short by the end of the session.
    async fn linger(&mut self) {
        // On the heap: a buffer here would be part of every session's state, idle or not.
        let mut sink = vec![0u8; 4096];
        let deadline = tokio::time::sleep(self.config.close_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = self.reader.read(&mut sink) => if !matches!(r, Ok(n) if n > 0) { return },
                () = &mut deadline => return,
            }
        }
    }
}

/// Completes once the client has closed or reset its connection and then `grace` has
/// passed, for a write to the target that makes no progress meanwhile: a target that
/// reads nothing must not keep a session whose client is gone (its data would never be
/// delivered anyway). Never completes for clients that are not plain TCP.
async fn stalled_after_client_left<CR: AsTcp>(reader: &CR, grace: Duration) {
    let Some(tcp) = reader.as_tcp() else {
        return std::future::pending().await;
    };
    loop {
        match tcp.ready(tokio::io::Interest::READABLE).await {
            Ok(ready) if ready.is_read_closed() || ready.is_error() => break,
            Err(_) => break,
            // Data the inbound loop will read once this write is done: look again later
            // (readiness stays set until that read, so waiting on it again would spin).
            Ok(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    tokio::time::sleep(grace).await;
}

/// Queues client payload `range` of `buf` for the target (see [`DIRECT_WRITE`]). Ranges
/// come in buffer order, so the end of the last queued one is never past `range.start`.
fn queue(buf: &mut [u8], queued: &mut Vec<Range<usize>>, range: Range<usize>) {
    match queued.last_mut() {
        Some(last) if range.len() < DIRECT_WRITE => {
            let len = range.len();
            buf.copy_within(range, last.end);
            last.end += len;
        }
        _ => queued.push(range),
    }
}

/// When data last moved in either direction (`--session-idle-timeout`).
struct Activity {
    /// Off without `--session-idle-timeout`: then nothing reads the clock per read.
    enabled: bool,
    start: Instant,
    /// Milliseconds from `start` to the last data.
    last_ms: AtomicU64,
}

impl Activity {
    fn new(enabled: bool) -> Self {
        Self { enabled, start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        if self.enabled {
            self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Counts a client's ping and pong frames per one-second window.
struct ControlRate {
    limit: u32,
    window: std::time::Instant,
    count: u32,
}

impl ControlRate {
    fn new(limit: u32) -> Self {
        Self { limit, window: std::time::Instant::now(), count: 0 }
    }

    /// Counts one more frame; false once the window holds more than the limit.
    fn allow(&mut self) -> bool {
        if self.limit == 0 {
            return true;
        }
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = std::time::Instant::now();
            self.count = 0;
        }
        self.count += 1;
        self.count <= self.limit
    }
}

/// The client-side frame decoder of the session's framing.
enum FrameDecoder {
    Rfc6455(Decoder),
    Hixie(HixieDecoder),
}

impl FrameDecoder {
    fn new(config: &RelayConfig) -> Self {
        match config.framing {
            Framing::Rfc6455 => Self::Rfc6455(Decoder::new(config.decoder)),
            Framing::Hixie => Self::Hixie(HixieDecoder::new(config.decoder.max_message)),
        }
    }

    fn decode(&mut self, buf: &mut [u8]) -> Result<(Event, usize), ProtocolError> {
        match self {
            Self::Rfc6455(d) => d.decode(buf),
            Self::Hixie(d) => d.decode(buf),
        }
    }
}

enum Step {
    Read,
    Close(Option<u16>, String),
    Fail(u16, String),
}

/// Target -> client, and every frame the server sends.
struct Outbound<'a, TR, CW> {
    target: TR,
    client: CW,
    ctrl: mpsc::Receiver<Ctrl>,
    config: &'a RelayConfig,
    shutdown: &'a CancellationToken,
    to_client: u64,
    activity: &'a Activity,
    /// Bytes to read from the target at a time: doubles while reads fill the buffer.
    read_size: usize,
    /// The zero-copy path, set up once the session shows bulk traffic (binary frames
    /// between plain TCP sockets only).
    splice: Option<Splicer>,
}

/// What a read from the target produced.
enum TargetRead {
    /// Bytes copied into the buffer.
    Copied(usize),
    /// Bytes waiting in the splice pipe.
    Spliced(usize),
}

impl TargetRead {
    fn len(&self) -> usize {
        match self {
            Self::Copied(n) | Self::Spliced(n) => *n,
        }
    }
}

/// Reads the target's next bytes: through the splice pipe when there is one, else into
/// `buf[MAX_SERVER_HEADER..]`, which an idle TCP session does not hold: it is allocated
/// (`size` bytes of room) once the target has something to say.
async fn read_target<TR: AsyncRead + AsTcp + Unpin>(
    target: &mut TR,
    buf: &mut Vec<u8>,
    size: usize,
    splice: Option<&Splicer>,
) -> io::Result<TargetRead> {
    if let (Some(splicer), Some(tcp)) = (splice, target.as_tcp()) {
        return splicer.fill(tcp).await.map(TargetRead::Spliced);
    }
    if buf.is_empty() {
        if let Some(tcp) = target.as_tcp() {
            tcp.readable().await?;
        }
        buf.resize(MAX_SERVER_HEADER + size, 0);
    }
    target.read(&mut buf[MAX_SERVER_HEADER..]).await.map(TargetRead::Copied)
}

impl<TR: AsyncRead + AsTcp + Unpin, CW: AsyncWrite + AsTcp + Unpin> Outbound<'_, TR, CW> {
    async fn run(mut self) -> (End, u64) {
        let end = self.relay().await;
        (end, self.to_client)
    }

    async fn relay(&mut self) -> End {
        // `buf[..MAX_SERVER_HEADER]` is room for the frame header; target bytes follow.
        let mut buf = Vec::new();
        let mut encoded = Vec::new();
        // Hixie has no ping.
        let heartbeat_period = self.config.heartbeat.filter(|_| self.config.framing == Framing::Rfc6455);
        let mut heartbeat = heartbeat_period.map(|period| {
            let mut t = tokio::time::interval_at(Instant::now() + period, period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        // Set once we have sent our close frame: what ends the session then, and by when
        // the client must answer.
        let mut closing: Option<(End, Instant)> = None;
        loop {
            let deadline = closing.as_ref().map(|(_, d)| *d);
            let idle_deadline = self.config.idle_timeout.map(|t| self.activity.last() + t);
            tokio::select! {
                biased;
                ctrl = self.ctrl.recv() => match ctrl {
                    Some(Ctrl::Pong(frame)) => {
                        if let Err(e) = self.send(frame.as_bytes()).await {
                            return End::ClientGone(Some(e));
                        }
                    }
                    Some(Ctrl::Close(code, reason)) => {
                        return match closing {
                            Some((end, _)) => self.finish(end.acknowledged()).await,
                            None => {
                                // Echo the client's status code (RFC 6455 §5.5.1).
                                let _ = self.send_close(code, &reason).await;
                                self.finish(End::ClientClosed(code)).await
                            }
                        };
                    }
                    Some(Ctrl::Fail(code, reason)) => {
                        if closing.is_none() {
                            let _ = self.send_close(Some(code), &reason).await;
                        }
                        return self.finish(End::ProtocolError { code, reason }).await;
                    }
                    Some(Ctrl::Gone(e)) => return closing.map_or(End::ClientGone(e), |(end, _)| end),
                    None => return closing.map_or(End::ClientGone(None), |(end, _)| end),
                },
                () = self.shutdown.cancelled(), if closing.is_none() => {
                    closing = Some((End::Shutdown { acknowledged: false }, Instant::now() + self.config.close_timeout));
                    if let Err(e) = self.send_close(Some(close_code::GOING_AWAY), "Server shutting down").await {
                        return End::ClientGone(Some(e));
                    }
                }
                () = sleep_until_opt(deadline) => {
                    let (end, _) = closing.take().expect("deadline only while closing");
                    return end;
                }
                () = sleep_until_opt(idle_deadline), if closing.is_none() => {
                    // The inbound loop may have moved data since the deadline was set.
                    if Instant::now() < self.activity.last() + self.config.idle_timeout.unwrap_or_default() {
                        continue;
                    }
                    closing = Some((End::Idle { acknowledged: false }, Instant::now() + self.config.close_timeout));
                    if let Err(e) = self.send_close(Some(close_code::GOING_AWAY), "Session idle timeout").await {
                        return End::ClientGone(Some(e));
                    }
                }
                _ = tick_opt(&mut heartbeat), if closing.is_none() => {
                    if let Err(e) = self.send(ControlFrame::new(OpCode::Ping, b"").as_bytes()).await {
                        return End::ClientGone(Some(e));
                    }
                }
                read = read_target(&mut self.target, &mut buf, self.read_size, self.splice.as_ref()), if closing.is_none() => {
                    let (end, code, reason) = match read {
                        Ok(read) if read.len() == 0 => (End::TargetClosed { acknowledged: false }, close_code::NORMAL, "Target closed"),
                        Ok(read) => {
                            self.activity.touch();
                            if self.config.traffic {
                                eprint!("{{");
                            }
                            let sent = match read {
                                TargetRead::Copied(n) => self.send_data(&mut buf, n, &mut encoded).await,
                                TargetRead::Spliced(n) => self.send_spliced(n).await,
                            };
                            if let Err(e) = sent {
                                return End::ClientGone(Some(e));
                            }
                            continue;
                        }
                        Err(e) => (End::TargetError(e), close_code::INTERNAL_ERROR, "Target connection failed"),
                    };
                    closing = Some((end, Instant::now() + self.config.close_timeout));
                    if let Err(e) = self.send_close(Some(code), reason).await {
                        return End::ClientGone(Some(e));
                    }
                }
            }
        }
    }

    /// Sends the `n` target bytes at `buf[MAX_SERVER_HEADER..]` as one message.
    async fn send_data(&mut self, buf: &mut Vec<u8>, n: usize, encoded: &mut Vec<u8>) -> io::Result<()> {
        let payload = &buf[MAX_SERVER_HEADER..MAX_SERVER_HEADER + n];
        if (self.config.framing, self.config.encoding) == (Framing::Rfc6455, Encoding::Binary) {
            if let Some(rec) = &self.config.record {
                rec.record(Direction::ToClient, payload);
            }
            let header: &mut [u8; MAX_SERVER_HEADER] = (&mut buf[..MAX_SERVER_HEADER]).try_into().expect("header room");
            let h = encode_header_before(header, true, OpCode::Binary, n);
            self.send(&buf[MAX_SERVER_HEADER - h..MAX_SERVER_HEADER + n]).await?;
        } else {
            // Base64 text: after room for an RFC 6455 header, or between Hixie's 0x00 and 0xFF.
            let at = if self.config.framing == Framing::Hixie { 1 } else { MAX_SERVER_HEADER };
            let len = encoded_len(n);
            encoded.resize(at + len + 1, 0);
            encode_base64(payload, &mut encoded[at..at + len]);
            if let Some(rec) = &self.config.record {
                rec.record(Direction::ToClient, &encoded[at..at + len]);
            }
            let frame = match self.config.framing {
                Framing::Hixie => {
                    encoded[0] = 0x00;
                    encoded[at + len] = 0xFF;
                    &encoded[..]
                }
                Framing::Rfc6455 => {
                    let header: &mut [u8; MAX_SERVER_HEADER] =
                        (&mut encoded[..MAX_SERVER_HEADER]).try_into().expect("header room");
                    let h = encode_header_before(header, true, OpCode::Text, len);
                    &encoded[MAX_SERVER_HEADER - h..at + len]
                }
            };
            self.send(frame).await?;
        }
        self.to_client += n as u64;
        crate::metrics::METRICS.bytes_to_client.inc_by(n as u64);
        // A full read means the target has more: read bigger next time, and once reads
        // are as big as they get, move bulk traffic without copying where possible.
        if n == buf.len() - MAX_SERVER_HEADER {
            if n < MAX_BUF {
                self.read_size = (n * 2).min(MAX_BUF);
                buf.resize(MAX_SERVER_HEADER + self.read_size, 0);
            } else {
                self.start_splicing();
            }
        } else if self.target.as_tcp().is_some() {
            // The target has nothing more for now: an idle session holds no buffers
            // (`read_target` allocates again when the target has bytes).
            *buf = Vec::new();
            *encoded = Vec::new();
        }
        Ok(())
    }

    fn start_splicing(&mut self) {
        // Recording needs the bytes in user space.
        let eligible = self.splice.is_none()
            && self.config.record.is_none()
            && self.config.framing == Framing::Rfc6455
            && self.config.encoding == Encoding::Binary
            && self.target.as_tcp().is_some()
            && self.client.as_tcp().is_some();
        if !eligible {
            return;
        }
        match Splicer::new() {
            Ok(splicer) => self.splice = Some(splicer),
            // Out of descriptors, say: the copying path goes on working.
            Err(e) => tracing::debug!("no zero-copy path: {e}"),
        }
    }

    /// Sends the `n` bytes waiting in the splice pipe as one binary frame.
    async fn send_spliced(&mut self, n: usize) -> io::Result<()> {
        let mut header = [0u8; MAX_SERVER_HEADER];
        let h = encode_header_before(&mut header, true, OpCode::Binary, n);
        let (Some(splicer), Some(client)) = (self.splice.as_ref(), self.client.as_tcp()) else {
            unreachable!("spliced reads happen only with a splicer and a TCP client");
        };
        splicer.send_header(client, &header[MAX_SERVER_HEADER - h..]).await?;
        splicer.drain(client, n).await?;
        self.to_client += n as u64;
        crate::metrics::METRICS.bytes_to_client.inc_by(n as u64);
        if self.config.traffic {
            eprint!("<");
        }
        Ok(())
    }

    /// A close frame in the session's framing (Hixie's carries no code).
    async fn send_close(&mut self, code: Option<u16>, reason: &str) -> io::Result<()> {
        match self.config.framing {
            Framing::Rfc6455 => self.send(ControlFrame::close(code, reason).as_bytes()).await,
            Framing::Hixie => self.send(&hixie::CLOSE).await,
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.client.write_all(bytes).await?;
        // A no-op on TCP; TLS streams buffer until flushed.
        self.client.flush().await?;
        if self.config.traffic {
            eprint!("<");
        }
        Ok(())
    }

    /// Ends our side of the client connection after the close handshake; for a
    /// client-initiated close, lets the target finish (it has seen our FIN) so that
    /// dropping the socket does not reset it while it still reads what we sent.
    async fn finish(&mut self, end: End) -> End {
        let _ = self.client.shutdown().await;
        if matches!(end, End::ClientClosed(_) | End::ProtocolError { .. }) {
            // On the heap: a buffer here would be part of every session's state, idle or not.
            let mut sink = vec![0u8; 4096];
            let _ = tokio::time::timeout(self.config.close_timeout, async {
                while matches!(self.target.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        end
    }
}

impl End {
    /// The same end, noting that the client answered our close frame.
    fn acknowledged(self) -> End {
        match self {
            Self::TargetClosed { .. } => Self::TargetClosed { acknowledged: true },
            Self::Shutdown { .. } => Self::Shutdown { acknowledged: true },
            Self::Idle { .. } => Self::Idle { acknowledged: true },
            other => other,
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
