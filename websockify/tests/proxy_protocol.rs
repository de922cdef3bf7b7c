//! The client's address behind load balancers, against the real counterparts: HAProxy
//! (Debian's `haproxy`) sending PROXY protocol v1 and v2 to `--accept-proxy-protocol`;
//! HAProxy with `accept-proxy` decoding the header that `--target-proxy-protocol` sends;
//! Python `websockets` sending `X-Forwarded-For` to `--trusted-proxy`. Clients bind to
//! other loopback addresses (127.0.0.2, 127.0.0.3) so that the real client differs from
//! the balancer (127.0.0.1). Needs `scripts/peers.sh` (haproxy, the Python venv).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::haproxy::{GLOBAL, Haproxy, decoding_target};
use common::pki::{Ca, TempDir};
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

const LOG_WAIT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TcpStream>;

/// A TCP connection to `server` from `from` (a loopback address), and its local address.
async fn connect_from(from: &str, server: SocketAddr) -> (TcpStream, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let local = stream.local_addr().unwrap();
    (stream, local)
}

/// A WebSocket session to `server` from `from`, with extra request headers.
async fn ws_from(
    from: &str,
    server: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<(Ws, SocketAddr), tungstenite::Error> {
    let (stream, local) = connect_from(from, server).await;
    let mut request = format!("ws://{server}/websockify").into_client_request().unwrap();
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (ws, _) = client_async(request, stream).await?;
    Ok((ws, local))
}

/// The HTTP status a refused handshake got.
fn status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::binary(text.as_bytes().to_vec())).await.unwrap();
    // The target's bytes come back in as many messages as the relay read them in.
    let mut back = Vec::new();
    while back.len() < text.len() {
        let reply = tokio::time::timeout(LOG_WAIT, ws.next()).await.expect("an echo").unwrap().unwrap();
        back.extend_from_slice(&reply.into_data());
    }
    assert!(back == text.as_bytes(), "the echo differs from what was sent");
}

/// HAProxy in TCP mode in front of the proxy: port `v1` sends PROXY v1 (`send-proxy`),
/// port `v2` sends v2 (`send-proxy-v2`).
fn balancer(v1: u16, v2: u16, proxy: SocketAddr) -> Haproxy {
    let config = format!(
        "{GLOBAL}
frontend v1
    bind 127.0.0.1:{v1}
    default_backend ws_v1

frontend v2
    bind 127.0.0.1:{v2}
    default_backend ws_v2

backend ws_v1
    server ws {proxy} send-proxy

backend ws_v2
    server ws {proxy} send-proxy-v2
"
    );
    Haproxy::start(&config, &[v1, v2])
}

/// Through HAProxy's v1 and v2 headers the proxy sees the real client: in its log lines
/// and for the per-IP cap (every connection comes from HAProxy at 127.0.0.1, yet a second
/// session from 127.0.0.2 is refused while 127.0.0.3 gets in).
#[tokio::test]
async fn haproxy_v1_and_v2_give_the_real_client() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "127.0.0.1:0",
        &target.to_string(),
        "--accept-proxy-protocol",
        "--max-sessions-per-ip",
        "1",
        "-v",
    ]);
    proxy.wait_log("PROXY protocol header required from 127.0.0.0/8, ::1", LOG_WAIT);
    let (v1, v2) = (closed_port(), closed_port());
    let _haproxy = balancer(v1, v2, proxy.addr);
    let mut closed = 0;
    for (version, port) in [("v1", v1), ("v2", v2)] {
        let front = SocketAddr::from(([127, 0, 0, 1], port));
        let (mut a, a_addr) = ws_from("127.0.0.2", front, &[]).await.unwrap();
        echo(&mut a, version).await;
        proxy.wait_log(&format!("client={a_addr}}}"), LOG_WAIT);
        proxy.wait_log(&format!("PROXY {version} header: client {a_addr}, which connected to {front}"), LOG_WAIT);
        let refused = ws_from("127.0.0.2", front, &[]).await.unwrap_err();
        assert_eq!(status(refused), 429, "{}", proxy.log());
        proxy.wait_log("too many sessions from 127.0.0.2: limit 1", LOG_WAIT);
        let (mut b, _) = ws_from("127.0.0.3", front, &[]).await.unwrap();
        echo(&mut b, version).await;
        a.close(None).await.unwrap();
        b.close(None).await.unwrap();
        while a.next().await.is_some() {}
        while b.next().await.is_some() {}
        closed += 2;
        wait_count(&proxy, "session closed", closed);
    }
}

