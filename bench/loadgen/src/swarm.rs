//! Many sessions at once, on an async runtime: the scale scenario (thousands
//! of mostly idle echo sessions) and the session-rate scenario (connect,
//! handshake, one echo, close, as fast as the proxy takes them).

use crate::wire::{self, Deframer, Url};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::timeout;

/// One plain (no TLS) session: TCP or WebSocket.
struct Session {
    tcp: TcpStream,
    ws: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    deframer: Deframer,
}

impl Session {
    async fn connect(url: &Url, nonce: u64) -> io::Result<Session> {
        let tcp = TcpStream::connect(url.addr()).await?;
        tcp.set_nodelay(true)?;
        // Small: 9,000 of them live in this process.
        let mut s = Session { tcp, ws: url.ws, buf: vec![0; 2048], start: 0, end: 0, deframer: Deframer::new(url.ws) };
        if url.ws {
            let (request, accept) = wire::handshake_request(url, nonce);
            s.tcp.write_all(&request).await?;
            let head = loop {
                if let Some(i) = wire::head_end(&s.buf[..s.end]) {
                    break i;
                }
                if s.end == s.buf.len() {
                    return Err(io::Error::other("handshake: response head too long"));
                }
                s.fill().await?;
            };
            wire::check_handshake_response(&s.buf[..head], &accept)?;
            s.start = head;
        }
        Ok(s)
    }

    async fn fill(&mut self) -> io::Result<()> {
        let k = self.tcp.read(&mut self.buf[self.end..]).await?;
        if k == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by peer"));
        }
        self.end += k;
        Ok(())
    }

    /// Reads exactly `n` payload bytes into `out`.
    async fn read_payload(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        while out.len() < n {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                self.fill().await?;
            }
            let want = (n - out.len()) as u64;
            let (used, _) = self.deframer.feed(&self.buf[self.start..self.end], want, Some(out))?;
            self.start += used;
        }
        Ok(())
    }

    /// A close frame (WebSocket) and FIN, then wait for the server's FIN.
    async fn close(mut self) -> io::Result<()> {
        if self.ws {
            self.tcp.write_all(&wire::close_frame()).await?;
        }
        self.tcp.shutdown().await?;
        let mut buf = [0u8; 512];
        while self.tcp.read(&mut buf).await? > 0 {}
        Ok(())
    }

    /// The target's `ECHO` request, then one message echoed: the proxy has
    /// connected to the target and the session works.
    async fn start_echo(&mut self, msg: &[u8], payload: &[u8]) -> io::Result<()> {
        let mut first = wire::message(self.ws, b"ECHO\n");
        first.extend_from_slice(msg);
        self.tcp.write_all(&first).await?;
        let mut back = Vec::with_capacity(payload.len());
        self.read_payload(payload.len(), &mut back).await?;
        if back != payload {
            return Err(io::Error::other("echo came back different"));
        }
        Ok(())
    }
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}

#[derive(Default)]
struct Outcome {
    connected: bool,
    sent: u64,
    received: u64,
    latencies_us: Vec<u32>,
    error: Option<String>,
}

