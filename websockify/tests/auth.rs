//! Auth plugins through the real binary: BasicHTTPAuth (also from a file and the
//! environment, and for the web server with --web-auth), ExpectOrigin and ClientCertCNAuth
//! with real TLS client certificates. Refusals are 401/403 before any 101.

mod common;

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use common::pki::{Ca, TempDir};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a WebSocket upgrade with extra headers over any stream; returns the status line
/// and the head.
async fn upgrade<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S, extra: &str) -> String {
    let req = format!(
        "GET /websockify HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn plain_upgrade(addr: std::net::SocketAddr, extra: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    upgrade(&mut s, extra).await
}

fn basic(creds: &str) -> String {
    format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(creds))
}

#[tokio::test]
async fn basic_auth_from_flag_file_and_env() {
    let dir = TempDir::new("auth");
    std::fs::write(dir.path("creds"), "alice:s3cret\n").unwrap();
    let target = echo_target("127.0.0.1:0").await;
    let t = target.to_string();
    let flag = Proxy::start(&["--auth-plugin", "BasicHTTPAuth", "--auth-source", "alice:s3cret", "127.0.0.1:0", &t]);
    let file =
        Proxy::start(&["--auth-plugin", "BasicHTTPAuth", "--auth-source-file", &dir.str("creds"), "127.0.0.1:0", &t]);
    let env = Proxy::start_with_env(
        &["--auth-plugin", "websockify.auth_plugins.BasicHTTPAuth", "127.0.0.1:0", &t],
        &[("WEBSOCKIFY_AUTH_SOURCE", "alice:s3cret")],
    );
    for proxy in [&flag, &file, &env] {
        let ok = plain_upgrade(proxy.addr, &basic("alice:s3cret")).await;
        assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
        let missing = plain_upgrade(proxy.addr, "").await;
        assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
        assert!(missing.contains("WWW-Authenticate: Basic realm=\"Websockify\""), "{missing}");
        let wrong = plain_upgrade(proxy.addr, &basic("alice:guess")).await;
        assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
        let malformed = plain_upgrade(proxy.addr, "Authorization: Basic %%%\r\n").await;
        assert!(malformed.starts_with("HTTP/1.1 403"), "{malformed}");
        let bearer = plain_upgrade(proxy.addr, "Authorization: Bearer abc\r\n").await;
        assert!(bearer.starts_with("HTTP/1.1 403"), "{bearer}");
        proxy.wait_log("wrong password for user \"alice\"", std::time::Duration::from_secs(5));
        assert!(
            !proxy.log().contains("s3cret") && !proxy.log().contains("guess"),
            "no secret in the log: {}",
            proxy.log()
        );
    }
}

#[tokio::test]
async fn expect_origin() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--auth-plugin",
        "ExpectOrigin",
        "--auth-source",
        "https://console.example.com https://other.example.com",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let ok = plain_upgrade(proxy.addr, "Origin: https://other.example.com\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    for bad in ["Origin: https://evil.example.com\r\n", ""] {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let head = upgrade(&mut s, bad).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert_eq!(body, "Invalid Origin\n");
    }
}

#[tokio::test]
async fn client_certificate_cn() {
    let dir = TempDir::new("cn");
    let ca = Ca::new("cn CA");
    let ca_pem = ca.write(&dir.0, "ca.pem");
    ca.issue(&dir.0, "server", "localhost", false);
    ca.issue(&dir.0, "alice", "alice", true);
    ca.issue(&dir.0, "bob", "bob", true);
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--cert",
        &dir.str("server.pem"),
        "--key",
        &dir.str("server.key"),
        "--verify-client",
        "--cafile",
        ca_pem.to_str().unwrap(),
        "--auth-plugin",
        "ClientCertCNAuth",
        "--auth-source",
        "alice carol",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    for (who, status) in [("alice", "101"), ("bob", "403")] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&ca_pem).unwrap()).unwrap();
        let certs = vec![CertificateDer::from_pem_file(dir.path(&format!("{who}.pem"))).unwrap()];
        let key = PrivateKeyDer::from_pem_file(dir.path(&format!("{who}.key"))).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap();
        let tcp = TcpStream::connect(proxy.addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let head = upgrade(&mut tls, "").await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{who}: {head}");
    }
}

