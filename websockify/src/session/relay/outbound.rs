//! Target -> client: read target bytes (through the splice pipe where it can), frame them
//! without a copy, and write every frame the server sends; it decides when the session
//! ends.

use super::*;

/// Target -> client, and every frame the server sends.
pub(super) struct Outbound<'a, TR, CW> {
    pub(super) target: TR,
    pub(super) client: CW,
    pub(super) ctrl: &'a CtrlSlot,
    pub(super) config: &'a RelayConfig,
    pub(super) shutdown: &'a CancellationToken,
    pub(super) to_client: u64,
    pub(super) activity: &'a Activity,
    /// Bytes to read from the target at a time: doubles while reads fill the buffer.
    pub(super) read_size: usize,
    /// The zero-copy path, set up once the session shows bulk traffic (binary frames
    /// between plain TCP sockets only).
    pub(super) splice: Option<Splicer>,
    /// The operator side's end of the session, when one can come (see [`OperatorEnd`]).
    pub(super) operator_end: Option<OperatorEnd>,
}

/// What a read from the target produced.
pub(super) enum TargetRead {
    /// Bytes copied into the buffer.
    Copied(usize),
    /// Bytes waiting in the splice pipe.
    Spliced(usize),
}

impl TargetRead {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Copied(n) | Self::Spliced(n) => *n,
        }
    }
}

/// Reads the target's next bytes: through the splice pipe when there is one, else into
/// `buf[MAX_SERVER_HEADER..]`, which an idle TCP session does not hold: it is allocated
/// (`size` bytes of room) once the target has something to say.
pub(super) async fn read_target<TR: AsyncRead + AsTcp + Unpin>(
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
    pub(super) async fn run(mut self) -> (End, u64) {
        let end = self.relay().await;
        (end, self.to_client)
    }

    pub(super) async fn relay(&mut self) -> End {
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
            // One timer at a time: the close handshake's deadline while closing, else the
            // idle timeout's (a timer's room in the state of every session is ~130 bytes).
            let wake_at = match &closing {
                Some((_, deadline)) => Some(*deadline),
                None => self.config.idle_timeout.map(|t| self.activity.last() + t),
            };
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
                () = sleep_until_opt(wake_at) => {
                    if let Some((end, _)) = closing.take() {
                        return end;
                    }
                    // The idle timeout. The inbound loop may have moved data since the
                    // deadline was set.
                    if Instant::now() < self.activity.last() + self.config.idle_timeout.unwrap_or_default() {
                        continue;
                    }
                    closing = Some((End::Idle { acknowledged: false }, Instant::now() + self.config.close_timeout));
                    if let Err(e) = self.send_close(Some(close_code::GOING_AWAY), "Session idle timeout").await {
                        return End::ClientGone(Some(e));
                    }
                }
                (code, reason, by) = poll_opt(&mut self.operator_end), if closing.is_none() && self.operator_end.is_some() => {
                    self.operator_end = None;
                    if let Err(e) = self.send_close(Some(code), &reason).await {
                        return End::ClientGone(Some(e));
                    }
                    closing = Some((End::Ended { code, reason, by, acknowledged: false }, Instant::now() + self.config.close_timeout));
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
    pub(super) async fn send_data(&mut self, buf: &mut Vec<u8>, n: usize, encoded: &mut Vec<u8>) -> io::Result<()> {
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
        crate::ops::metrics::METRICS.bytes_to_client.inc_by(n as u64);
        if let Some(live) = &self.config.live {
            live.to_client.fetch_add(n as u64, Ordering::Relaxed);
        }
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

    pub(super) fn start_splicing(&mut self) {
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
    pub(super) async fn send_spliced(&mut self, n: usize) -> io::Result<()> {
        let drain = self.config.drain_timeout;
        tokio::select! {
            biased;
            sent = self.send_spliced_now(n) => sent,
            e = stall("client", drain) => Err(e),
        }
    }

    async fn send_spliced_now(&mut self, n: usize) -> io::Result<()> {
        let mut header = [0u8; MAX_SERVER_HEADER];
        let h = encode_header_before(&mut header, true, OpCode::Binary, n);
        let (Some(splicer), Some(client)) = (self.splice.as_ref(), self.client.as_tcp()) else {
            unreachable!("spliced reads happen only with a splicer and a TCP client");
        };
        splicer.send_header(client, &header[MAX_SERVER_HEADER - h..]).await?;
        splicer.drain(client, n).await?;
        self.to_client += n as u64;
        crate::ops::metrics::METRICS.bytes_to_client.inc_by(n as u64);
        if let Some(live) = &self.config.live {
            live.to_client.fetch_add(n as u64, Ordering::Relaxed);
        }
        if self.config.traffic {
            eprint!("<");
        }
        Ok(())
    }

    /// A close frame in the session's framing (Hixie's carries no code).
    pub(super) async fn send_close(&mut self, code: Option<u16>, reason: &str) -> io::Result<()> {
        match self.config.framing {
            Framing::Rfc6455 => self.send(ControlFrame::close(code, reason).as_bytes()).await,
            Framing::Hixie => self.send(&hixie::CLOSE).await,
        }
    }

    /// Writes `bytes` to the client, failing with [`Stalled`] when a write makes no
    /// progress for the drain timeout (a client that stopped reading).
    pub(super) async fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = tokio::select! {
                biased;
                n = self.client.write(bytes) => n?,
                e = stall("client", self.config.drain_timeout) => return Err(e),
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
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
    pub(super) async fn finish(&mut self, end: End) -> End {
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
    pub(super) fn acknowledged(self) -> End {
        match self {
            Self::TargetClosed { .. } => Self::TargetClosed { acknowledged: true },
            Self::Shutdown { .. } => Self::Shutdown { acknowledged: true },
            Self::Idle { .. } => Self::Idle { acknowledged: true },
            Self::Ended { code, reason, by, .. } => Self::Ended { code, reason, by, acknowledged: true },
            other => other,
        }
    }
}

/// Awaits the boxed future if there is one (never completes without).
async fn poll_opt<T>(future: &mut Option<Pin<Box<dyn Future<Output = T> + Send>>>) -> T {
    match future {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn tick_opt(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