/// `sessions` sessions connect (at most `parallel` handshakes in flight),
/// each does one echo, then all stay idle for `settle` seconds (the caller
/// measures the proxy's memory then: "READY" is printed when they are all
/// up), then each echoes one `size`-byte message every `interval`, spread
/// evenly over the interval, for `seconds`.
pub fn scale(
    url: &Url,
    sessions: usize,
    seconds: f64,
    interval: Duration,
    size: usize,
    settle: f64,
    parallel: usize,
) -> io::Result<String> {
    runtime()?.block_on(async move {
        let gate = Arc::new(Semaphore::new(parallel));
        let (go_tx, go_rx) = watch::channel(None::<Instant>);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
        let rounds = (seconds / interval.as_secs_f64()).round().max(1.0) as u64;
        let t_connect = Instant::now();
        let mut tasks = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let (url, gate, ready, mut go) = (url.clone(), gate.clone(), ready_tx.clone(), go_rx.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Outcome::default();
                let payload = wire::pattern(i, size);
                let msg = wire::message(url.ws, &payload);
                let permit = gate.acquire().await.expect("semaphore is never closed");
                let conn = timeout(Duration::from_secs(30), async {
                    let mut s = Session::connect(&url, i as u64).await?;
                    s.start_echo(&msg, &payload).await?;
                    Ok::<_, io::Error>(s)
                })
                .await
                .unwrap_or_else(|_| Err(io::Error::other("connect timed out after 30 s")));
                drop(permit);
                let _ = ready.send(conn.is_ok());
                let mut s = match conn {
                    Ok(s) => s,
                    Err(e) => {
                        out.error = Some(format!("connect: {e}"));
                        return out;
                    }
                };
                out.connected = true;
                let t0 = loop {
                    if let Some(t) = *go.borrow() {
                        break t;
                    }
                    if go.changed().await.is_err() {
                        return out;
                    }
                };
                let first = t0 + interval.mul_f64(i as f64 / sessions as f64);
                let mut back = Vec::with_capacity(size);
                for k in 0..rounds {
                    tokio::time::sleep_until((first + interval * k as u32).into()).await;
                    let t = Instant::now();
                    out.sent += 1;
                    let echoed = timeout(Duration::from_secs(10), async {
                        s.tcp.write_all(&msg).await?;
                        s.read_payload(size, &mut back).await
                    })
                    .await
                    .unwrap_or_else(|_| Err(io::Error::other("no echo within 10 s")));
                    if let Err(e) = echoed {
                        out.error = Some(format!("echo: {e}"));
                        return out;
                    }
                    if back != payload {
                        out.error = Some("echo came back different".into());
                        return out;
                    }
                    out.received += 1;
                    out.latencies_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                let _ = timeout(Duration::from_secs(5), s.close()).await;
                out
            }));
        }
        drop(ready_tx);
        let (mut up, mut failed) = (0usize, 0usize);
        while let Some(ok) = ready_rx.recv().await {
            if ok {
                up += 1
            } else {
                failed += 1
            }
            if up + failed == sessions {
                break;
            }
        }
        let ramp = t_connect.elapsed().as_secs_f64();
        println!("READY {up} {failed}");
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let _ = go_tx.send(Some(Instant::now() + Duration::from_millis(50)));
        let mut all = Outcome::default();
        let (mut connected, mut errors, mut first_error) = (0u64, 0u64, None);
        for t in tasks {
            let o = t.await.map_err(io::Error::other)?;
            connected += o.connected as u64;
            all.sent += o.sent;
            all.received += o.received;
            all.latencies_us.extend(o.latencies_us);
            if let Some(e) = o.error {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
        Ok(format!(
            "{{\"sessions\": {sessions}, \"connected\": {connected}, \"expected\": {}, \
             \"sent\": {}, \"received\": {}, \"errors\": {errors}, \"first_error\": {}, \
             \"ramp_secs\": {ramp:.3}, \"latencies_us\": {}}}",
            sessions as u64 * rounds,
            all.sent,
            all.received,
            crate::json_str(first_error.as_deref()),
            crate::json_list(&all.latencies_us),
        ))
    })
}

/// Sessions per second: `parallel` workers each loop connect + handshake +
/// one `size`-byte echo + close (waiting for the server's FIN) for `seconds`.
pub fn rate(url: &Url, seconds: f64, parallel: usize, size: usize) -> io::Result<String> {
    runtime()?.block_on(async move {
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs_f64(seconds);
        let mut workers = Vec::new();
        for w in 0..parallel {
            let (url, done, errors) = (url.clone(), done.clone(), errors.clone());
            workers.push(tokio::spawn(async move {
                let payload = wire::pattern(w, size);
                let msg = wire::message(url.ws, &payload);
                let mut lat = Vec::new();
                let mut first_error = None;
                let mut nonce = w as u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    nonce += 1 << 32;
                    let r = timeout(Duration::from_secs(10), async {
                        let mut s = Session::connect(&url, nonce).await?;
                        s.start_echo(&msg, &payload).await?;
                        s.close().await
                    })
                    .await
                    .unwrap_or_else(|_| Err(io::Error::other("session took over 10 s")));
                    match r {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        Err(e) => {
                            first_error.get_or_insert(e.to_string());
                            // A proxy that refuses everything must not spin.
                            if errors.fetch_add(1, Ordering::Relaxed) > 1000 {
                                break;
                            }
                        }
                    }
                }
                (lat, first_error)
            }));
        }
        let mut lat = Vec::new();
        let mut first_error = None;
        for w in workers {
            let (l, e) = w.await.map_err(io::Error::other)?;
            lat.extend(l);
            if first_error.is_none() {
                first_error = e;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        Ok(format!(
            "{{\"sessions\": {}, \"errors\": {}, \"secs\": {secs:.4}, \"first_error\": {}, \
             \"latencies_us\": {}}}",
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            crate::json_str(first_error.as_deref()),
            crate::json_list(&lat),
        ))
    })
}
