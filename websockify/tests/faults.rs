//! Faults the proxy must survive (issue 8), each with real sockets against the real binary:
//! targets that refuse, reset, never read or half-close; clients that vanish, read nothing
//! or announce a 2^63-byte frame; a target name that does not resolve; running out of file
//! descriptors at accept; a full disk while recording.
//!
//! Every test routes by token (`TokenFile`) so that one proxy serves both the faulty
//! session and a legitimate echo session (the probe), which must keep working. Each checks
//! the precise log line, the close code or status, and (where it matters) the proxy's
//! memory, read from /proc. The numbers are printed (`cargo test --test faults --
//! --nocapture`) and quoted in docs/reliability.md. The token source being down is
//! covered in tests/tokens.rs and tests/token_redis.rs.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::measure::{EchoProbe, ProbeThread, Sampler, fd_count, rss_kib};
use common::pki::TempDir;
use common::raw::{frame, raw_session, read_close};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// A proxy choosing targets by token from a TokenFile written with `routes`; the token
/// `echo` always leads to an echo target, for the probe.
struct Routed {
    proxy: Proxy,
    _dir: TempDir,
}

impl Routed {
    async fn start(routes: &[(&str, String)], extra: &[&str]) -> Self {
        Self::start_wrapped(routes, extra, &[]).await
    }

    /// Like [`Routed::start`], the proxy started through `wrapper` (such as `prlimit ...`).
    async fn start_wrapped(routes: &[(&str, String)], extra: &[&str], wrapper: &[&str]) -> Self {
        let echo = echo_target("127.0.0.1:0").await;
        let dir = TempDir::new("faults");
        let mut text = format!("echo: {echo}\n");
        for (token, target) in routes {
            text.push_str(&format!("{token}: {target}\n"));
        }
        std::fs::write(dir.path("tokens"), text).unwrap();
        let tokens = dir.str("tokens");
        let mut args = vec!["--token-plugin", "TokenFile", "--token-source", &tokens];
        args.extend_from_slice(extra);
        args.push("127.0.0.1:0");
        let proxy = Proxy::start_wrapped(wrapper, &args, &[]);
        Self { proxy, _dir: dir }
    }

    fn url(&self, token: &str) -> String {
        format!("ws://{}{}", self.proxy.addr, self.path(token))
    }

    fn path(&self, token: &str) -> String {
        format!("/websockify?token={token}")
    }

    fn pid(&self) -> u32 {
        self.proxy.child.id()
    }

    async fn probe(&self) -> EchoProbe {
        EchoProbe::connect(&self.url("echo")).await
    }
}

