//! Drop-in parity with the Python websockify (issue 16): the command lines real
//! deployments use, run against our binary and, side by side in the same test, against the
//! Python websockify 0.13 from the peers venv (`scripts/peers.sh` installs it).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::token_api::token_api;
use common::upstream::{Upstream, upstream_bin};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_websockify");

/// Opens a session at `url` and echoes one message through it; `false` if the proxy
/// refused it or the bytes did not come back.
async fn echoes(url: &str) -> bool {
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(5), connect_async(url)).await else {
        return false;
    };
    let data = url.as_bytes().to_vec();
    if ws.send(Message::binary(data.clone())).await.is_err() {
        return false;
    }
    let mut got = Vec::new();
    while got.len() < data.len() {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => got.extend_from_slice(&b),
            _ => return false,
        }
    }
    got == data
}

/// Item 1: `-D` with the port taken, and with a certificate that cannot be loaded under
/// `--ssl-only`: the parent says why on stderr and exits non-zero, and leaves no pid file.
/// (The Python websockify daemonizes first and exits 0 either way: the difference is ours
/// on purpose, and the README's list says so.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_that_cannot_serve_says_why() {
    let dir = TempDir::new("dropin-daemon");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let pid = dir.str("ws.pid");
    let started = Instant::now();
    let out = Command::new(BIN).args(["-D", "--pid-file", &pid, &listen, "127.0.0.1:5900"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {listen}")) && stderr.contains("in use"), "{stderr}");
    assert!(!dir.path("ws.pid").exists(), "a daemon that never served leaves no pid file");
    assert!(started.elapsed() < Duration::from_secs(5));

    let missing = dir.str("missing.pem");
    let out = Command::new(BIN)
        .args(["-D", "--ssl-only", "--cert", &missing, "127.0.0.1:0", "127.0.0.1:5900"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");

    // Side by side: the Python websockify on the same taken port.
    let up = Command::new(upstream_bin())
        .args(["-D", &listen, "127.0.0.1:5900"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    eprintln!("the Python websockify -D on a taken port exits with {up} (ours: 1 and the reason)");
    drop(taken);
}

/// Item 2: a token file's bad line is logged with its file and line once logging is up,
/// the good lines serve, and `--check-config` fails naming it. The Python websockify logs
/// "Syntax error in FILE on line N" (at its first lookup) and serves the good lines too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_bad_lines_are_reported() {
    let dir = TempDir::new("dropin-badline");
    let target = echo_target("127.0.0.1:0").await;
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("good: {target}\nthis line is wrong\n")).unwrap();
    let tokens = tokens.to_str().unwrap();
    let args = ["--token-plugin", "TokenFile", "--token-source", tokens];

    let proxy = Proxy::start(&[&args[..], &["127.0.0.1:0"]].concat());
    proxy.wait_log(&format!("{tokens}:2: syntax error"), Duration::from_secs(5));
    assert!(echoes(&format!("{}?token=good", proxy.url())).await, "{}", proxy.log());

    let (status, out) = run_proxy(&["--check-config", args[0], args[1], args[2], args[3], "127.0.0.1:0"]);
    assert!(!status.success(), "--check-config must fail on a bad token line: {out}");
    assert!(out.contains(&format!("{tokens}:2:")), "{out}");

    let up = Upstream::start(&dir.0, &args, None, &[]);
    assert!(echoes(&format!("ws://127.0.0.1:{}/?token=good", up.port)).await, "{}", up.log());
    assert!(up.log().contains("Syntax error in"), "{}", up.log());
}

/// Item 3: a token file (or directory) missing at start: we start with a warning, as the
/// Python websockify starts, and both serve its tokens once it appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_source_at_start_serves_once_it_appears() {
    let dir = TempDir::new("dropin-missing");
    let target = echo_target("127.0.0.1:0").await;
    let file = dir.str("later/tokens");
    let names = dir.str("later-dir");
    let proxy = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", &file, "127.0.0.1:0"]);
    proxy.wait_log("does not exist yet", Duration::from_secs(5));
    let by_name = Proxy::start(&["--token-plugin", "TokenFileName", "--token-source", &names, "127.0.0.1:0"]);
    by_name.wait_log("does not exist yet", Duration::from_secs(5));
    let up = Upstream::start(&dir.0, &["--token-plugin", "TokenFile", "--token-source", &file], None, &[]);
    let up_url = format!("ws://127.0.0.1:{}/?token=t1", up.port);

    assert!(!echoes(&format!("{}?token=t1", proxy.url())).await);
    std::fs::create_dir_all(dir.path("later")).unwrap();
    std::fs::write(&file, format!("t1: {target}\n")).unwrap();
    std::fs::create_dir_all(&names).unwrap();
    std::fs::write(dir.path("later-dir/t1"), target.to_string()).unwrap();
    assert!(echoes(&format!("{}?token=t1", proxy.url())).await, "{}", proxy.log());
    assert!(echoes(&format!("{}?token=t1", by_name.url())).await, "{}", by_name.log());
    assert!(echoes(&up_url).await, "{}", up.log());
}

/// Item 4: a portal appends a token and opens the console at once, many times in a row:
/// every lookup finds the token (ours checks the file on a miss; the Python websockify
/// reads the file on every lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_written_before_lookup_is_always_found() {
    let dir = TempDir::new("dropin-append");
    let target = echo_target("127.0.0.1:0").await;
    let file = dir.path("tokens");
    std::fs::write(&file, "").unwrap();
    let source = file.to_str().unwrap();
    let proxy = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", source, "127.0.0.1:0"]);
    let up = Upstream::start(&dir.0, &["--token-plugin", "TokenFile", "--token-source", source], None, &[]);
    let (mut ours, mut theirs) = (0, 0);
    for n in 0..40 {
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        writeln!(f, "tok{n}: {target}").unwrap();
        drop(f);
        ours += usize::from(echoes(&format!("{}?token=tok{n}", proxy.url())).await);
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        writeln!(f, "up{n}: {target}").unwrap();
        drop(f);
        theirs += usize::from(echoes(&format!("ws://127.0.0.1:{}/?token=up{n}", up.port)).await);
    }
    assert_eq!((ours, theirs), (40, 40), "sessions found at once (ours, Python websockify)\n{}", proxy.log());
}

/// Item 9: unambiguous prefixes of long options work as with upstream's optparse; an
/// ambiguous one is refused by both, each naming the candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_option_prefixes_as_optparse() {
    let dir = TempDir::new("dropin-prefix");
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy = Proxy::start(&["--verb", "--heart", "30", "--run", "127.0.0.1:0", &target]);
    assert!(echoes(&proxy.url()).await);
    proxy.wait_log("DEBUG", Duration::from_secs(5));
    let up = Upstream::start(&dir.0, &["--verb", "--heart", "30", "--run"], Some(&target), &[]);
    assert!(echoes(&format!("ws://127.0.0.1:{}/", up.port)).await, "{}", up.log());

    let (status, out) = run_proxy(&["--ssl", "127.0.0.1:0", &target]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("ambiguous option --ssl") && out.contains("--ssl-only"), "{out}");
    let theirs = Command::new(upstream_bin()).args(["--ssl", "127.0.0.1:1", &target]).output().unwrap();
    assert_eq!(theirs.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&theirs.stderr).contains("ambiguous option: --ssl"));
}

