//! `--threads N`: N threads, each with a runtime and a listening socket of its own in one
//! `SO_REUSEPORT` group. Every thread serves; the port stays ours (a second websockify,
//! ours or the Python one, is refused as with one socket); a signal closes the sessions of
//! every thread.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::upstream::upstream_bin;
use common::{Proxy, echo_target, run_proxy};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Listening TCP sockets on `port` (IPv4 and IPv6), from /proc/net/tcp{,6}.
fn listening_sockets(port: u16) -> usize {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
        })
        .count()
}

/// CPU time (ns) of each of a process's threads, by thread id, from
/// /proc/PID/task/TID/schedstat (its first field).
fn thread_cpu(pid: u32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let dir = entry.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim().to_owned();
        let ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        threads.push((format!("{name} ({})", entry.file_name().to_string_lossy()), ns));
    }
    threads.sort();
    threads
}

/// The serving threads: the main one (named like the binary) and `websockify-N`.
fn serving(threads: &[(String, u64)]) -> Vec<(String, u64)> {
    threads.iter().filter(|(name, _)| name.starts_with("websockify")).cloned().collect()
}

async fn echo_session(url: String, size: usize) {
    let (mut ws, _) = connect_async(url.as_str()).await.unwrap();
    common::ws_echo(&mut ws, &common::random_bytes(size, size as u64)).await;
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_listens_and_serves_and_the_port_stays_ours() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy = Proxy::start(&["--threads", "3", "127.0.0.1:0", &target]);
    let port = proxy.addr.port();
    // The settings lines after "Listen on" may still be on their way when the test learns
    // the address.
    proxy.wait_log("3 threads (a listening socket each, SO_REUSEPORT)", Duration::from_secs(10));
    assert_eq!(listening_sockets(port), 3, "one listening socket per thread");

    let before = serving(&thread_cpu(proxy.child.id()));
    assert_eq!(before.len(), 3, "three serving threads: {before:?}");
    let sessions: Vec<_> = (0..60).map(|_| tokio::spawn(echo_session(proxy.url(), 512 * 1024))).collect();
    for s in sessions {
        s.await.unwrap();
    }
    let after = serving(&thread_cpu(proxy.child.id()));
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        // The kernel spreads 60 connections over 3 sockets: each gets some (all 60 on two
        // of them: a chance of 3 * (2/3)^60, below 1e-10).
        assert!(now - was > 2_000_000, "thread {name} served nothing: {before:?} -> {after:?}");
    }

    // A second websockify on the port: ours, with one socket or a group, is refused, as
    // the Python one is (which says so and exits 0, its own silent failure).
    for threads in ["1", "2"] {
        let (status, log) = run_proxy(&["--threads", threads, &format!("127.0.0.1:{port}"), &target]);
        assert_eq!(status.code(), Some(1), "--threads {threads}: {log}");
        assert!(log.contains("Address already in use"), "--threads {threads}: {log}");
    }
    let upstream = std::process::Command::new(upstream_bin())
        .args([format!("127.0.0.1:{port}"), target.clone()])
        .output()
        .expect("run the Python websockify");
    let said = String::from_utf8_lossy(&upstream.stderr).into_owned() + &String::from_utf8_lossy(&upstream.stdout);
    assert!(said.contains("Address already in use"), "the Python websockify: {said}");
    assert_eq!(listening_sockets(port), 3, "nobody joined the group");
    // Still serving.
    echo_session(proxy.url(), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_program_is_refused_with_or_without_so_reuseport() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    // A plain listener.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = plain.local_addr().unwrap().port();
    let (status, log) = run_proxy(&["--threads", "2", &format!("127.0.0.1:{port}"), &target]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Address already in use"), "{log}");
    // A listener that set SO_REUSEPORT itself: our group would have joined it without the
    // first bind that has no SO_REUSEPORT.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.listen(16).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    let (status, log) = run_proxy(&["--threads", "2", &format!("127.0.0.1:{port}"), &target]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Address already in use"), "{log}");
    assert_eq!(listening_sockets(port), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_the_sessions_of_every_thread_with_1001() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let mut proxy = Proxy::start(&["--threads", "3", "127.0.0.1:0", &target]);
    let mut clients = Vec::new();
    for _ in 0..24 {
        let (mut ws, _) = connect_async(proxy.url()).await.unwrap();
        ws.send(Message::binary(b"hello".to_vec())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(b"hello".to_vec()));
        clients.push(ws);
    }
    proxy.signal("TERM");
    for mut ws in clients {
        let close = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                    Some(Ok(_)) => continue,
                    other => panic!("no close frame: {other:?}"),
                }
            }
        })
        .await
        .expect("a close frame within 10 s");
        assert_eq!(close, Some(CloseCode::Away));
    }
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", proxy.log());
}
