//! TLS on the proxy's port, with real clients: Python `websockets` and Node `ws` over
//! wss://, curl, and a rustls client; client certificates, reload without dropping
//! sessions, encrypted keys, --ssl-only and --ssl-target.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::pki::{Ca, TempDir};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

/// A rustls client trusting `ca_pem`, optionally presenting a client certificate.
fn client_config(ca_pem: &str, client: Option<(&std::path::Path, &std::path::Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            builder.with_client_auth_cert(certs, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

type TlsWs = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens a wss:// session with tokio-tungstenite over a rustls stream.
async fn wss(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<TlsWs, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let url = format!("wss://localhost:{}/websockify", addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, tls).await.map_err(|e| format!("ws: {e}"))?;
    Ok(ws)
}

struct Pki {
    dir: TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new("tls");
        let ca = Ca::new("websockify test CA");
        ca.write(&dir.0, "ca.pem");
        ca.issue(&dir.0, "server", "localhost", false);
        Self { dir, ca }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_python_node_and_rustls() {
    let pki = Pki::new();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--cert",
        &pki.dir.str("server.pem"),
        "--key",
        &pki.dir.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let url = format!("wss://localhost:{}/websockify", proxy.addr.port());
    let ca = pki.dir.str("ca.pem");
    for kind in ["python", "node"] {
        let (url, ca) = (url.clone(), ca.clone());
        let out =
            tokio::task::spawn_blocking(move || peer(kind, &url, "echo", &["--bytes", "10000000", "--cafile", &ca]))
                .await
                .unwrap();
        assert_eq!(out["match"], true, "{kind}: {out}");
        assert_eq!(out["close_code"], 1000, "{kind}: {out}");
    }
    let mut ws = wss(proxy.addr, client_config(&pki.ca.pem(), None)).await.unwrap();
    ws_echo(&mut ws, &random_bytes(3 << 20, 5)).await;
    // Plain ws:// still works on the same port.
    let plain = tokio::task::spawn_blocking({
        let url = proxy.url();
        move || peer("python", &url, "echo", &["--bytes", "100000"])
    })
    .await
    .unwrap();
    assert_eq!(plain["match"], true, "{plain}");
    proxy.wait_log("SSL/TLS (wss://) WebSocket connection", std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn ssl_only_refuses_plain() {
    let pki = Pki::new();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--ssl-only",
        "--cert",
        &pki.dir.str("server.pem"),
        "--key",
        &pki.dir.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let url = proxy.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "handshake", &[])).await.unwrap();
    assert_eq!(out["status"], 403, "{out}");
    assert!(out["body"].as_str().unwrap().contains("only TLS"), "{out}");
    let mut ws = wss(proxy.addr, client_config(&pki.ca.pem(), None)).await.unwrap();
    ws_echo(&mut ws, b"tls only").await;
}

#[tokio::test]
async fn client_certificates_accepted_and_refused() {
    let pki = Pki::new();
    let other_ca = Ca::new("untrusted CA");
    pki.ca.issue(&pki.dir.0, "alice", "alice", true);
    other_ca.issue(&pki.dir.0, "mallory", "mallory", true);
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--verify-client",
        "--cafile",
        &pki.dir.str("ca.pem"),
        "--cert",
        &pki.dir.str("server.pem"),
        "--key",
        &pki.dir.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let alice = client_config(&pki.ca.pem(), Some((&pki.dir.path("alice.pem"), &pki.dir.path("alice.key"))));
    let mut ws = wss(proxy.addr, alice).await.unwrap();
    ws_echo(&mut ws, b"with a certificate").await;
    // No certificate, or one from another CA: the TLS handshake fails, no session.
    for config in [
        client_config(&pki.ca.pem(), None),
        client_config(&pki.ca.pem(), Some((&pki.dir.path("mallory.pem"), &pki.dir.path("mallory.key")))),
    ] {
        assert!(wss(proxy.addr, config).await.is_err());
    }
    // curl agrees.
    let port = proxy.addr.port().to_string();
    let curl = |extra: &[String]| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", &pki.dir.str("ca.pem")])
            .args(extra)
            .arg(format!("https://localhost:{port}/"))
            .output()
            .unwrap()
    };
    let with = curl(&["--cert".into(), pki.dir.str("alice.pem"), "--key".into(), pki.dir.str("alice.key")]);
    assert_eq!(String::from_utf8_lossy(&with.stdout), "405", "TLS passed, then plain HTTP is refused without --web");
    let without = curl(&[]);
    assert!(!without.status.success(), "no client certificate must fail the handshake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_keeps_live_sessions() {
    let pki = Pki::new();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--cert",
        &pki.dir.str("server.pem"),
        "--key",
        &pki.dir.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let mut live = wss(proxy.addr, client_config(&pki.ca.pem(), None)).await.unwrap();
    ws_echo(&mut live, b"before").await;
    // Replace the certificate with one from a new CA, then SIGHUP.
    let new_ca = Ca::new("second CA");
    new_ca.issue(&pki.dir.0, "server", "localhost", false);
    proxy.signal("HUP");
    let proxy = tokio::task::spawn_blocking(move || {
        proxy.wait_log("TLS certificate reloaded", Duration::from_secs(10));
        proxy
    })
    .await
    .unwrap();
    let mut fresh = wss(proxy.addr, client_config(&new_ca.pem(), None)).await.unwrap();
    ws_echo(&mut fresh, b"new certificate").await;
    assert!(wss(proxy.addr, client_config(&pki.ca.pem(), None)).await.is_err(), "the old certificate is gone");
    ws_echo(&mut live, b"the old session lives on").await;

    // A file change alone is picked up too (polled), and a broken file keeps the old one.
    let third = Ca::new("third CA");
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new modification time
    third.issue(&pki.dir.0, "server", "localhost", false);
    let proxy = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        while proxy.log().matches("TLS certificate reloaded").count() < 2 {
            assert!(start.elapsed() < Duration::from_secs(10), "{}", proxy.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    })
    .await
    .unwrap();
    let mut third_session = wss(proxy.addr, client_config(&third.pem(), None)).await.unwrap();
    ws_echo(&mut third_session, b"third").await;
    std::fs::write(pki.dir.path("server.pem"), "garbage").unwrap();
    proxy.signal("HUP");
    let proxy = tokio::task::spawn_blocking(move || {
        proxy.wait_log("reload failed, keeping the previous one", Duration::from_secs(10));
        proxy
    })
    .await
    .unwrap();
    let mut still = wss(proxy.addr, client_config(&third.pem(), None)).await.unwrap();
    ws_echo(&mut still, b"still served").await;
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl").args(args).status().expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

#[tokio::test]
async fn encrypted_key_password_sources() {
    let pki = Pki::new();
    let enc = pki.dir.str("server-enc.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &pki.dir.str("server.key"),
        "-out",
        &enc,
        "-passout",
        "pass:s3cret",
    ]);
    let target = echo_target("127.0.0.1:0").await;
    let cert = pki.dir.str("server.pem");
    // Wrong password with --ssl-only: a clear error, exit 1.
    let (status, out) =
        run_proxy(&["--ssl-only", "--cert", &cert, "--key", &enc, "--key-password", "nope", "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("cannot decrypt the key"), "{out}");
    // No password at all.
    let (status, out) = run_proxy(&["--ssl-only", "--cert", &cert, "--key", &enc, "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(1));
    assert!(out.contains("the key is encrypted"), "{out}");
    // From the command line, a file, and the environment.
    std::fs::write(pki.dir.path("pw"), "s3cret\n").unwrap();
    for how in ["flag", "file", "env"] {
        let mut args = vec!["--ssl-only", "--cert", &cert, "--key", &enc];
        let pw_file = pki.dir.str("pw");
        match how {
            "flag" => args.extend(["--key-password", "s3cret"]),
            "file" => args.extend(["--key-password-file", &pw_file]),
            _ => {}
        }
        let target = target.to_string();
        args.extend(["127.0.0.1:0", &target]);
        let proxy = if how == "env" {
            // Given to the child only: the test process's own environment stays as it is.
            Proxy::start_with_env(&args, &[("WEBSOCKIFY_KEY_PASSWORD", "s3cret")])
        } else {
            Proxy::start(&args)
        };
        let mut ws = wss(proxy.addr, client_config(&pki.ca.pem(), None)).await.unwrap();
        ws_echo(&mut ws, how.as_bytes()).await;
    }
}

#[tokio::test]
async fn bad_certificates_and_options() {
    let pki = Pki::new();
    // Required TLS with a missing or mismatched certificate: exit 1, saying why.
    let (status, out) = run_proxy(&["--ssl-only", "--cert", "/nonexistent.pem", "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("/nonexistent.pem"), "{out}");
    let other = Ca::new("x");
    other.issue(&pki.dir.0, "other", "localhost", false);
    let (status, out) = run_proxy(&[
        "--ssl-only",
        "--cert",
        &pki.dir.str("server.pem"),
        "--key",
        &pki.dir.str("other.key"),
        "127.0.0.1:0",
        "h:1",
    ]);
    assert_eq!(status.code(), Some(1), "{out}");
    // Optional TLS with a bad certificate: a warning, plain service continues.
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--cert", "/nonexistent.pem", "127.0.0.1:0", &target.to_string()]);
    proxy.wait_log("TLS disabled", Duration::from_secs(5));
    // Unknown cipher names are a usage error.
    let (status, out) =
        run_proxy(&["--cert", &pki.dir.str("server.pem"), "--ssl-ciphers", "RC4-MD5", "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("RC4-MD5"), "{out}");
    // Known ones work, and the minimum version is honoured.
    let proxy = Proxy::start(&[
        "--cert",
        &pki.dir.str("server.pem"),
        "--key",
        &pki.dir.str("server.key"),
        "--ssl-ciphers",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "--ssl-version",
        "tlsv1_3",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let tls12 = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--tls-max", "1.2", "--cacert", &pki.dir.str("ca.pem")])
        .arg(format!("https://localhost:{}/", proxy.addr.port()))
        .status()
        .unwrap();
    assert!(!tls12.success(), "TLS 1.2 refused with --ssl-version tlsv1_3");
    let mut ws = wss(proxy.addr, client_config(&pki.ca.pem(), None)).await.unwrap();
    ws_echo(&mut ws, b"tls13").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_target_verified_with_sni() {
    let pki = Pki::new();
    // A TLS echo server (socat with OpenSSL) whose certificate comes from our CA.
    let port = closed_port();
    let mut socat = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            pki.dir.str("server.pem"),
            pki.dir.str("server.key")
        ))
        .arg("EXEC:cat")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat");
    wait_port(port).await;
    let target = format!("localhost:{port}");
    let proxy = Proxy::start(&["--ssl-target", "--target-cafile", &pki.dir.str("ca.pem"), "127.0.0.1:0", &target]);
    let url = proxy.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "2000000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
    // Without trusting our CA the target is refused: 1011.
    let untrusted = Proxy::start(&["--ssl-target", "127.0.0.1:0", &target]);
    let url = untrusted.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "read-until-close", &[])).await.unwrap();
    assert_eq!(out["close_code"], 1011, "{out}");
    untrusted.wait_log("TLS handshake with localhost", std::time::Duration::from_secs(5));
    let _ = socat.kill();
    let _ = socat.wait();
}

async fn wait_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

/// Keys as PKCS#1 (RSA), SEC1 (EC) and PKCS#8, alone or in the certificate file (the
/// default `self.pem` layout), each reached with `openssl s_client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_formats_and_openssl_s_client() {
    let dir = TempDir::new("keys");
    let target = echo_target("127.0.0.1:0").await;
    let subj = "/CN=localhost";
    let san = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    // PKCS#1 RSA, SEC1 EC, PKCS#8 Ed25519 keys with self-signed certificates.
    openssl(&["genrsa", "-traditional", "-out", &dir.str("rsa.key"), "2048"]);
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &dir.str("ec.key")]);
    openssl(&["genpkey", "-algorithm", "RSA", "-out", &dir.str("p8.key")]);
    for name in ["rsa", "ec", "p8"] {
        let key = dir.str(&format!("{name}.key"));
        let cert = dir.str(&format!("{name}.pem"));
        openssl(&["req", "-x509", "-new", "-key", &key, "-out", &cert, "-days", "2", "-subj", subj, "-addext", san]);
    }
    let head = |key: &str| std::fs::read_to_string(dir.path(key)).unwrap().lines().next().unwrap().to_owned();
    assert_eq!(head("rsa.key"), "-----BEGIN RSA PRIVATE KEY-----");
    assert_eq!(head("ec.key"), "-----BEGIN EC PRIVATE KEY-----");
    assert_eq!(head("p8.key"), "-----BEGIN PRIVATE KEY-----");
    // self.pem style: certificate and key in one file, found by default in the working directory.
    let combined =
        std::fs::read_to_string(dir.path("ec.pem")).unwrap() + &std::fs::read_to_string(dir.path("ec.key")).unwrap();
    std::fs::write(dir.path("self.pem"), combined).unwrap();
    let t = target.to_string();
    let proxies = [
        Proxy::start(&["--cert", &dir.str("rsa.pem"), "--key", &dir.str("rsa.key"), "127.0.0.1:0", &t]),
        Proxy::start(&["--cert", &dir.str("ec.pem"), "--key", &dir.str("ec.key"), "127.0.0.1:0", &t]),
        Proxy::start(&["--cert", &dir.str("p8.pem"), "--key", &dir.str("p8.key"), "127.0.0.1:0", &t]),
        Proxy::start_in(&dir.0, &["127.0.0.1:0", &t]),
    ];
    for (proxy, ca) in proxies.iter().zip(["rsa.pem", "ec.pem", "p8.pem", "ec.pem"]) {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", proxy.addr.port()), "-servername", "localhost"])
            .args(["-CAfile", &dir.str(ca), "-verify_return_error", "-quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        use std::io::Write as _;
        out.stdin.take().unwrap().write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let result = out.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&result.stdout);
        assert!(text.starts_with("HTTP/1.1 405"), "{ca}: {text} {}", String::from_utf8_lossy(&result.stderr));
    }
    // self.pem picked up by default.
    proxies[3].wait_log("SSL/TLS support", std::time::Duration::from_secs(5));
}