#[tokio::test]
async fn web_auth_protects_files_too() {
    let dir = TempDir::new("webauth");
    std::fs::create_dir_all(dir.path("www")).unwrap();
    std::fs::write(dir.path("www/index.html"), "private page").unwrap();
    let target = echo_target("127.0.0.1:0").await;
    let t = target.to_string();
    let proxy = Proxy::start(&[
        "--web",
        &dir.str("www"),
        "--web-auth",
        "--auth-plugin",
        "BasicHTTPAuth",
        "--auth-source",
        "u:p",
        "127.0.0.1:0",
        &t,
    ]);
    let url = format!("http://127.0.0.1:{}/", proxy.addr.port());
    let code = |extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(code(&[]), "401");
    assert_eq!(code(&["-u", "u:wrong"]), "401");
    assert_eq!(code(&["-u", "u:p"]), "200");
    // Without --web-auth the files are public while WebSockets still need credentials.
    let open = Proxy::start(&[
        "--web",
        &dir.str("www"),
        "--auth-plugin",
        "BasicHTTPAuth",
        "--auth-source",
        "u:p",
        "127.0.0.1:0",
        &t,
    ]);
    let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{}/", open.addr.port())]).output().unwrap();
    assert_eq!(out.stdout, b"private page");
    assert!(plain_upgrade(open.addr, "").await.starts_with("HTTP/1.1 401"));
}

/// Python `websockets` as the client: its own Basic auth (URI credentials) and Origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_credentials_and_origins() {
    let target = echo_target("127.0.0.1:0").await;
    let t = target.to_string();
    let basic =
        Proxy::start(&["--auth-plugin", "BasicHTTPAuth", "--auth-source", "Aladdin:open sesame", "127.0.0.1:0", &t]);
    let origin = Proxy::start(&[
        "--auth-plugin",
        "ExpectOrigin",
        "--auth-source",
        "https://console.example.com",
        "127.0.0.1:0",
        &t,
    ]);
    let (bu, ou) = (basic.url(), origin.url());
    let results = tokio::task::spawn_blocking(move || {
        [
            peer("python", &bu, "echo", &["--bytes", "10000", "--basic-auth", "Aladdin:open sesame"]),
            peer("python", &bu, "handshake", &["--basic-auth", "Aladdin:wrong"]),
            peer("python", &bu, "handshake", &[]),
            peer("python", &ou, "echo", &["--bytes", "10000", "--origin", "https://console.example.com"]),
            peer("python", &ou, "handshake", &["--origin", "https://evil.example.com"]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(results[0]["match"], true, "{}", results[0]);
    assert_eq!(results[1]["status"], 401, "{}", results[1]);
    assert_eq!(results[2]["status"], 401, "{}", results[2]);
    assert_eq!(results[3]["match"], true, "{}", results[3]);
    assert_eq!((results[4]["status"].clone(), results[4]["body"].clone()), (403.into(), "Invalid Origin\n".into()));
}

/// Python `websockets` over wss:// presenting client certificates to ClientCertCNAuth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_certificates() {
    let dir = TempDir::new("cn-py");
    let ca = Ca::new("py CA");
    let ca_pem = ca.write(&dir.0, "ca.pem");
    ca.issue(&dir.0, "server", "localhost", false);
    ca.issue(&dir.0, "alice", "alice", true);
    ca.issue(&dir.0, "bob", "bob", true);
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--cert",
        &dir.str("server.pem"),
        "--key",
        &dir.str("server.key"),
        "--verify-client",
        "--cafile",
        ca_pem.to_str().unwrap(),
        "--auth-plugin",
        "ClientCertCNAuth",
        "--auth-source",
        "alice",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let url = format!("wss://localhost:{}/websockify", proxy.addr.port());
    let (ca, a_cert, a_key, b_cert, b_key) =
        (dir.str("ca.pem"), dir.str("alice.pem"), dir.str("alice.key"), dir.str("bob.pem"), dir.str("bob.key"));
    let (alice, bob) = tokio::task::spawn_blocking(move || {
        (
            peer(
                "python",
                &url,
                "echo",
                &["--bytes", "10000", "--cafile", &ca, "--client-cert", &a_cert, "--client-key", &a_key],
            ),
            peer("python", &url, "handshake", &["--cafile", &ca, "--client-cert", &b_cert, "--client-key", &b_key]),
        )
    })
    .await
    .unwrap();
    assert_eq!(alice["match"], true, "{alice}");
    assert_eq!(bob["status"], 403, "{bob}");
}
