//! Client -> target: read client frames, unmask and decode them in place, write the
//! payload to the target; answer pings and hand closes to the outbound loop.

use super::*;

/// Client -> target.
pub(super) struct Inbound<'a, CR, TW> {
    pub(super) reader: CR,
    pub(super) target: TW,
    pub(super) ctrl: &'a CtrlSlot,
    pub(super) config: &'a RelayConfig,
    /// Payload bytes written to the target so far.
    pub(super) written: &'a AtomicU64,
    pub(super) activity: &'a Activity,
    /// A write to the target made no progress for the drain timeout: the session ends.
    pub(super) stalled: bool,
}

impl<CR: AsyncRead + AsTcp + Unpin, TW: AsyncWrite + Unpin> Inbound<'_, CR, TW> {
    /// Runs until the client's close frame, a protocol error or the end of the client's
    /// connection.
    pub(super) async fn run(mut self, mut buf: Vec<u8>) {
        let mut decoder = FrameDecoder::new(self.config);
        let mut base64 = (self.config.encoding == Encoding::Base64).then(|| (Base64Decoder::default(), Vec::new()));
        let mut held = HeldText::default();
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
                            if !held.hold(&buf[start..end], self.config.max_held_text_total) {
                                break Step::Fail(close_code::TOO_BIG, HELD_TEXT_SPENT.into());
                            }
                            if last || held.len() > self.config.max_text_hold {
                                self.write_queued(&buf, &mut queued, &mut target_ok).await;
                                self.write(held.as_slice(), &mut target_ok).await;
                                held.release();
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
                        self.ctrl.send(Ctrl::Pong(Box::new(pong))).await;
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
            // A target that reads nothing holds the client's data, and the client's close
            // frame behind it, for ever: the drain timeout ends the session.
            let step = if self.stalled { Step::Fail(close_code::INTERNAL_ERROR, TARGET_STALLED.into()) } else { step };
            match step {
                Step::Read => {}
                Step::Close(code, reason) => {
                    // The client's close frame is its last word (RFC 6455 §5.5.1), but a TLS
                    // client may still send close_notify: read on while the outbound loop
                    // finishes (it cancels this loop then, so the server closes first,
                    // §7.1.1), so that closing does not reset the connection.
                    let _ = self.target.shutdown().await;
                    self.ctrl.send(Ctrl::Close(code, reason)).await;
                    Box::pin(self.linger()).await;
                    return;
                }
                Step::Fail(code, reason) => {
                    let _ = self.target.shutdown().await;
                    self.ctrl.send(Ctrl::Fail(code, reason)).await;
                    Box::pin(self.linger()).await;
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
                    self.ctrl.send(Ctrl::Gone(Some(e))).await;
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
                    self.ctrl.send(Ctrl::Gone(None)).await;
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
                    self.ctrl.send(Ctrl::Gone(Some(e))).await;
                    return;
                }
            }
        }
    }

    /// Writes the queued ranges of `buf` to the target, in one `writev` when the target
    /// takes them all at once, and empties the queue.
    pub(super) async fn write_queued(&mut self, buf: &[u8], queued: &mut Vec<Range<usize>>, target_ok: &mut bool) {
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
    pub(super) async fn write(&mut self, bytes: &[u8], target_ok: &mut bool) {
        self.write_slices(&mut [IoSlice::new(bytes)], target_ok).await;
    }

    pub(super) async fn write_slices(&mut self, mut slices: &mut [IoSlice<'_>], target_ok: &mut bool) {
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
                e = stall("target", self.config.drain_timeout) => Err(e),
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
                    self.stalled = is_stall(&e);
                    *target_ok = false;
                    return;
                }
            }
        }
        self.written.fetch_add(total as u64, Ordering::Relaxed);
        crate::ops::metrics::METRICS.bytes_to_target.inc_by(total as u64);
        if self.config.traffic {
            eprint!(">");
        }
    }

    /// After the client's close frame or our close frame for a protocol error, keep reading
    /// (and dropping) what the client still sends until it closes, so that closing our
    /// socket does not reset the connection and destroy the close frame in flight. At most
    /// the close timeout (5 s), and cut short by the end of the session.
    pub(super) async fn linger(&mut self) {
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
pub(super) async fn stalled_after_client_left<CR: AsTcp>(reader: &CR, grace: Duration) {
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
pub(super) fn queue(buf: &mut [u8], queued: &mut Vec<Range<usize>>, range: Range<usize>) {
    match queued.last_mut() {
        Some(last) if range.len() < DIRECT_WRITE => {
            let len = range.len();
            buf.copy_within(range, last.end);
            last.end += len;
        }
        _ => queued.push(range),
    }
}

/// Counts a client's ping and pong frames per one-second window.
pub(super) struct ControlRate {
    pub(super) limit: u32,
    pub(super) window: std::time::Instant,
    pub(super) count: u32,
}

impl ControlRate {
    pub(super) fn new(limit: u32) -> Self {
        Self { limit, window: std::time::Instant::now(), count: 0 }
    }

    /// Counts one more frame; false once the window holds more than the limit.
    pub(super) fn allow(&mut self) -> bool {
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
pub(super) enum FrameDecoder {
    Rfc6455(Decoder),
    Hixie(HixieDecoder),
}

impl FrameDecoder {
    pub(super) fn new(config: &RelayConfig) -> Self {
        match config.framing {
            Framing::Rfc6455 => Self::Rfc6455(Decoder::new(config.decoder)),
            Framing::Hixie => Self::Hixie(HixieDecoder::new(config.decoder.max_message)),
        }
    }

    pub(super) fn decode(&mut self, buf: &mut [u8]) -> Result<(Event, usize), ProtocolError> {
        match self {
            Self::Rfc6455(d) => d.decode(buf),
            Self::Hixie(d) => d.decode(buf),
        }
    }
}

pub(super) enum Step {
    Read,
    Close(Option<u16>, String),
    Fail(u16, String),
}
