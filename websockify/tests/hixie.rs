//! Hixie-76 and Hixie-75 sessions through the proxy, driven by an independent client
//! written from the draft texts (tests/peers/hixie_client.py), over ws:// and wss://.

mod common;

use common::pki::{Ca, TempDir};
use common::*;

fn hixie(url: &str, scenario: &str, opts: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/peers/hixie_client.py"))
        .arg(url)
        .args((!scenario.is_empty()).then_some(scenario))
        .args(opts)
        .output()
        .expect("hixie client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{stdout} ({e}); {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_client_checks_itself_against_the_draft_example() {
    let out = hixie("selftest", "", &[]);
    assert_eq!(out["selftest"], "ok", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_drafts_over_ws_and_wss() {
    let dir = TempDir::new("hixie");
    let ca = Ca::new("hixie CA");
    let ca_pem = ca.write(&dir.0, "ca.pem");
    ca.issue(&dir.0, "server", "localhost", false);
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--cert",
        &dir.str("server.pem"),
        "--key",
        &dir.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let port = proxy.addr.port();
    let ca = ca_pem.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        for draft in ["76", "75"] {
            for url in [format!("ws://127.0.0.1:{port}/websockify?x=1"), format!("wss://localhost:{port}/websockify")] {
                let tls: &[&str] = if url.starts_with("wss") { &["--cafile", &ca] } else { &[] };
                let hs = hixie(&url, "handshake", &[&["--draft", draft][..], tls].concat());
                assert_eq!(hs["status"], 101, "{draft} {url}: {hs}");
                assert_eq!(hs["protocol"], "base64", "{draft} {url}: {hs}");
                let echo = hixie(
                    &url,
                    "echo",
                    &[&["--draft", draft, "--bytes", "2000000", "--discardable-frames"][..], tls].concat(),
                );
                assert_eq!(echo["match"], true, "{draft} {url}: {echo}");
                assert_eq!(echo["closed_by_server_frame"], true, "{draft} {url}: {echo}");
            }
            let none = hixie(
                &format!("ws://127.0.0.1:{port}/"),
                "echo",
                &["--draft", draft, "--protocol", "none", "--bytes", "1000"],
            );
            assert_eq!(
                (none["match"].clone(), none["protocol"].clone()),
                (true.into(), serde_json::Value::Null),
                "{none}"
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_close_ends_a_hixie_session() {
    let data = std::sync::Arc::new(random_bytes(100_000, 11));
    let target = source_target(data.clone()).await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let url = format!("ws://127.0.0.1:{}/", proxy.addr.port());
    let out = tokio::task::spawn_blocking(move || hixie(&url, "read-until-close", &[])).await.unwrap();
    assert_eq!(out["received"], 100_000, "{out}");
    assert_eq!(out["sha256_received"], sha256_hex(&data).as_str());
    assert_eq!(out["close_frame"], true, "{out}");
}
