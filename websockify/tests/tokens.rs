//! Choosing targets by token and authenticating, through the real binary: token files,
//! TokenFileName, an HTTP token API (Python http.server), JWTs signed by PyJWT, Basic auth,
//! Origin and client-certificate CN checks. Every refusal is an HTTP status before any 101.

mod common;

use std::process::Command;
use std::time::Duration;

use common::pki::TempDir;
use common::*;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects with extra headers; `Err((status, body))` when refused before the upgrade.
async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

/// One echo through a session: proves it reached an echo target.
async fn works(url: &str, headers: &[(&str, &str)]) {
    let mut ws = open(url, headers).await.unwrap_or_else(|e| panic!("{url}: refused {e:?}"));
    ws_echo(&mut ws, url.as_bytes()).await;
}

async fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match open(url, headers).await {
        Ok(_) => panic!("{url}: expected a refusal"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_lookup_edits_and_refusals() {
    let dir = TempDir::new("tokfile");
    let a = echo_target("127.0.0.1:0").await;
    let b = echo_target("127.0.0.1:0").await;
    let file = dir.path("tokens");
    std::fs::write(&file, format!("# consoles\nvm1: 127.0.0.1:{}\nvm2: [::1]:1\n", a.port())).unwrap();
    let proxy = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", file.to_str().unwrap(), "127.0.0.1:0"]);
    let base = format!("ws://127.0.0.1:{}/websockify", proxy.addr.port());
    works(&format!("{base}?token=vm1"), &[]).await;
    assert_eq!(refused(&format!("{base}?token=nope"), &[]).await, (404, "Unknown token\n".into()));
    let (status, body) = refused(&base, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Missing token"), "{body}");
    // A token cookie is not read without --token-from-cookie (upstream reads none).
    assert_eq!(refused(&base, &[("Cookie", "theme=dark; token=vm1")]).await.0, 400);
    // Edits are seen without a restart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, format!("vm1: 127.0.0.1:{}\nvm3: 127.0.0.1:{}\n", a.port(), b.port())).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    works(&format!("{base}?token=vm3"), &[]).await;
    // Named by its id (the first 8 hex digits of its SHA-256), in the lookup line and in
    // the request line that failed.
    proxy.wait_log(&format!("Token '[{}]' not found", &sha256_hex(b"nope")[..8]), std::time::Duration::from_secs(5));
    assert!(!proxy.log().contains("nope"), "{}", proxy.log());
    // The legacy spelling.
    let legacy = Proxy::start(&["--target-config", file.to_str().unwrap(), "127.0.0.1:0"]);
    works(&format!("ws://127.0.0.1:{}/?token=vm3", legacy.addr.port()), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sources_directory_filename_unix_host_and_path() {
    let dir = TempDir::new("toksrc");
    let tcp = echo_target("127.0.0.1:0").await;
    // A UNIX echo target, named from a token file line.
    let sock = dir.path("echo.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    std::fs::create_dir_all(dir.path("tokens.d")).unwrap();
    std::fs::write(dir.path("tokens.d/a"), format!("tcp: 127.0.0.1:{}\n", tcp.port())).unwrap();
    std::fs::write(dir.path("tokens.d/b"), format!("unix: unix_socket:{}\n", sock.display())).unwrap();
    let proxy =
        Proxy::start(&["--token-plugin", "ReadOnlyTokenFile", "--token-source", &dir.str("tokens.d"), "127.0.0.1:0"]);
    let base = format!("ws://127.0.0.1:{}/websockify", proxy.addr.port());
    works(&format!("{base}?token=tcp"), &[]).await;
    works(&format!("{base}?token=unix"), &[]).await;

    // TokenFileName: the file named after the token; no escape from the directory.
    std::fs::create_dir_all(dir.path("names")).unwrap();
    std::fs::write(dir.path("names/vm1"), format!("127.0.0.1:{}\n", tcp.port())).unwrap();
    std::fs::write(dir.path("secret"), format!("127.0.0.1:{}\n", tcp.port())).unwrap();
    let names = Proxy::start(&[
        "--token-plugin",
        "TokenFileName",
        "--token-source",
        &dir.str("names"),
        "--token-from-path",
        "127.0.0.1:0",
    ]);
    let base = format!("ws://127.0.0.1:{}", names.addr.port());
    works(&format!("{base}/websockify?token=vm1"), &[]).await;
    works(&format!("{base}/websockify/vm1"), &[]).await;
    assert_eq!(refused(&format!("{base}/?token=..%2Fsecret"), &[]).await.0, 404);

    // UnixDomainSocketDirectory.
    let uds = Proxy::start(&[
        "--token-plugin",
        "UnixDomainSocketDirectory",
        "--token-source",
        &dir.0.to_string_lossy(),
        "127.0.0.1:0",
    ]);
    works(&format!("ws://127.0.0.1:{}/?token=echo.sock", uds.addr.port()), &[]).await;
    assert_eq!(refused(&format!("ws://127.0.0.1:{}/?token=secret", uds.addr.port()), &[]).await.0, 404);
    // The socket's name is the token: logs show its id in its place, and never the name.
    let id = &sha256_hex(b"echo.sock")[..8];
    uds.wait_log(
        &format!("connecting to unix socket: {}/[{id}] (/?token=[{id}])", dir.0.display()),
        Duration::from_secs(5),
    );
    uds.wait_log("session closed", Duration::from_secs(5));
    assert!(!uds.log().contains("echo.sock"), "{}", uds.log());

    // --host-token: the Host header names the target.
    std::fs::write(dir.path("hosts"), format!("vm1.example.com: 127.0.0.1:{}\n", tcp.port())).unwrap();
    let host = Proxy::start(&[
        "--token-plugin",
        "TokenFile",
        "--token-source",
        &dir.str("hosts"),
        "--host-token",
        "127.0.0.1:0",
    ]);
    let url = format!("ws://127.0.0.1:{}/", host.addr.port());
    works(&url, &[("Host", "vm1.example.com:6080")]).await;
    assert_eq!(refused(&url, &[("Host", "vm2.example.com")]).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_token_api_plain_json_errors_and_timeouts() {
    let dir = TempDir::new("tokapi");
    let target = echo_target("127.0.0.1:0").await;
    let (api, api_port) = token_api(&dir, target, &[]).await;
    for (plugin, kind) in [("BaseTokenAPI", "plain"), ("JSONTokenApi", "json")] {
        let src = format!("http://127.0.0.1:{api_port}/{kind}/%s");
        let proxy = Proxy::start(&["--token-plugin", plugin, "--token-source", &src, "127.0.0.1:0"]);
        let base = format!("ws://127.0.0.1:{}/?token=", proxy.addr.port());
        works(&format!("{base}vm1"), &[]).await;
        assert_eq!(refused(&format!("{base}unknown"), &[]).await.0, 404, "{plugin}");
    }
    // An API error is an unknown token (upstream: non-2xx); a hung API is a 504 within the timeout.
    let proxy = Proxy::start(&[
        "--token-plugin",
        "BaseTokenAPI",
        "--token-source",
        &format!("http://127.0.0.1:{api_port}/error/%s"),
        "127.0.0.1:0",
    ]);
    assert_eq!(refused(&format!("ws://127.0.0.1:{}/?token=vm1", proxy.addr.port()), &[]).await.0, 404);
    let slow = Proxy::start(&[
        "--token-plugin",
        "BaseTokenAPI",
        "--token-source",
        &format!("http://127.0.0.1:{api_port}/slow/%s"),
        "127.0.0.1:0",
    ]);
    let started = std::time::Instant::now();
    assert_eq!(
        refused(&format!("ws://127.0.0.1:{}/?token=vm1", slow.addr.port()), &[]).await,
        (504, "Token lookup timed out\n".into())
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // An API that is down: 502.
    let down = Proxy::start(&[
        "--token-plugin",
        "JSONTokenApi",
        "--token-source",
        &format!("http://127.0.0.1:{}/json/%s", closed_port()),
        "127.0.0.1:0",
    ]);
    assert_eq!(refused(&format!("ws://127.0.0.1:{}/?token=vm1", down.addr.port()), &[]).await.0, 502);
    drop(api);
}

/// The token API server; stopped (and reaped) when dropped, also when a test fails.
struct TokenApiServer(std::process::Child);

impl Drop for TokenApiServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts tests/peers/token_api.py knowing token `vm1` -> `target`; returns it and its port.
async fn token_api(
    dir: &TempDir,
    target: std::net::SocketAddr,
    env: &[(&str, &std::path::Path)],
) -> (TokenApiServer, String) {
    let port_file = dir.path("port");
    let api = Command::new(python())
        .arg(repo_root().join("tests/peers/token_api.py"))
        .arg(&port_file)
        .arg(format!("vm1=127.0.0.1:{}", target.port()))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let api = TokenApiServer(api);
    loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && !p.is_empty()
        {
            return (api, p);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn jwt(alg: &str, key: &std::path::Path, claims: serde_json::Value) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("tests/peers/jwt_tool.py"))
        .args([alg, key.to_str().unwrap(), &claims.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_from_pyjwt() {
    let dir = TempDir::new("jwt");
    let target = echo_target("127.0.0.1:0").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({"host": "127.0.0.1", "port": target.port()});
    // Keys: an HMAC secret (base64url, as upstream reads it), RSA, EC P-256 and P-384, Ed25519.
    std::fs::write(dir.path("hmac.key"), "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg").unwrap();
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dir.str("rsa.key")]);
    openssl(&["pkey", "-in", &dir.str("rsa.key"), "-pubout", "-out", &dir.str("rsa.pub")]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &dir.str("p256.key")]);
    openssl(&["pkey", "-in", &dir.str("p256.key"), "-pubout", "-out", &dir.str("p256.pub")]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", &dir.str("p384.key")]);
    openssl(&["genpkey", "-algorithm", "ED25519", "-out", &dir.str("ed.key")]);
    openssl(&["pkey", "-in", &dir.str("ed.key"), "-pubout", "-out", &dir.str("ed.pub")]);
    let cases: &[(&str, &str, &str)] = &[
        ("hmac.key", "hmac.key", "HS256"),
        ("hmac.key", "hmac.key", "HS512"),
        ("rsa.pub", "rsa.key", "RS256"),
        ("rsa.pub", "rsa.key", "PS384"),
        ("rsa.key", "rsa.key", "RS512"),
        ("p256.pub", "p256.key", "ES256"),
        ("p384.key", "p384.key", "ES384"),
        ("ed.pub", "ed.key", "EdDSA"),
        ("ed.key", "ed.key", "EdDSA"),
    ];
    for (verify_key, sign_key, alg) in cases {
        let proxy =
            Proxy::start(&["--token-plugin", "JWTTokenApi", "--token-source", &dir.str(verify_key), "127.0.0.1:0"]);
        let base = format!("ws://127.0.0.1:{}/websockify?token=", proxy.addr.port());
        let token = jwt(alg, &dir.path(sign_key), claims.clone());
        works(&format!("{base}{token}"), &[]).await;
        if *alg == "HS256" || *alg == "RS256" {
            let mut expired = claims.clone();
            expired["exp"] = (now - 60).into();
            let (status, body) = refused(&format!("{base}{}", jwt(alg, &dir.path(sign_key), expired)), &[]).await;
            assert_eq!((status, body.as_str()), (403, "Token refused\n"), "{alg} expired");
            let mut early = claims.clone();
            early["nbf"] = (now + 3600).into();
            assert_eq!(
                refused(&format!("{base}{}", jwt(alg, &dir.path(sign_key), early)), &[]).await.0,
                403,
                "{alg} nbf"
            );
            let mut valid = claims.clone();
            valid["exp"] = (now + 3600).into();
            works(&format!("{base}{}", jwt(alg, &dir.path(sign_key), valid)), &[]).await;
            // alg=none is refused.
            assert_eq!(
                refused(&format!("{base}{}", jwt("none", &dir.path(sign_key), claims.clone())), &[]).await.0,
                403
            );
            assert_eq!(refused(&format!("{base}not.a.jwt"), &[]).await.0, 403);
        }
        if *alg == "RS256" {
            // Algorithm confusion: an HS256 token whose HMAC key is the RSA public key file.
            let (status, _) =
                refused(&format!("{base}{}", jwt("HS256-RAWKEY", &dir.path("rsa.pub"), claims.clone())), &[]).await;
            assert_eq!(status, 403, "algorithm confusion refused");
            // A token signed by another RSA key.
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &dir.str("other.key"),
            ]);
            assert_eq!(
                refused(&format!("{base}{}", jwt("RS256", &dir.path("other.key"), claims.clone())), &[]).await.0,
                403
            );
        }
    }
}

fn jwe(
    alg: &str,
    enc: &str,
    key: &std::path::Path,
    claims: &serde_json::Value,
    sign_key: Option<&std::path::Path>,
) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("tests/peers/jwe_tool.py"))
        .args([alg, enc, key.to_str().unwrap(), &claims.to_string()])
        .args(sign_key.map(|k| k.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Encrypted JWTs made by jwcrypto (the library upstream uses), decrypted with the key
/// file (an RSA private key or a secret), their signed JWT inside checked with it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwe_tokens_from_jwcrypto() {
    let dir = TempDir::new("jwe");
    let target = echo_target("127.0.0.1:0").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({"host": "127.0.0.1", "port": target.port()});
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dir.str("rsa.key")]);
    openssl(&["pkey", "-in", &dir.str("rsa.key"), "-pubout", "-out", &dir.str("rsa.pub")]);
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dir.str("other.key")]);
    // A secret as upstream reads it: base64url text, here of 32 bytes (the inner HS256
    // signature needs at least that much in jwcrypto, so the smaller key wraps cannot be
    // made with it).
    std::fs::write(dir.path("secret32"), "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYnk").unwrap();
    let start =
        |key: &str| Proxy::start(&["--token-plugin", "JWTTokenApi", "--token-source", &dir.str(key), "127.0.0.1:0"]);
    let base = |proxy: &Proxy| format!("ws://127.0.0.1:{}/websockify?token=", proxy.addr.port());

    let rsa = start("rsa.key");
    let url = base(&rsa);
    // Upstream's own test case first.
    for (alg, enc) in [("RSA-OAEP", "A256CBC-HS512"), ("RSA-OAEP-256", "A128GCM"), ("RSA-OAEP", "A192CBC-HS384")] {
        works(&format!("{url}{}", jwe(alg, enc, &dir.path("rsa.key"), &claims, None)), &[]).await;
    }
    let mut expired = claims.clone();
    expired["exp"] = (now - 60).into();
    let token = jwe("RSA-OAEP", "A256GCM", &dir.path("rsa.key"), &expired, None);
    assert_eq!(refused(&format!("{url}{token}"), &[]).await, (403, "Token refused\n".into()), "expired inside");
    // Signed inside by another key; encrypted to another key; RSA1_5; a changed tag.
    let token = jwe("RSA-OAEP", "A256GCM", &dir.path("rsa.key"), &claims, Some(&dir.path("other.key")));
    assert_eq!(refused(&format!("{url}{token}"), &[]).await.0, 403, "signed by another key");
    let token = jwe("RSA-OAEP", "A256GCM", &dir.path("other.key"), &claims, Some(&dir.path("rsa.key")));
    assert_eq!(refused(&format!("{url}{token}"), &[]).await.0, 403, "encrypted to another key");
    rsa.wait_log("JWE content key could not be decrypted with this key", Duration::from_secs(5));
    let token = jwe("RSA1_5", "A128GCM", &dir.path("rsa.key"), &claims, None);
    assert_eq!(refused(&format!("{url}{token}"), &[]).await.0, 403, "RSA1_5");
    rsa.wait_log("JWE alg RSA1_5 is refused", Duration::from_secs(5));
    let token = jwe("RSA-OAEP", "A256CBC-HS512", &dir.path("rsa.key"), &claims, None);
    let tampered = format!("{}{}", &token[..token.len() - 2], if token.ends_with("AA") { "BA" } else { "AA" });
    assert_eq!(refused(&format!("{url}{tampered}"), &[]).await.0, 403, "changed tag");
    rsa.wait_log("JWE authentication tag does not match", Duration::from_secs(5));

    // A public key can verify but not decrypt.
    let public = start("rsa.pub");
    let token = jwe("RSA-OAEP", "A256GCM", &dir.path("rsa.key"), &claims, None);
    assert_eq!(refused(&format!("{}{token}", base(&public)), &[]).await.0, 403);
    public.wait_log("an encrypted JWT needs a private RSA or EC key or a secret", Duration::from_secs(5));

    // EC private keys: ECDH-ES, direct and with key wrap, on P-256 and P-384.
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &dir.str("p256.key")]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", &dir.str("p384.key")]);
    let p256 = start("p256.key");
    let url = base(&p256);
    for (alg, enc) in [
        ("ECDH-ES", "A256GCM"),
        ("ECDH-ES", "A256CBC-HS512"),
        ("ECDH-ES+A128KW", "A128GCM"),
        ("ECDH-ES+A256KW", "A192CBC-HS384"),
    ] {
        works(&format!("{url}{}", jwe(alg, enc, &dir.path("p256.key"), &claims, None)), &[]).await;
    }
    let p384 = start("p384.key");
    works(&format!("{}{}", base(&p384), jwe("ECDH-ES+A192KW", "A256GCM", &dir.path("p384.key"), &claims, None)), &[])
        .await;
    // Encrypted to the other curve's key: refused, naming the mismatch.
    let token = jwe("ECDH-ES", "A256GCM", &dir.path("p384.key"), &claims, Some(&dir.path("p256.key")));
    assert_eq!(refused(&format!("{url}{token}"), &[]).await.0, 403, "P-384 epk to a P-256 key");
    p256.wait_log("JWE epk curve \"P-384\" does not match the EC private key", Duration::from_secs(5));

    let secret = start("secret32");
    let url = base(&secret);
    for (alg, enc) in [("dir", "A256GCM"), ("dir", "A128CBC-HS256"), ("A256KW", "A256CBC-HS512"), ("A256KW", "A128GCM")]
    {
        works(&format!("{url}{}", jwe(alg, enc, &dir.path("secret32"), &claims, None)), &[]).await;
    }
}

/// Opens a session from a chosen loopback source address.
async fn open_from(src: &str, url: &str) -> Result<Ws, (u16, String)> {
    let dst: std::net::SocketAddr = url.trim_start_matches("ws://").split('/').next().unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(dst).await.unwrap();
    match tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_caps_reached_and_released() {
    let dir = TempDir::new("caps");
    let target = echo_target("127.0.0.1:0").await;
    std::fs::write(dir.path("tokens"), format!("a: {target}\nb: {target}\nc: {target}\n")).unwrap();
    let proxy = Proxy::start(&[
        "--token-plugin",
        "TokenFile",
        "--token-source",
        &dir.str("tokens"),
        "--max-sessions",
        "3",
        "--max-sessions-per-ip",
        "2",
        "--max-sessions-per-token",
        "1",
        "127.0.0.1:0",
    ]);
    let url = |t: &str| format!("ws://{}/websockify?token={t}", proxy.addr);
    let mut a = open_from("127.0.0.1", &url("a")).await.unwrap();
    ws_echo(&mut a, b"a").await;
    // Per token.
    assert_eq!(open_from("127.0.0.2", &url("a")).await.err().map(|e| e.0), Some(429));
    let _b = open_from("127.0.0.1", &url("b")).await.unwrap();
    // Per IP: 127.0.0.1 has two.
    let (status, body) = open_from("127.0.0.1", &url("c")).await.err().unwrap();
    assert_eq!((status, body.as_str()), (429, "Too many sessions\n"));
    let _c = open_from("127.0.0.2", &url("c")).await.unwrap();
    // In total: three.
    std::fs::write(dir.path("tokens"), format!("a: {target}\nb: {target}\nc: {target}\nd: {target}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(open_from("127.0.0.3", &url("d")).await.err().map(|e| e.0), Some(503));
    // Released when a session ends.
    a.close(None).await.unwrap();
    while a.next().await.is_some() {}
    drop(a);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(ws) = open_from("127.0.0.3", &url("a")).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ws_echo(&mut again.expect("the place is released"), b"again").await;
    proxy.wait_log("session refused: server full", std::time::Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_token_api_verified() {
    let dir = TempDir::new("tokapi-tls");
    let ca = common::pki::Ca::new("token API CA");
    let ca_pem = ca.write(&dir.0, "ca.pem");
    let (cert, key) = ca.issue(&dir.0, "api", "localhost", false);
    let target = echo_target("127.0.0.1:0").await;
    let (api, api_port) = token_api(&dir, target, &[("TOKEN_API_CERT", &cert), ("TOKEN_API_KEY", &key)]).await;
    let src = format!("https://localhost:{api_port}/json/%s");
    // Trusting the test CA through the standard SSL_CERT_FILE variable: the lookup works.
    let trusted = Proxy::start_with_env(
        &["--token-plugin", "JSONTokenApi", "--token-source", &src, "127.0.0.1:0"],
        &[("SSL_CERT_FILE", ca_pem.to_str().unwrap())],
    );
    if open(&format!("ws://127.0.0.1:{}/?token=vm1", trusted.addr.port()), &[]).await.is_err() {
        panic!("trusted lookup failed: {}", trusted.log());
    }
    // Without it the API's certificate is refused: 502, never a lookup over an unverified link.
    let untrusted = Proxy::start_with_env(
        &["--token-plugin", "JSONTokenApi", "--token-source", &src, "127.0.0.1:0"],
        &[("SSL_CERT_FILE", "/nonexistent.pem")],
    );
    assert_eq!(refused(&format!("ws://127.0.0.1:{}/?token=vm1", untrusted.addr.port()), &[]).await.0, 502);
    drop(api);
}