/// The close frame's code and reason; then answers it (tungstenite replies when polled)
/// and reads to the end, so that the proxy does not wait its close timeout for us.
async fn close_code_of(ws: &mut common::measure::Ws) -> (u16, String) {
    let mut close = None;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("close within 10 s") {
        match msg {
            Ok(Message::Close(Some(CloseFrame { code, reason }))) => {
                close = Some((u16::from(code), reason.to_string()))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    close.expect("a close frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_refuses() {
    let port = closed_port();
    let r = Routed::start(&[("refused", format!("127.0.0.1:{port}"))], &[]).await;
    let mut probe = r.probe().await;
    let (mut ws, _) = connect_async(r.url("refused")).await.unwrap();
    assert_eq!(close_code_of(&mut ws).await, (1011, "Failed to connect to downstream server".into()));
    r.proxy.wait_log(
        &format!("failed to connect to 127.0.0.1:{port}: connecting to 127.0.0.1:{port}: Connection refused"),
        Duration::from_secs(5),
    );
    let rtt = probe.round_trip().await;
    eprintln!("target_refuses: 1011 at once; probe round trip after it {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_name_does_not_resolve() {
    let r = Routed::start(&[("dns", "nonexistent.invalid:5900".into())], &[]).await;
    let mut probe = r.probe().await;
    let started = Instant::now();
    let (mut ws, _) = connect_async(r.url("dns")).await.unwrap();
    assert_eq!(close_code_of(&mut ws).await, (1011, "Failed to connect to downstream server".into()));
    r.proxy.wait_log(
        "failed to connect to nonexistent.invalid:5900: cannot resolve nonexistent.invalid: ",
        Duration::from_secs(5),
    );
    probe.round_trip().await;
    eprintln!("target_name_does_not_resolve: 1011 after {:?}", started.elapsed());
}

/// A target that sends `data`, waits for `go`, then resets the connection (RST, SO_LINGER 0).
async fn resetting_target(data: Vec<u8>, go: Arc<tokio::sync::Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(&data).await.unwrap();
        go.notified().await;
        s.set_zero_linger().unwrap();
        drop(s);
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_resets_mid_stream() {
    let go = Arc::new(tokio::sync::Notify::new());
    let data = random_bytes(256 << 10, 11);
    let target = resetting_target(data.clone(), go.clone()).await;
    let r = Routed::start(&[("reset", target.to_string())], &[]).await;
    let mut probe = r.probe().await;
    let (mut ws, _) = connect_async(r.url("reset")).await.unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sha256_hex(&got), sha256_hex(&data), "everything before the reset arrived");
    go.notify_one();
    assert_eq!(close_code_of(&mut ws).await, (1011, "Target connection failed".into()));
    r.proxy.wait_log("session closed: target connection failed: Connection reset by peer", Duration::from_secs(5));
    probe.round_trip().await;
}

/// A target that accepts and never reads; keeps its sockets open until the test ends.
async fn deaf_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

/// Writes `frame` in a loop for `time` or until a write stalls for the rest of it (the
/// proxy stopped reading); returns the bytes of the whole frames the proxy took.
async fn push_for(s: &mut TcpStream, frame: &[u8], time: Duration) -> u64 {
    let deadline = Instant::now() + time;
    let mut sent = 0u64;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.write_all(frame)).await {
            Ok(Ok(())) => sent += frame.len() as u64,
            Ok(Err(e)) => panic!("write failed after {sent} bytes: {e}"),
            Err(_) => break,
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_never_reads_memory_stays_bounded() {
    let target = deaf_target().await;
    let probe = ProbeThread::start();
    let r = Routed::start(&[("deaf", target.to_string()), ("probe", probe.echo.to_string())], &[]).await;
    probe.connect(&r.url("probe")).await;
    let baseline = probe.sample(200).await;
    let sampler = Sampler::start(r.pid());
    // Two clients pushing 64 KiB frames at a target that reads nothing.
    let big = frame(0x2, &vec![0x42; 64 << 10]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut pushers = Vec::new();
    for _ in 0..2 {
        let mut s = raw_session(r.proxy.addr, &r.path("deaf")).await;
        let big = big.clone();
        pushers.push(tokio::spawn(async move {
            let sent = push_for(&mut s, &big, Duration::from_secs(4)).await;
            (sent, s)
        }));
    }
    let latency = probe.sample_until(stop.clone());
    let mut sessions = Vec::new();
    let mut sent = Vec::new();
    for p in pushers {
        let (n, s) = p.await.unwrap();
        sent.push(n);
        sessions.push(s);
    }
    stop.store(true, Ordering::Relaxed);
    let latency = latency.await.unwrap();
    let usage = sampler.stop();
    eprintln!("target_never_reads: clients pushed {sent:?} bytes in 4 s before the proxy stopped reading");
    eprintln!("target_never_reads: proxy {usage}");
    eprintln!("target_never_reads: probe baseline {baseline}; during {latency}");
    // Kernel socket buffers hold a few MB per connection; the proxy holds one read buffer
    // per direction. Anything like the pushed volume would show as RSS.
    assert!(usage.rss_growth_mib() < 32.0, "{usage}");
    assert!(sent.iter().all(|&n| n < 64 << 20), "the proxy kept reading: {sent:?}\n{}", r.proxy.log());
    assert!(latency.within_twice(&baseline, latency_slack()), "{latency} vs {baseline}");
    drop(sessions);
}

/// A client that resets its connection (a closed browser tab with data still unread)
/// ends the session although the proxy is blocked writing to the target: the relay
/// watches the client while it waits, and gives the target the close timeout (5 s) to
/// take the data before it gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_target_session_ends_when_its_client_resets() {
    deaf_target_session_ends(&[], Leave::Reset, Duration::from_secs(12)).await;
}

/// A client that closes in order cannot be seen to leave: its FIN waits in its own send
/// queue behind the bytes the proxy has not read (TCP delivers in order), so only
/// `--session-idle-timeout` ends such a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_target_session_ends_at_the_session_idle_timeout() {
    deaf_target_session_ends(&["--session-idle-timeout", "2"], Leave::Close, Duration::from_secs(10)).await;
}

/// Security review, finding 11: a client that closes in order while the proxy is stuck
/// writing to a target that reads nothing (its FIN waits behind the unread data) no longer
/// keeps the session: a write to the target that makes no progress for --drain-timeout
/// ends it (and the client hears 1011 "Target stopped reading" if it is still there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_target_session_ends_at_the_drain_timeout() {
    deaf_target_session_ends(&["--drain-timeout", "2"], Leave::Close, Duration::from_secs(10)).await;
}

/// The other direction: a target that sends and then closes while its client reads
/// nothing; the proxy's writes to the client make no progress, and the drain timeout ends
/// the session instead of holding it (and the target's data) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_reads_nothing_is_ended_at_the_drain_timeout() {
    let target = source_target(std::sync::Arc::new(vec![0x17; 32 << 20])).await;
    let r = Routed::start(&[("source", target.to_string())], &["--drain-timeout", "1"]).await;
    let _s = raw_session(r.proxy.addr, &r.path("source")).await;
    r.proxy.wait_log("the client read nothing for 1 s (--drain-timeout)", Duration::from_secs(15));
}

/// A live client of a deaf target is ended at the drain timeout and told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_target_with_a_live_client_is_ended_and_told() {
    let target = deaf_target().await;
    let r = Routed::start(&[("deaf", target.to_string())], &["--drain-timeout", "1"]).await;
    let mut s = raw_session(r.proxy.addr, &r.path("deaf")).await;
    push_for(&mut s, &frame(0x2, &vec![0x42; 64 << 10]), Duration::from_secs(2)).await;
    r.proxy.wait_log("Target stopped reading", Duration::from_secs(10));
    r.proxy.wait_log("session closed: ", Duration::from_secs(10));
}

enum Leave {
    Close,
    Reset,
}

/// A client pushes at a target that reads nothing until the proxy stops reading, then
/// vanishes (an orderly FIN, then nothing): the session must end within `limit` and
/// release the target connection, although the proxy is stuck writing to the target.
async fn deaf_target_session_ends(extra: &[&str], leave: Leave, limit: Duration) {
    let target = deaf_target().await;
    let r = Routed::start(&[("deaf", target.to_string())], extra).await;
    let fds_before = fd_count(r.pid());
    let mut s = raw_session(r.proxy.addr, &r.path("deaf")).await;
    let sent = push_for(&mut s, &frame(0x2, &vec![0x42; 64 << 10]), Duration::from_secs(2)).await;
    if let Leave::Reset = leave {
        // SO_LINGER 0: close() sends RST.
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    }
    drop(s);
    let start = Instant::now();
    while fd_count(r.pid()) > fds_before && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fds = fd_count(r.pid());
    eprintln!(
        "deaf target {extra:?}: {sent} bytes taken; after the client left, fds {fds} (before {fds_before}) after {:?}",
        start.elapsed()
    );
    assert!(fds <= fds_before, "the session outlives its client:\n{}", r.proxy.log());
    r.proxy.wait_log("session closed: ", Duration::from_secs(1));
}

/// A target that answers the client's first `read_first` bytes with `reply`, shuts its
/// write side (half-close), then reads to the end and reports how much it got in all.
async fn half_closing_target(
    read_first: usize,
    reply: &'static [u8],
) -> (SocketAddr, tokio::sync::oneshot::Receiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; read_first];
        s.read_exact(&mut first).await.unwrap();
        s.write_all(reply).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        let _ = tx.send((read_first + rest.len()) as u64);
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_half_closes_nothing_lost() {
    let (target, total) = half_closing_target(100_000, b"bye").await;
    let r = Routed::start(&[("half", target.to_string())], &[]).await;
    let mut probe = r.probe().await;
    let (mut ws, _) = connect_async(r.url("half")).await.unwrap();
    // All of it is sent before the client can see the target's close.
    let data = random_bytes(1_100_000, 12);
    for chunk in data.chunks(50_000) {
        ws.feed(Message::binary(chunk.to_vec())).await.unwrap();
    }
    ws.flush().await.unwrap();
    let mut got = Vec::new();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            Some(Ok(Message::Close(f))) => break f,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(got, b"bye");
    let close = close.expect("close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (1000, "Target closed"));
    // Drive the client side of the close handshake to its end.
    while let Some(Ok(_)) = ws.next().await {}
    let total = tokio::time::timeout(Duration::from_secs(10), total).await.expect("target finishes").unwrap();
    r.proxy.wait_log("session closed: target closed", Duration::from_secs(5));
    eprintln!("target_half_closes: the target received {total} of {} bytes sent", data.len());
    assert_eq!(total, data.len() as u64, "bytes the client sent before the close were lost");
    probe.round_trip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disappears_without_close() {
    let (target, mut seen) = sink_target().await;
    let r = Routed::start(&[("sink", target.to_string())], &[]).await;
    let mut probe = r.probe().await;
    let data = random_bytes(1 << 20, 13);

    // An orderly TCP FIN without a close frame: everything sent arrives, then the target
    // connection is closed.
    let mut s = raw_session(r.proxy.addr, &r.path("sink")).await;
    for chunk in data.chunks(100_000) {
        s.write_all(&frame(0x2, chunk)).await.unwrap();
    }
    s.shutdown().await.unwrap();
    drop(s);
    let got = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.expect("target closed").unwrap();
    assert_eq!((got.bytes, got.sha256), (data.len() as u64, sha256_hex(&data)));
    r.proxy.wait_log("session closed: client disconnected without a close frame", Duration::from_secs(5));

    // A reset.
    let mut s = raw_session(r.proxy.addr, &r.path("sink")).await;
    s.write_all(&frame(0x2, b"abc")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.set_zero_linger().unwrap();
    drop(s);
    let got = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.expect("target closed").unwrap();
    assert_eq!(got.bytes, 3);
    r.proxy.wait_log("session closed: client connection failed: Connection reset by peer", Duration::from_secs(5));
    probe.round_trip().await;
}

/// A target that writes as fast as it can to every connection; counts what it wrote.
async fn flooding_target(written: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let written = written.clone();
            tokio::spawn(async move {
                let chunk = vec![0x17u8; 64 << 10];
                while let Ok(n) = s.write(&chunk).await {
                    written.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reads_nothing_memory_stays_bounded() {
    let written = Arc::new(AtomicU64::new(0));
    let target = flooding_target(written.clone()).await;
    let probe = ProbeThread::start();
    let r = Routed::start(&[("flood", target.to_string()), ("probe", probe.echo.to_string())], &[]).await;
    probe.connect(&r.url("probe")).await;
    let baseline = probe.sample(200).await;
    let sampler = Sampler::start(r.pid());
    // Two clients that complete the handshake, then read nothing (zero window).
    let silent = [raw_session(r.proxy.addr, &r.path("flood")).await, raw_session(r.proxy.addr, &r.path("flood")).await];
    // The kernel's buffers on the way (target, proxy, client; tens of MB on loopback) fill
    // first: wait until the target is stuck (no byte written for 500 ms; on a busy machine
    // that takes longer than on a quiet one). A proxy that keeps reading never gets there.
    let filling = Instant::now();
    let mut after_fill = written.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = written.load(Ordering::Relaxed);
        if now == after_fill {
            break;
        }
        assert!(filling.elapsed() < Duration::from_secs(20), "the proxy kept reading from the target: {now} bytes");
        after_fill = now;
    }
    let filled_in = filling.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let latency = probe.sample_until(stop);
    stopper.await.unwrap();
    let latency = latency.await.unwrap();
    let usage = sampler.stop();
    let total = written.load(Ordering::Relaxed);
    eprintln!(
        "client_reads_nothing: the target wrote {:.1} MB into 2 sessions whose clients read nothing, and was stuck after {filled_in:?}; {:.1} MB in the 3 s after that",
        total as f64 / 1e6,
        (total - after_fill) as f64 / 1e6
    );
    eprintln!("client_reads_nothing: proxy {usage}");
    eprintln!("client_reads_nothing: probe baseline {baseline}; during {latency}");
    assert!(usage.rss_growth_mib() < 32.0, "{usage}");
    assert!(total - after_fill < 1 << 20, "the proxy kept reading from the target: {total} bytes");
    assert!(latency.within_twice(&baseline, latency_slack()), "{latency} vs {baseline}");
    drop(silent);
    r.proxy.wait_log("session closed: client", Duration::from_secs(10));
    probe.sample(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_header_of_two_to_the_63_bytes() {
    let target = echo_target("127.0.0.1:0").await;
    let r = Routed::start(&[("e", target.to_string())], &[]).await;
    let mut probe = r.probe().await;
    let rss_before = rss_kib(r.pid());
    // 2^63 (the most significant bit must be 0: 1002) and 2^63 - 1 (over the message
    // limit: 1009); each announced, then nothing sent.
    for (len, code) in [(1u64 << 63, 1002), ((1u64 << 63) - 1, 1009)] {
        let mut s = raw_session(r.proxy.addr, &r.path("e")).await;
        let mut header = vec![0x82, 0xff];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        s.write_all(&header).await.unwrap();
        let start = Instant::now();
        let (_, got) = read_close(&mut s, Duration::from_secs(2)).await;
        eprintln!("frame header of {len} bytes: close {got:?} after {:?}", start.elapsed());
        assert_eq!(got, Some(code));
    }
    r.proxy.wait_log("protocol error, closed with 1002", Duration::from_secs(2));
    r.proxy.wait_log("protocol error, closed with 1009", Duration::from_secs(2));
    let grown = rss_kib(r.pid()).saturating_sub(rss_before);
    assert!(grown < 4096, "RSS grew {grown} KiB");
    probe.round_trip().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_at_accept() {
    // Few descriptors: the runtime, the listener, the probe's two, and a handful more.
    let r = Routed::start_wrapped(&[], &[], &["prlimit", "--nofile=40:40", "--"]).await;
    let mut probe = r.probe().await;
    let fds_before = fd_count(r.pid());
    // Connections that send nothing hold a descriptor each until the handshake deadline;
    // the rest wait in the backlog and every accept fails with EMFILE.
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(TcpStream::connect(r.proxy.addr).await.unwrap());
    }
    r.proxy.wait_log("accept failed: Too many open files (os error 24); pausing 100ms", Duration::from_secs(5));
    let sampler = Sampler::start(r.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let usage = sampler.stop();
    // The session that was already open keeps working.
    let rtt = probe.round_trip().await;
    let failures = r.proxy.log().matches("accept failed").count();
    eprintln!(
        "out_of_fds: {fds_before} fds before, limit 40; proxy {usage}; {failures} accept-failure lines; probe {rtt:?}"
    );
    assert!(usage.cpu_share < 0.25, "the accept loop spins: {usage}");
    // Once the connections go, new sessions are served again.
    drop(idle);
    let start = Instant::now();
    let mut fresh = loop {
        if let Ok(Ok((ws, _))) = tokio::time::timeout(Duration::from_secs(2), connect_async(r.url("echo"))).await {
            break ws;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "not serving again:\n{}", r.proxy.log());
    };
    fresh.send(Message::binary(b"again".to_vec())).await.unwrap();
    assert_eq!(fresh.next().await.unwrap().unwrap(), Message::binary(b"again".to_vec()));
    eprintln!("out_of_fds: serving again {:?} after the connections closed", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_while_recording() {
    let dir = TempDir::new("recfull");
    // The disk refuses the recording part way: a file size limit of 256 KiB (recordings
    // are created fresh, never through a link, so /dev/full cannot stand in any more);
    // the proxy handles SIGXFSZ, so the write fails with EFBIG instead of killing it.
    let base = dir.str("rec");
    let target = echo_target("127.0.0.1:0").await;
    let r = Routed::start_wrapped(
        &[("rec", target.to_string())],
        &["--record", &base],
        &["prlimit", "--fsize=262144", "--"],
    )
    .await;
    let (ws, _) = connect_async(r.url("rec")).await.unwrap();
    let data = random_bytes(2 << 20, 14);
    let (mut tx, mut rx) = ws.split();
    let sender = {
        let data = data.clone();
        tokio::spawn(async move {
            for chunk in data.chunks(64 << 10) {
                tx.send(Message::binary(chunk.to_vec())).await.unwrap();
            }
            tx
        })
    };
    let mut got = Vec::new();
    while got.len() < data.len() {
        match tokio::time::timeout(Duration::from_secs(10), rx.next()).await.unwrap().unwrap().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    let mut ws = sender.await.unwrap().reunite(rx).unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    // Closing our socket ends the proxy's wait for it (see the session-end line below).
    drop(ws);
    r.proxy.wait_log(&format!("recording to {base}."), Duration::from_secs(5));
    r.proxy.wait_log("failed, not recording the rest: File too large (os error 27)", Duration::from_secs(5));
    r.proxy.wait_log(
        "session closed: client closed (no code) to_target=2097152 to_client=2097152",
        Duration::from_secs(5),
    );
}
