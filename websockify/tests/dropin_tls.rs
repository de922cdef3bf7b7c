//! Drop-in parity with the Python websockify for TLS command lines (issue 16): OpenSSL
//! cipher strings in `--ssl-ciphers`, keys in OpenSSL's legacy PEM encryption with
//! `--key-password`, and X.509 v1 client certificates with `--verify-client`. Every key and
//! certificate is made by the real `openssl` command, as users make them; every handshake is
//! made by `openssl s_client`, against our binary and the Python websockify 0.13 from the
//! peers venv (`scripts/peers.sh`) side by side.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::pki::TempDir;
use common::upstream::Upstream;
use common::*;

/// Ours on port 0, sessions to a closed port (only the TLS layer is under test).
fn ours(args: &[&str]) -> Proxy {
    let target = format!("127.0.0.1:{}", closed_port());
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["127.0.0.1:0", &target]);
    Proxy::start(&all)
}

/// Runs `openssl ARGS` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl s_client` to `port` with `args`, sending a plain HTTP request once the handshake
/// is done. The handshake succeeded when s_client reports a cipher; the server accepted the
/// client (its certificate, which a TLS 1.3 server checks after the client thinks the
/// handshake done) when an HTTP answer came back.
fn s_client(port: u16, args: &[&str]) -> (bool, bool) {
    let mut child = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &format!("127.0.0.1:{port}"), "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    }
    let out = child.wait_with_output().expect("s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let handshake = text.lines().any(|l| l.contains(", Cipher is ") && !l.contains("(NONE)"));
    (handshake, handshake && text.contains("HTTP/1."))
}

/// A self-signed RSA 3072 certificate (strong enough for OpenSSL's security level 3) and an
/// ECDSA P-384 one (level 4), as `cert.pem`/`key.pem` and `ec-cert.pem`/`ec-key.pem`.
fn server_certs(dir: &TempDir) {
    let rsa = ["req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", "key.pem", "-out", "cert.pem"];
    openssl(&dir.0, &[&rsa[..], &["-subj", "/CN=localhost", "-days", "30"]].concat());
    openssl(&dir.0, &["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "ec-key.pem"]);
    openssl(
        &dir.0,
        &[
            "req",
            "-x509",
            "-key",
            "ec-key.pem",
            "-sha384",
            "-out",
            "ec-cert.pem",
            "-subj",
            "/CN=localhost",
            "-days",
            "30",
        ],
    );
}

/// The TLS 1.2 suites rustls implements (by OpenSSL name), and some it does not.
const RUSTLS_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
];
const OTHER_SUITES: &[&str] = &[
    "AES128-GCM-SHA256",
    "AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
];

/// For each cipher string, each TLS 1.2 client suite: the handshake succeeds on ours exactly
/// when it succeeds on upstream, for the suites rustls implements; the others never succeed
/// on ours (rustls lacks them), whatever upstream does (printed).
#[test]
fn cipher_strings_side_by_side() {
    let dir = TempDir::new("dropin-tls-ciphers");
    server_certs(&dir);
    let rsa = ["--cert", &dir.str("cert.pem"), "--key", &dir.str("key.pem")];
    let ec = ["--cert", &dir.str("ec-cert.pem"), "--key", &dir.str("ec-key.pem")];
    let cases: &[(&[&str], &str)] = &[
        (&rsa, "HIGH:!aNULL:!MD5"),
        (&rsa, "ECDHE+AESGCM"),
        (&rsa, "kEECDH+aRSA+AES:kRSA+AES:+AES256:RC4-SHA:!kEDH:!LOW:!EXP:!MD5:!aNULL:!eNULL"),
        (&rsa, "EECDH+AESGCM:EDH+AESGCM:!ECDHE-RSA-AES256-GCM-SHA384"),
        (&rsa, "DEFAULT:@SECLEVEL=3"),
        (&rsa, "CHACHA20:AES256:-ECDHE-RSA-AES256-GCM-SHA384"),
        (&ec, "DEFAULT:@SECLEVEL=4"),
        (&ec, "HIGH:!CHACHA20"),
    ];
    let mut report = Vec::new();
    for (cert, expr) in cases {
        let mut args = cert.to_vec();
        args.extend(["--ssl-ciphers", expr]);
        let proxy = ours(&args);
        let upstream = Upstream::start(&dir.0, &args, Some(&format!("127.0.0.1:{}", closed_port())), &[]);
        for suite in RUSTLS_SUITES.iter().chain(OTHER_SUITES) {
            let client = ["-tls1_2", "-cipher", suite];
            let (theirs, _) = s_client(upstream.port, &client);
            let (mine, _) = s_client(proxy.addr.port(), &client);
            report.push(format!("{expr:?} {suite}: upstream {theirs}, ours {mine}"));
            if RUSTLS_SUITES.contains(suite) {
                assert_eq!(mine, theirs, "{expr:?} with client suite {suite}: ours {mine}, upstream {theirs}");
            } else {
                assert!(!mine, "{expr:?}: rustls has no {suite}, yet the handshake succeeded");
            }
        }
        // TLS 1.3 stays on, as in OpenSSL.
        let (theirs, _) = s_client(upstream.port, &["-tls1_3"]);
        let (mine, _) = s_client(proxy.addr.port(), &["-tls1_3"]);
        assert_eq!((mine, theirs), (true, true), "{expr:?} over TLS 1.3");
    }
    eprintln!("{}", report.join("\n"));
}

/// A key in OpenSSL's legacy PEM encryption, as `openssl genrsa -traditional -aes256`,
/// `openssl rsa -des3` and `openssl ec -aes256` write it, with `--key-password`.
#[test]
fn legacy_encrypted_keys_side_by_side() {
    let dir = TempDir::new("dropin-tls-legacy");
    let d = &dir.0;
    openssl(d, &["genrsa", "-traditional", "-aes256", "-passout", "pass:x", "-out", "rsa-aes.key", "2048"]);
    openssl(
        d,
        &[
            "rsa",
            "-in",
            "rsa-aes.key",
            "-passin",
            "pass:x",
            "-des3",
            "-passout",
            "pass:x",
            "-traditional",
            "-out",
            "rsa-des3.key",
        ],
    );
    openssl(d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.plain"]);
    openssl(d, &["ec", "-in", "ec.plain", "-aes256", "-passout", "pass:x", "-out", "ec-aes.key"]);
    for key in ["rsa-aes.key", "rsa-des3.key", "ec-aes.key"] {
        let text = std::fs::read_to_string(dir.path(key)).expect("key");
        assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{key}: {text}");
        let cert = format!("{key}.pem");
        openssl(
            d,
            &["req", "-x509", "-key", key, "-passin", "pass:x", "-out", &cert, "-subj", "/CN=localhost", "-days", "30"],
        );
        let args = ["--cert", &dir.str(&cert), "--key", &dir.str(key), "--key-password", "x"];
        let proxy = ours(&args);
        let upstream = Upstream::start(&dir.0, &args, Some(&format!("127.0.0.1:{}", closed_port())), &[]);
        for tls in ["-tls1_2", "-tls1_3"] {
            assert_eq!(s_client(upstream.port, &[tls]), (true, true), "upstream, {key} {tls}");
            assert_eq!(s_client(proxy.addr.port(), &[tls]), (true, true), "ours, {key} {tls}");
        }
        // A wrong password: ours says so and does not start; upstream starts, then fails
        // every TLS handshake (it loads the key per connection).
        let wrong = ["--cert", &dir.str(&cert), "--key", &dir.str(key), "--key-password", "y", "--ssl-only"];
        let mut all: Vec<&str> = wrong.to_vec();
        all.extend(["127.0.0.1:0", "127.0.0.1:1"]);
        let (status, log) = run_proxy(&all);
        assert!(!status.success(), "{key}: started with a wrong password");
        assert!(log.contains("cannot decrypt the key (wrong password?)"), "{key}: {log}");
        let upstream = Upstream::start(&dir.0, &wrong, Some(&format!("127.0.0.1:{}", closed_port())), &[]);
        assert!(!s_client(upstream.port, &["-tls1_2"]).0, "upstream, {key}, wrong password");
    }
}

/// Client certificates as `openssl x509 -req -CA` makes them without an extensions file:
/// X.509 v1. Accepted by both when a CA of `--cafile` issued them and they are in their
/// validity period; refused by both otherwise; v3 ones still work.
#[test]
fn v1_client_certificates_side_by_side() {
    let dir = TempDir::new("dropin-tls-v1");
    let d = &dir.0;
    server_certs(&dir);
    // Two RSA CAs and an ECDSA one.
    for (name, newkey) in [("ca", "rsa:2048"), ("other-ca", "rsa:2048"), ("ec-ca", "ec")] {
        let mut args = vec!["req", "-x509", "-newkey", newkey];
        if newkey == "ec" {
            args.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        }
        let (keyout, out, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=test {name}"));
        args.extend(["-nodes", "-keyout", &keyout, "-out", &out, "-subj", &subj, "-days", "30"]);
        openssl(d, &args);
    }
    std::fs::write(
        dir.path("cas.pem"),
        [
            std::fs::read_to_string(dir.path("ca.pem")).expect("ca"),
            std::fs::read_to_string(dir.path("ec-ca.pem")).expect("ec ca"),
        ]
        .concat(),
    )
    .expect("cas.pem");
    std::fs::write(dir.path("v3.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").expect("v3.ext");
    // name, CA, key type, days, extensions file
    let clients: &[(&str, &str, &str, &str, Option<&str>)] = &[
        ("v1", "ca", "rsa:2048", "30", None),
        ("v1-ec", "ec-ca", "ec", "30", None),
        ("v1-other-ca", "other-ca", "rsa:2048", "30", None),
        ("v1-expired", "ca", "rsa:2048", "-1", None),
        ("v3", "ca", "rsa:2048", "30", Some("v3.ext")),
    ];
    for (name, ca, newkey, days, ext) in clients {
        let (key, csr, cert, subj) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("/CN={name}"));
        let mut args = vec!["req", "-new", "-newkey", newkey];
        if *newkey == "ec" {
            args.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        }
        args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(d, &args);
        let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        let mut args = vec!["x509", "-req", "-in", &csr, "-CA", &ca_cert, "-CAkey", &ca_key, "-CAcreateserial"];
        args.extend(["-days", days, "-out", &cert]);
        if let Some(ext) = ext {
            args.extend(["-extfile", ext]);
        }
        openssl(d, &args);
    }
    let server = ["--cert", &dir.str("cert.pem"), "--key", &dir.str("key.pem")];
    let mut args = server.to_vec();
    let cafile = dir.str("cas.pem");
    args.extend(["--verify-client", "--cafile", &cafile]);
    let proxy = ours(&args);
    let upstream = Upstream::start(&dir.0, &args, Some(&format!("127.0.0.1:{}", closed_port())), &[]);
    let expected = [("v1", true), ("v1-ec", true), ("v1-other-ca", false), ("v1-expired", false), ("v3", true)];
    for (name, accepted) in expected {
        let version = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in", &dir.str(&format!("{name}.pem"))])
            .output()
            .expect("openssl x509");
        let want = if name == "v3" { "Version: 3" } else { "Version: 1" };
        assert!(String::from_utf8_lossy(&version.stdout).contains(want), "{name} is not {want}");
        let (cert, key) = (dir.str(&format!("{name}.pem")), dir.str(&format!("{name}.key")));
        for tls in ["-tls1_2", "-tls1_3"] {
            let client = [tls, "-cert", &cert, "-key", &key];
            let (_, theirs) = s_client(upstream.port, &client);
            let (_, mine) = s_client(proxy.addr.port(), &client);
            assert_eq!(theirs, accepted, "upstream, client certificate {name} {tls}");
            assert_eq!(mine, accepted, "ours, client certificate {name} {tls}: {}", proxy.log());
        }
    }
    // Without a certificate: refused by both.
    assert!(!s_client(upstream.port, &["-tls1_2"]).1);
    assert!(!s_client(proxy.addr.port(), &["-tls1_2"]).1);
    let log = proxy.log();
    assert!(log.contains("client certificate refused (X.509 v1): not issued by a CA of --cafile"), "{log}");
    assert!(log.contains("client certificate refused (X.509 v1): outside its validity period"), "{log}");
}
