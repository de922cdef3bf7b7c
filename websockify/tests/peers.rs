//! The proxy with independent clients from other ecosystems: Python `websockets` and
//! Node `ws` (tests/peers/ws_client.py, tests/node/client.js), installed by
//! scripts/peers.sh. Missing peers fail the test with the set-up command; they never skip.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

const PEERS: [&str; 2] = ["python", "node"];

/// Runs a blocking peer client from async tests.
async fn peer_async(kind: &'static str, url: String, scenario: &'static str, opts: Vec<String>) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        peer(kind, &url, scenario, &opts)
    })
    .await
    .unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_echo_with_checksum() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    for kind in PEERS {
        let out = peer_async(kind, proxy.url(), "echo", strings(&["--bytes", "100000000", "--seed", "7"])).await;
        assert_eq!(out["match"], true, "{kind}: {out}");
        assert_eq!(out["received"], 100_000_000, "{kind}: {out}");
        assert_eq!(out["close_code"], 1000, "{kind}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_echo() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    for kind in PEERS {
        let out =
            peer_async(kind, proxy.url(), "echo", strings(&["--bytes", "5000000", "--protocols", "base64"])).await;
        assert_eq!(out["protocol"], "base64", "{kind}: {out}");
        assert_eq!(out["match"], true, "{kind}: {out}");
        assert_eq!(out["binary_messages_received"], 0, "{kind}: base64 mode sends text frames: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_cases() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    for kind in PEERS {
        let none = peer_async(kind, proxy.url(), "handshake", vec![]).await;
        assert_eq!((none["status"].clone(), none["protocol"].clone()), (101.into(), serde_json::Value::Null), "{kind}");
        for (offer, want) in [("binary", "binary"), ("base64", "base64"), ("binary,base64", "binary")] {
            let out = peer_async(kind, proxy.url(), "handshake", strings(&["--protocols", offer])).await;
            assert_eq!(out["protocol"], want, "{kind} {offer}: {out}");
        }
        let out = peer_async(kind, proxy.url(), "handshake", strings(&["--protocols", "foo"])).await;
        assert_eq!(out["status"], 400, "{kind}: {out}");
        assert!(out["body"].as_str().unwrap().contains("supported: binary, base64"), "{kind}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_send_delivers_all_bytes_to_target() {
    let (target, mut seen) = sink_target().await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    for kind in PEERS {
        let out = peer_async(kind, proxy.url(), "close-after-send", strings(&["--bytes", "5000000"])).await;
        assert_eq!(
            (out["close_code"].clone(), out["close_reason"].clone()),
            (1000.into(), "bye".into()),
            "{kind}: {out}"
        );
        let got = tokio::time::timeout(Duration::from_secs(20), seen.recv()).await.unwrap().unwrap();
        assert_eq!(got.bytes, 5_000_000, "{kind}");
        assert_eq!(serde_json::Value::from(got.sha256), out["sha256_sent"], "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_close_and_unreachable() {
    let data = Arc::new(random_bytes(3_000_000, 9));
    let target = source_target(data.clone()).await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let dead = Proxy::start(&["127.0.0.1:0", &format!("127.0.0.1:{}", closed_port())]);
    for kind in PEERS {
        let out = peer_async(kind, proxy.url(), "read-until-close", vec![]).await;
        assert_eq!(out["received"], 3_000_000, "{kind}: {out}");
        assert_eq!(out["sha256_received"], sha256_hex(&data).as_str(), "{kind}");
        assert_eq!((out["close_code"].clone(), out["close_reason"].clone()), (1000.into(), "Target closed".into()));
        let out = peer_async(kind, dead.url(), "read-until-close", vec![]).await;
        assert_eq!(out["close_code"], 1011, "{kind}: {out}");
        assert_eq!(out["close_reason"], "Failed to connect to downstream server", "{kind}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_1001() {
    let target = echo_target("127.0.0.1:0").await;
    for kind in PEERS {
        let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
        let client = tokio::spawn(peer_async(kind, proxy.url(), "read-until-close", strings(&["--bytes", "1000"])));
        // Once the session is open, ask the server to stop.
        let proxy = tokio::task::spawn_blocking(move || {
            proxy.wait_log(" WebSocket connection: ", Duration::from_secs(20));
            proxy
        })
        .await
        .unwrap();
        proxy.signal("TERM");
        let out = client.await.unwrap();
        assert_eq!(out["close_code"], 1001, "{kind}: {out}");
        assert_eq!(out["close_reason"], "Server shutting down", "{kind}: {out}");
    }
}