/// Item 10: `--log-file` keeps logging to stderr too (journald users rely on it), as
/// upstream does; with `-D` only the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_keeps_stderr() {
    let dir = TempDir::new("dropin-logfile");
    let target = echo_target("127.0.0.1:0").await.to_string();
    let ours_log = dir.str("ours.log");
    let proxy = Proxy::start(&["--log-file", &ours_log, "127.0.0.1:0", &target]);
    assert!(echoes(&proxy.url()).await);
    proxy.wait_log("session closed", Duration::from_secs(5));
    let file = std::fs::read_to_string(&ours_log).unwrap();
    assert!(file.contains("WebSocket connection") && file.contains("session closed"), "{file}");
    assert!(proxy.log().contains("WebSocket connection"), "stderr too: {}", proxy.log());

    let up_log = dir.str("up.log");
    let up = Upstream::start(&dir.0, &["--log-file", &up_log], Some(&target), &[]);
    assert!(echoes(&format!("ws://127.0.0.1:{}/", up.port)).await);
    std::thread::sleep(Duration::from_millis(300));
    let file = std::fs::read_to_string(&up_log).unwrap();
    assert!(file.contains("WebSocket connection"), "{file}");
    assert!(up.log().contains("WebSocket connection"), "upstream's stderr: {}", up.log());
}

