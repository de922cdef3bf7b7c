//! Attacks on the proxy (issue 8), bounded in time and on loopback only: slowloris, a
//! handshake flood, a ping flood, many tiny frames, oversized request heads, TLS garbage
//! and a TLS renegotiation attempt. The web server's traversal and redirect table is in
//! tests/web.rs.
//!
//! During each attack a legitimate session (an echo probe through the same proxy) keeps
//! measuring its round trips; the proxy's RSS and CPU are sampled from /proc. Each test
//! prints its numbers (`cargo test --test attack -- --nocapture`; docs/reliability.md
//! quotes them) and asserts generous bounds: RSS growth well under what the attack sends,
//! the probe's p99 within twice its baseline plus slack for a shared 2-core machine.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::measure::{ProbeThread, Sample, Sampler, Usage};
use common::pki::{Ca, TempDir};
use common::raw::{frame, raw_session, read_close};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The attack tests run one at a time: each would otherwise measure the others.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `attack` while the probe measures round trips and a sampler watches the proxy.
async fn under_attack<F: std::future::Future>(
    proxy: &Proxy,
    probe: &ProbeThread,
    attack: F,
) -> (F::Output, Sample, Usage) {
    let sampler = Sampler::start(proxy.child.id());
    let stop = Arc::new(AtomicBool::new(false));
    let latency = probe.sample_until(stop.clone());
    let out = attack.await;
    stop.store(true, Ordering::Relaxed);
    let latency = latency.await.expect("probe thread");
    (out, latency, sampler.stop())
}

/// The proxy (with `args`, in front of the probe's echo target) and its probe, connected,
/// with the probe's baseline.
async fn start_with_probe(args: &[&str]) -> (Proxy, ProbeThread, Sample) {
    let probe = ProbeThread::start();
    let echo = probe.echo.to_string();
    let mut all = args.to_vec();
    all.extend(["127.0.0.1:0", echo.as_str()]);
    let proxy = Proxy::start(&all);
    let baseline = baseline(&probe, &proxy.url()).await;
    (proxy, probe, baseline)
}

async fn baseline(probe: &ProbeThread, url: &str) -> Sample {
    probe.connect(url).await;
    probe.sample(20).await; // warm up
    probe.sample(200).await
}

fn report(name: &str, what: &str, baseline: &Sample, during: &Sample, usage: &Usage) {
    eprintln!("{name}: {what}");
    eprintln!("{name}: proxy {usage}");
    eprintln!("{name}: probe baseline {baseline}");
    eprintln!("{name}: probe during   {during}");
}

fn check(name: &str, baseline: &Sample, during: &Sample, usage: &Usage, rss_mib: f64) {
    assert!(usage.rss_growth_mib() < rss_mib, "{name}: {usage}");
    assert!(during.within_twice(baseline, latency_slack()), "{name}: probe {during} against baseline {baseline}");
}