/// TLS after the PROXY header (HAProxy in TCP mode passes TLS through): the header is read
/// before sniffing, and a Python `websockets` client gets its wss:// echo.
#[tokio::test]
async fn tls_behind_the_header() {
    let dir = TempDir::new("pp-tls");
    let ca = Ca::new("pp test CA");
    let (cert, key) = ca.issue(&dir.0, "server", "localhost", false);
    let ca_file = ca.write(&dir.0, "ca.pem");
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "127.0.0.1:0",
        &target.to_string(),
        "--accept-proxy-protocol",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let (v1, v2) = (closed_port(), closed_port());
    let _haproxy = balancer(v1, v2, proxy.addr);
    for port in [v1, v2] {
        let url = format!("wss://localhost:{port}/websockify");
        let ca = ca_file.to_str().unwrap().to_owned();
        let out =
            tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "100000", "--cafile", &ca]))
                .await
                .unwrap();
        assert_eq!(out["match"], true, "{out}\n{}", proxy.log());
    }
    let log = proxy.log();
    assert_eq!(log.matches("SSL/TLS (wss://) WebSocket connection").count(), 2, "{log}");
    let wss: Vec<&str> = log.lines().filter(|l| l.contains("SSL/TLS (wss://) WebSocket connection")).collect();
    assert!(!wss.is_empty() && wss.iter().all(|l| l.contains("client=127.0.0.1:")), "{log}");
}