/// Item 11: a `token` cookie is read only with `--token-from-cookie` (upstream reads no
/// cookie), and then only from a page of the same origin (or one ExpectOrigin allows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cookie_is_opt_in_and_same_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let dir = TempDir::new("dropin-cookie");
    let target = echo_target("127.0.0.1:0").await;
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("vm1: {target}\n")).unwrap();
    let tokens = tokens.to_str().unwrap();
    let status = |url: String, headers: Vec<(&'static str, String)>| async move {
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        match connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(_) => 0, // dropped without an answer (upstream's way to refuse a token)
        }
    };
    let cookie = || ("Cookie", "token=vm1".to_owned());
    let plain = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", tokens, "127.0.0.1:0"]);
    assert_eq!(status(plain.url(), vec![cookie()]).await, 400, "no cookie without the option");
    let up = Upstream::start(&dir.0, &["--token-plugin", "TokenFile", "--token-source", tokens], None, &[]);
    let up_status = status(format!("ws://127.0.0.1:{}/", up.port), vec![cookie()]).await;
    assert_ne!(up_status, 101, "upstream reads no cookie either");

    let opt =
        Proxy::start(&["--token-plugin", "TokenFile", "--token-source", tokens, "--token-from-cookie", "127.0.0.1:0"]);
    let host = opt.addr.to_string();
    assert_eq!(status(opt.url(), vec![cookie()]).await, 101, "no Origin: not a browser");
    assert_eq!(status(opt.url(), vec![cookie(), ("Origin", format!("http://{host}"))]).await, 101);
    assert_eq!(status(opt.url(), vec![cookie(), ("Origin", "http://evil.example".into())]).await, 403);
    assert_eq!(status(format!("{}?token=vm1", opt.url()), vec![("Origin", "http://evil.example".into())]).await, 101);
    opt.wait_log("token from a cookie on a cross-site request refused", Duration::from_secs(5));
    let listed = Proxy::start(&[
        "--token-plugin",
        "TokenFile",
        "--token-source",
        tokens,
        "--token-from-cookie",
        "--auth-plugin",
        "ExpectOrigin",
        "--auth-source",
        "https://portal.example",
        "127.0.0.1:0",
    ]);
    assert_eq!(status(listed.url(), vec![cookie(), ("Origin", "https://portal.example".into())]).await, 101);
}

/// Item 12: BaseTokenAPI / JSONTokenApi put the token into `%s` with RFC 3986's unreserved
/// characters as written and every other byte percent-encoded (the API's /strict/ path
/// checks exactly that), and follow redirects, as upstream (through `requests`) does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_api_encoding_and_redirects() {
    let dir = TempDir::new("dropin-api");
    let target = echo_target("127.0.0.1:0").await;
    let (api, port) = token_api(&dir.0, &[format!("a.b-c_d~e={target}"), format!("x y={target}")], 0);
    for (plugin, path, token) in [
        ("BaseTokenAPI", "strict", "a.b-c_d~e"),
        ("BaseTokenAPI", "strict", "x%20y"),
        ("BaseTokenAPI", "redirect", "a.b-c_d~e"),
        ("JSONTokenApi", "redirect-json", "a.b-c_d~e"),
    ] {
        let source = format!("http://127.0.0.1:{port}/{path}/%s");
        let proxy = Proxy::start(&["--token-plugin", plugin, "--token-source", &source, "127.0.0.1:0"]);
        assert!(echoes(&format!("{}?token={token}", proxy.url())).await, "{plugin} {path} {token}: {}", proxy.log());
        let up = Upstream::start(&dir.0, &["--token-plugin", plugin, "--token-source", &source], None, &[]);
        let url = format!("ws://127.0.0.1:{}/?token={token}", up.port);
        assert!(echoes(&url).await, "upstream {plugin} {path} {token}: {}", up.log());
    }
    // A redirect loop ends in a refusal (502), not a hang.
    let source = format!("http://127.0.0.1:{port}/loop/%s");
    let proxy = Proxy::start(&["--token-plugin", "BaseTokenAPI", "--token-source", &source, "127.0.0.1:0"]);
    assert!(!echoes(&format!("{}?token=a.b-c_d~e", proxy.url())).await);
    proxy.wait_log("more than 5 redirects", Duration::from_secs(5));
    drop(api);
}