/// A client that sends the start of a request head and then one byte every 300 ms, forever;
/// returns how long the proxy let it live, or `None` if it was still open after `give_up`.
async fn slow_client(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.ok()?;
    if s.write_all(b"GET /websockify HTTP/1.1\r\nHost: x\r\n").await.is_err() {
        return Some(start.elapsed());
    }
    let mut buf = [0u8; 1024];
    let mut n = 0u64;
    loop {
        tokio::select! {
            r = s.read(&mut buf) => if !matches!(r, Ok(k) if k > 0) { return Some(start.elapsed()) },
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                let byte = if n % 8 == 7 { b"\n" } else { b"a" };
                n += 1;
                if s.write_all(byte).await.is_err() {
                    return Some(start.elapsed());
                }
            }
        }
        if start.elapsed() > give_up {
            return None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris() {
    let _serial = SERIAL.lock().await;
    const CLIENTS: usize = 2000;
    let (proxy, probe, baseline) = start_with_probe(&["--handshake-timeout", "2"]).await;
    let addr = proxy.addr;
    let ((lived, opened), during, usage) = under_attack(&proxy, &probe, async move {
        let mut tasks = Vec::new();
        let start = Instant::now();
        for i in 0..CLIENTS {
            tasks.push(tokio::spawn(slow_client(addr, Duration::from_secs(8))));
            // Open them over about half a second, not all into the backlog at once.
            if i % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let opened = start.elapsed();
        let mut lived = Vec::new();
        for t in tasks {
            lived.push(t.await.unwrap());
        }
        (lived, opened)
    })
    .await;
    let still_open = lived.iter().filter(|l| l.is_none()).count();
    let longest = lived.iter().flatten().max().copied().unwrap_or_default();
    report(
        "slowloris",
        &format!(
            "{CLIENTS} connections trickling a header byte every 300 ms (opened in {opened:?}): {still_open} still open after 8 s, the longest lived {longest:?} (deadline 2 s)"
        ),
        &baseline,
        &during,
        &usage,
    );
    assert_eq!(still_open, 0);
    assert!(longest < Duration::from_secs(5), "{longest:?}");
    let timeouts = proxy.log().matches("bad request: request head not complete within").count();
    eprintln!("slowloris: {timeouts} \"request head not complete\" log lines");
    assert!(timeouts >= CLIENTS * 9 / 10, "{timeouts} timeouts logged");
    check("slowloris", &baseline, &during, &usage, 100.0);
}

/// Handshakes (upgrade, 101, close, EOF) back to back on `conns` connections for `time`.
async fn handshake_loop(addr: SocketAddr, time: Duration, done: Arc<AtomicU64>) {
    let end = Instant::now() + time;
    while Instant::now() < end {
        let mut s = raw_session(addr, "/websockify").await;
        s.write_all(&frame(0x8, &1000u16.to_be_bytes())).await.unwrap();
        let (_, code) = read_close(&mut s, Duration::from_secs(5)).await;
        assert_eq!(code, Some(1000));
        done.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_flood() {
    let _serial = SERIAL.lock().await;
    let (proxy, probe, baseline) = start_with_probe(&[]).await;
    let addr = proxy.addr;
    let done = Arc::new(AtomicU64::new(0));
    let count = done.clone();
    let (_, during, usage) = under_attack(&proxy, &probe, async move {
        let tasks: Vec<_> =
            (0..16).map(|_| tokio::spawn(handshake_loop(addr, Duration::from_secs(3), count.clone()))).collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    let n = done.load(Ordering::Relaxed);
    report(
        "handshake_flood",
        &format!(
            "16 connections doing upgrade + close back to back for 3 s: {n} sessions ({:.0}/s), each with its own target connection",
            n as f64 / usage.elapsed.as_secs_f64()
        ),
        &baseline,
        &during,
        &usage,
    );
    assert!(n > 100, "only {n} handshakes");
    check("handshake_flood", &baseline, &during, &usage, 100.0);
}

/// The name of the control-frame rate option, if this build has one.
fn control_rate_option() -> Option<&'static str> {
    let (_, help) = run_proxy(&["--help"]);
    ["--max-control-rate", "--control-frame-rate", "--max-control-frames"].into_iter().find(|o| help.contains(o))
}

/// Pings as fast as the socket takes them for `time`, reading (and dropping) the pongs if
/// `read`; returns the bytes of pings written and the close code the proxy sent, if any.
async fn ping_flood(addr: SocketAddr, time: Duration, read: bool) -> (u64, Option<u16>) {
    let s = raw_session(addr, "/websockify").await;
    let (mut r, mut w) = s.into_split();
    let batch: Vec<u8> = (0..1000).flat_map(|_| frame(0x9, &[0x70; 125])).collect();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = Vec::new();
        if !read {
            // A client that reads nothing until the flood ends.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        // Keep the tail to find a close frame at the end.
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.len() > 1 << 20 {
                seen.drain(..seen.len() - 4096);
            }
        }
        close_in_tail(&seen)
    });
    let end = Instant::now() + time;
    let mut sent = 0u64;
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.write_all(&batch)).await {
            Ok(Ok(())) => sent += batch.len() as u64,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    drop(w);
    (sent, reader.await.unwrap())
}

/// The code of a close frame among the last bytes the server sent (a pong's payload is
/// 0x70 bytes, so 0x88 0x02 cannot occur inside one).
fn close_in_tail(bytes: &[u8]) -> Option<u16> {
    let at = bytes.windows(2).rposition(|w| w[0] == 0x88 && (w[1] as usize) >= 2 && (w[1] as usize) < 126)?;
    bytes.get(at + 2..at + 4).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_reading_and_not_reading_pongs() {
    let _serial = SERIAL.lock().await;
    let option = control_rate_option();
    let (proxy, probe, baseline) = start_with_probe(&[]).await;
    let addr = proxy.addr;
    let ((reading, deaf), during, usage) = under_attack(&proxy, &probe, async move {
        let a = tokio::spawn(ping_flood(addr, Duration::from_secs(3), true));
        let b = tokio::spawn(ping_flood(addr, Duration::from_secs(3), false));
        (a.await.unwrap(), b.await.unwrap())
    })
    .await;
    let pings = |bytes: u64| bytes / 131;
    report(
        "ping_flood",
        &format!(
            "two clients pinging (125-byte payloads) for 3 s: one reading its pongs sent {} pings, close {:?}; one reading nothing sent {} pings, close {:?}; control-rate option: {option:?}",
            pings(reading.0),
            reading.1,
            pings(deaf.0),
            deaf.1
        ),
        &baseline,
        &during,
        &usage,
    );
    match option {
        // Both floods break the control-frame rate limit (default 50/s): closed with 1008.
        // (After its close the proxy reads and drops what the client still sends, for at
        // most the close timeout, so the bytes sent say nothing here.)
        Some(_) => {
            assert_eq!(reading.1, Some(1008), "a ping flood is closed with 1008 (policy)");
            assert_eq!(deaf.1, Some(1008), "a ping flood is closed with 1008 (policy)");
            proxy.wait_log("closed with 1008", Duration::from_secs(1));
        }
        // Without a rate limit, a client that reads nothing is stopped by backpressure: the
        // pongs it does not read stop the proxy reading its pings, at a few MB of buffers.
        None => assert!(deaf.0 < 64 << 20, "the proxy kept reading pings nobody read the pongs of: {} bytes", deaf.0),
    }
    check("ping_flood", &baseline, &during, &usage, 64.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tiny_frames() {
    let _serial = SERIAL.lock().await;
    let (target, mut seen) = sink_target().await;
    let probe = ProbeThread::start();
    let dir = TempDir::new("attack-tokens");
    std::fs::write(dir.path("tokens"), format!("echo: {}\nsink: {target}\n", probe.echo)).unwrap();
    let proxy = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", &dir.str("tokens"), "127.0.0.1:0"]);
    let baseline = baseline(&probe, &format!("ws://{}/websockify?token=echo", proxy.addr)).await;
    let addr = proxy.addr;
    // 1-byte binary frames (7 bytes on the wire each), 100,000 per write, for 3 s.
    let batch: Vec<u8> = (0..100_000u32).flat_map(|i| frame(0x2, &[i as u8])).collect();
    let (sent, during, usage) = under_attack(&proxy, &probe, async move {
        let mut s = raw_session(addr, "/websockify?token=sink").await;
        let end = Instant::now() + Duration::from_secs(3);
        let mut frames = 0u64;
        while Instant::now() < end {
            s.write_all(&batch).await.unwrap();
            frames += 100_000;
        }
        s.write_all(&frame(0x8, &1000u16.to_be_bytes())).await.unwrap();
        let (_, code) = read_close(&mut s, Duration::from_secs(30)).await;
        assert_eq!(code, Some(1000));
        frames
    })
    .await;
    let got = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.unwrap().unwrap();
    report(
        "many_tiny_frames",
        &format!(
            "{sent} one-byte frames in 3 s ({:.0} frames/s through the proxy); the target got {} bytes",
            sent as f64 / usage.elapsed.as_secs_f64(),
            got.bytes
        ),
        &baseline,
        &during,
        &usage,
    );
    assert_eq!(got.bytes, sent, "every frame's byte reached the target");
    check("many_tiny_frames", &baseline, &during, &usage, 64.0);
}

/// Sends `head` and returns the status line of the answer ("" if none).
async fn status_of(addr: SocketAddr, head: Vec<u8>) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else { return String::new() };
    let _ = s.write_all(&head).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads() {
    let _serial = SERIAL.lock().await;
    let (proxy, probe, baseline) = start_with_probe(&[]).await;
    let addr = proxy.addr;
    let (statuses, during, usage) = under_attack(&proxy, &probe, async move {
        // Rounds of 50 concurrent clients for 3 s: a flood that leaves the 2-core machine some
        // CPU (one that saturates it slows every process on it, the probe included).
        let heads: Vec<Arc<Vec<u8>>> = [
            // One 1 MB header line.
            format!("GET /websockify HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20)),
            // 1000 small headers.
            format!("GET /websockify HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-H: v\r\n".repeat(1000)),
            // A 100 KB request target.
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(100_000)),
        ]
        .into_iter()
        .map(|h| Arc::new(h.into_bytes()))
        .collect();
        let end = Instant::now() + Duration::from_secs(3);
        let mut statuses = Vec::new();
        while Instant::now() < end {
            let tasks: Vec<_> = (0..50).map(|i| tokio::spawn(status_of(addr, heads[i % 3].as_ref().clone()))).collect();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
        }
        statuses
    })
    .await;
    let answered_431 = statuses.iter().filter(|s| s.starts_with("HTTP/1.1 431")).count();
    let others: Vec<&String> = statuses.iter().filter(|s| !s.starts_with("HTTP/1.1 431")).take(3).collect();
    report(
        "oversized_heads",
        &format!(
            "{} clients (50 at a time, for 3 s) sending 1 MB header lines, 1000 headers or 100 KB targets: {answered_431} answered 431 (others: {others:?})",
            statuses.len()
        ),
        &baseline,
        &during,
        &usage,
    );
    // A client still writing when the proxy closes may see a reset instead of the 431.
    assert!(answered_431 >= statuses.len() * 2 / 3, "{answered_431} of {} got 431: {others:?}", statuses.len());
    proxy.wait_log("bad request: request head larger than 16384 bytes", Duration::from_secs(1));
    proxy.wait_log("bad request: more than 64 header fields", Duration::from_secs(1));
    check("oversized_heads", &baseline, &during, &usage, 64.0);
}

/// A TLS-enabled proxy (certificate from a test CA) in front of an echo target; the probe
/// uses plain ws:// on the same port.
async fn start_tls(extra: &[&str]) -> (Proxy, ProbeThread, Sample, TempDir) {
    let dir = TempDir::new("attack-tls");
    let ca = Ca::new("attack test CA");
    ca.issue(&dir.0, "server", "localhost", false);
    let (cert, key) = (dir.str("server.pem"), dir.str("server.key"));
    let mut args = vec!["--cert", &cert, "--key", &key];
    args.extend_from_slice(extra);
    let (proxy, probe, baseline) = start_with_probe(&args).await;
    (proxy, probe, baseline, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_garbage_after_a_handshake_byte() {
    let _serial = SERIAL.lock().await;
    let (proxy, probe, baseline, _dir) = start_tls(&[]).await;
    let addr = proxy.addr;
    let (lived, during, usage) = under_attack(&proxy, &probe, async move {
        let mut tasks = Vec::new();
        for i in 0..500u64 {
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let mut s = TcpStream::connect(addr).await.unwrap();
                // 0x16 (a TLS handshake record), then garbage: half a plausible record
                // header with a random body, half random bytes.
                let mut bytes = vec![0x16];
                if i % 2 == 0 {
                    bytes.extend_from_slice(&[0x03, 0x01, 0x02, 0x00]);
                }
                bytes.extend(random_bytes(4096, i));
                let _ = s.write_all(&bytes).await;
                let mut out = Vec::new();
                let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
                assert!(r.is_ok(), "connection {i} still open after 10 s");
                start.elapsed()
            }));
        }
        let mut lived = Vec::new();
        for t in tasks {
            lived.push(t.await.unwrap());
        }
        lived
    })
    .await;
    let longest = lived.iter().max().copied().unwrap_or_default();
    let failed = proxy.log().matches("TLS handshake failed: ").count();
    report(
        "tls_garbage",
        &format!(
            "500 connections sending 0x16 then 4 KB of garbage: all closed, the longest after {longest:?}; {failed} \"TLS handshake failed\" log lines"
        ),
        &baseline,
        &during,
        &usage,
    );
    assert!(longest < Duration::from_secs(5));
    assert!(failed >= 400, "{failed}");
    check("tls_garbage", &baseline, &during, &usage, 64.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_renegotiation_is_refused() {
    let _serial = SERIAL.lock().await;
    let (proxy, probe, baseline, _dir) = start_tls(&["--handshake-timeout", "3"]).await;
    // openssl s_client's `R` command asks for a renegotiation (TLS 1.2; 1.3 has none).
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &proxy.addr.to_string(), "-tls1_2", "-servername", "localhost"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    use std::io::Write;
    stdin.write_all(b"R\n").unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    proxy.wait_log("Sending warning alert NoRenegotiation", Duration::from_secs(5));
    // The connection gets no further: the proxy drops it at the head deadline.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(8) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(stdin);
    // s_client says RENEGOTIATING on stdout or stderr, depending on the version.
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out);
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut out);
    let after = probe.sample(50).await;
    assert!(after.within_twice(&baseline, latency_slack()), "probe after the attempt {after} against {baseline}");
    eprintln!(
        "tls_renegotiation: s_client said RENEGOTIATING: {}; the proxy answered with a no_renegotiation alert and closed the connection after {:?} (exit {status:?}); probe {after} (baseline {baseline})",
        out.contains("RENEGOTIATING"),
        start.elapsed()
    );
    assert!(out.contains("RENEGOTIATING"), "{out}");
    assert!(status.is_some(), "s_client still connected 8 s after its renegotiation attempt");
    proxy.wait_log("bad request: request head not complete within", Duration::from_secs(1));
}