/// Waits until `needle` is in the log `n` times.
fn wait_count(proxy: &Proxy, needle: &str, n: usize) {
    let start = std::time::Instant::now();
    while proxy.log().matches(needle).count() < n {
        assert!(start.elapsed() < LOG_WAIT, "{needle:?} not {n} times in the log:\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Raw bytes on a new connection; what the proxy answered before closing (within 10 s).
async fn answer(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(LOG_WAIT, s.read_to_end(&mut out)).await.expect("the proxy closes").unwrap_or_default();
    out
}

const UPGRADE: &str = "GET /websockify HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Sources outside --proxy-protocol-from are served as direct clients, and refused if they
/// send a header; trusted sources must send one, complete, bounded, in time.
#[tokio::test]
async fn untrusted_headers_and_missing_headers_are_refused() {
    let target = echo_target("127.0.0.1:0").await;
    let elsewhere = Proxy::start(&[
        "127.0.0.1:0",
        &target.to_string(),
        "--accept-proxy-protocol",
        "--proxy-protocol-from",
        "10.0.0.0/8",
    ]);
    let (mut ws, _) = ws_from("127.0.0.1", elsewhere.addr, &[]).await.expect("a direct client is served");
    echo(&mut ws, "direct").await;
    let spoof = format!("PROXY TCP4 6.6.6.6 127.0.0.1 1234 80\r\n{UPGRADE}");
    assert_eq!(answer(elsewhere.addr, spoof.as_bytes()).await, b"", "no answer to a spoofed header");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x06\x06\x06\x06\x7f\x00\x00\x01\x04\xd2\x00\x50".to_vec();
    v2.extend(UPGRADE.as_bytes());
    assert_eq!(answer(elsewhere.addr, &v2).await, b"");
    elsewhere.wait_log(
        "connection refused: PROXY protocol header from 127.0.0.1, not in --proxy-protocol-from (10.0.0.0/8)",
        LOG_WAIT,
    );
    wait_count(&elsewhere, "not in --proxy-protocol-from", 2);
    assert!(!elsewhere.log().contains("6.6.6.6"), "{}", elsewhere.log());

    let strict =
        Proxy::start(&["127.0.0.1:0", &target.to_string(), "--accept-proxy-protocol", "--handshake-timeout", "1"]);
    assert!(ws_from("127.0.0.1", strict.addr, &[]).await.is_err(), "a client without the header is refused");
    strict.wait_log(
        r#"connection refused: no PROXY protocol header: the connection starts with "GET /websockify ..." (PROXY protocol required from 127.0.0.0/8, ::1)"#,
        LOG_WAIT,
    );
    assert_eq!(answer(strict.addr, b"PROXY TCP4 1.2").await, b"");
    strict.wait_log("no complete PROXY protocol header within 1s", LOG_WAIT);
    let long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
    assert_eq!(answer(strict.addr, long.as_bytes()).await, b"");
    strict.wait_log("PROXY protocol v1 header longer than 107 bytes", LOG_WAIT);
    assert_eq!(answer(strict.addr, b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff").await, b"");
    strict.wait_log("v2 header announces 65535 bytes of addresses, more than the 4096 accepted", LOG_WAIT);
    assert_eq!(answer(strict.addr, b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n").await, b"");
    strict.wait_log(r#"invalid PROXY protocol v1 header "PROXY TCP4 1.2.3..."#, LOG_WAIT);
    // A balancer's port probe is not worth a log line above debug.
    drop(TcpStream::connect(strict.addr).await.unwrap());
    let (mut ws, _) = {
        // A header, then a WebSocket session on the same connection.
        let (mut s, local) = connect_from("127.0.0.1", strict.addr).await;
        s.write_all(b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 6080\r\n").await.unwrap();
        let (ws, _) = client_async(format!("ws://{}/websockify", strict.addr), s).await.unwrap();
        (ws, local)
    };
    echo(&mut ws, "after a hand-written header").await;
    strict.wait_log("client=198.51.100.9:40000", LOG_WAIT);
    assert!(!strict.log().contains("0 bytes received"), "{}", strict.log());
}

/// `--target-proxy-protocol v1|v2`: HAProxy (`accept-proxy`) in front of an echo server
/// decodes the header and logs the client it names; the echo proves the header was the
/// only thing added to the stream.
#[tokio::test]
async fn target_sees_the_client_through_haproxy() {
    let echo_server = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    let decoder = decoding_target(port, echo_server);
    for version in ["v1", "v2"] {
        let proxy = Proxy::start(&["127.0.0.1:0", &format!("127.0.0.1:{port}"), "--target-proxy-protocol", version]);
        proxy.wait_log(&format!("PROXY protocol {version} header sent to targets"), LOG_WAIT);
        let (mut ws, local) = ws_from("127.0.0.2", proxy.addr, &[]).await.unwrap();
        echo(&mut ws, &"x".repeat(70_000)).await;
        decoder.wait_log(&format!("proxied client={local} dst={}", proxy.addr), LOG_WAIT);
        ws.close(None).await.unwrap();
    }
}

/// The whole chain: HAProxy sends v2 to the proxy, which sends v1 on to a decoding HAProxy:
/// the target sees the original client and the balancer's address it connected to.
#[tokio::test]
async fn client_address_passes_through_the_chain() {
    let echo_server = echo_target("127.0.0.1:0").await;
    let decode_port = closed_port();
    let decoder = decoding_target(decode_port, echo_server);
    let proxy = Proxy::start(&[
        "127.0.0.1:0",
        &format!("127.0.0.1:{decode_port}"),
        "--accept-proxy-protocol",
        "--target-proxy-protocol",
        "v1",
    ]);
    let (v1, v2) = (closed_port(), closed_port());
    let _balancer = balancer(v1, v2, proxy.addr);
    let (mut ws, local) = ws_from("127.0.0.3", SocketAddr::from(([127, 0, 0, 1], v2)), &[]).await.unwrap();
    echo(&mut ws, "chain").await;
    decoder.wait_log(&format!("proxied client={local} dst=127.0.0.1:{v2}"), LOG_WAIT);
}

/// X-Forwarded-For from a real client (Python `websockets`, `additional_headers`): believed
/// from a `--trusted-proxy` (the target's PROXY header and the log name the forwarded
/// client), ignored from anyone else.
#[tokio::test]
async fn x_forwarded_for_from_trusted_proxies() {
    let echo_server = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    let decoder = decoding_target(port, echo_server);
    let target = format!("127.0.0.1:{port}");
    let trusting = Proxy::start(&[
        "127.0.0.1:0",
        &target,
        "--trusted-proxy",
        "127.0.0.1,10.0.0.0/8",
        "--target-proxy-protocol",
        "v2",
        "-v",
    ]);
    trusting.wait_log("X-Forwarded-For and Forwarded believed from 127.0.0.1, 10.0.0.0/8", LOG_WAIT);
    let python = |url: String, header: &'static str| async move {
        tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "1000", "--header", header]))
            .await
            .unwrap()
    };
    // The right-most address that is not a trusted proxy is the client.
    let out = python(trusting.url(), "X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.2.3").await;
    assert_eq!(out["match"], true, "{out}");
    decoder.wait_log("proxied client=198.51.100.7:0", LOG_WAIT);
    trusting.wait_log("forwarded_for=198.51.100.7", LOG_WAIT);
    trusting.wait_log("client 198.51.100.7, as forwarded by 127.0.0.1", LOG_WAIT);
    let out = python(trusting.url(), "Forwarded: for=\"[2001:db8::7]:4711\";proto=http").await;
    assert_eq!(out["match"], true, "{out}");
    decoder.wait_log("proxied client=2001:db8::7:0", LOG_WAIT);

    let ignoring = Proxy::start(&["127.0.0.1:0", &target, "--target-proxy-protocol", "v2"]);
    let out = python(ignoring.url(), "X-Forwarded-For: 203.0.113.66").await;
    assert_eq!(out["match"], true, "{out}");
    let sessions = |log: String| log.matches("proxied client=").count();
    let start = std::time::Instant::now();
    while sessions(decoder.log()) < 3 {
        assert!(start.elapsed() < LOG_WAIT, "{}", decoder.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = decoder.log().lines().rfind(|l| l.contains("proxied client=")).unwrap().to_owned();
    assert!(last.contains("proxied client=127.0.0.1:"), "{last}");
    assert!(!ignoring.log().contains("203.0.113.66") && !decoder.log().contains("203.0.113.66"));
}

/// Per-IP caps count the forwarded client, not the proxy that every session comes from.
#[tokio::test]
async fn per_ip_cap_counts_forwarded_clients() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "127.0.0.1:0",
        &target.to_string(),
        "--trusted-proxy",
        "127.0.0.1",
        "--max-sessions-per-ip",
        "1",
    ]);
    let xff = |ip: &'static str| [("X-Forwarded-For", ip)];
    let (mut a, _) = ws_from("127.0.0.1", proxy.addr, &xff("198.51.100.1")).await.unwrap();
    echo(&mut a, "a").await;
    let refused = ws_from("127.0.0.1", proxy.addr, &xff("198.51.100.1")).await.unwrap_err();
    assert_eq!(status(refused), 429);
    proxy.wait_log("too many sessions from 198.51.100.1: limit 1", LOG_WAIT);
    let (mut b, _) = ws_from("127.0.0.1", proxy.addr, &xff("198.51.100.2")).await.unwrap();
    echo(&mut b, "b").await;
    // Without a header the proxy itself is the client: one session for it too.
    let (mut c, _) = ws_from("127.0.0.1", proxy.addr, &[]).await.unwrap();
    echo(&mut c, "c").await;
}