/// Item 13: status lines carry the reason phrase of their code (401 Unauthorized, 403
/// Forbidden, 429 Too Many Requests, ...); refusals carry upstream's words in the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lines_match_their_codes() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let head = |port: u16, extra: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
        out.lines().next().unwrap_or_default().to_owned()
    };
    let basic = Proxy::start(&["--auth-plugin", "BasicHTTPAuth", "--auth-source", "u:p", "127.0.0.1:0", &target]);
    assert_eq!(head(basic.addr.port(), ""), "HTTP/1.1 401 Unauthorized");
    let origin =
        Proxy::start(&["--auth-plugin", "ExpectOrigin", "--auth-source", "http://good", "127.0.0.1:0", &target]);
    assert_eq!(head(origin.addr.port(), "Origin: http://evil\r\n"), "HTTP/1.1 403 Forbidden");
    let capped = Proxy::start(&["--max-sessions-per-ip", "1", "127.0.0.1:0", &target]);
    let (_first, _) = connect_async(capped.url()).await.unwrap();
    assert_eq!(head(capped.addr.port(), ""), "HTTP/1.1 429 Too Many Requests");

    let dir = TempDir::new("dropin-status");
    let up = Upstream::start(&dir.0, &["--auth-plugin", "BasicHTTPAuth", "--auth-source", "u:p"], Some(&target), &[]);
    assert_eq!(head(up.port, ""), "HTTP/1.1 401 Unauthorized");
}

/// Items 14 and 15: the phrases operators' alerts match in upstream's log lines, and the
/// addresses a bare port really binds (every interface, IPv6 too: upstream binds IPv4 only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_phrases_and_bound_addresses() {
    let dir = TempDir::new("dropin-phrases");
    let target = echo_target("127.0.0.1:0").await;
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("vm1: {target}\n")).unwrap();
    let tokens = tokens.to_str().unwrap();
    let proxy = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", tokens, "127.0.0.1:0"]);
    assert!(echoes(&format!("{}?token=vm1", proxy.url())).await);
    assert!(!echoes(&format!("{}?token=nope", proxy.url())).await);
    proxy.wait_log(
        &format!("Plain non-SSL (ws://) WebSocket connection: binary session, connecting to: {target}"),
        Duration::from_secs(5),
    );
    proxy.wait_log("Token '[", Duration::from_secs(5));
    assert!(proxy.log().contains("' not found") && !proxy.log().contains("nope"), "{}", proxy.log());

    let up = Upstream::start(&dir.0, &["--token-plugin", "TokenFile", "--token-source", tokens], None, &[]);
    assert!(echoes(&format!("ws://127.0.0.1:{}/?token=vm1", up.port)).await);
    assert!(!echoes(&format!("ws://127.0.0.1:{}/?token=nope", up.port)).await);
    std::thread::sleep(Duration::from_millis(300));
    let theirs = up.log();
    for phrase in
        ["Plain non-SSL (ws://) WebSocket connection", &format!("connecting to: {target}"), "Token 'nope' not found"]
    {
        assert!(theirs.contains(phrase), "upstream says {phrase:?}: {theirs}");
    }

    // A bare port: every interface, and the settings say so.
    let port = closed_port();
    let bare = Proxy::start(&[&port.to_string(), &target.to_string()]);
    bare.wait_log(&format!("Bound to [::]:{port}: every interface, IPv6 and IPv4"), Duration::from_secs(5));
    assert!(echoes(&format!("ws://[::1]:{port}/")).await, "IPv6 loopback");
    assert!(echoes(&format!("ws://127.0.0.1:{port}/")).await, "IPv4 loopback");
}
