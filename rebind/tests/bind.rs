//! The interposer loaded into a real program: Python binds sockets with `LD_PRELOAD`
//! pointing at the built `librebind.so`, and reports where they ended up.
//!
//! `cargo test -p rebind` does not build the cdylib (tests cannot link it), so the first
//! test to need it runs `cargo build -p rebind` for this profile and target directory
//! (cargo holds no lock while tests run; when the library is fresh this is a no-op).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Binds a socket as described and prints `host port` of where it is bound; with
/// `check`, also connects to 127.0.0.1 at that port and accepts, printing `reachable`.
const PROBE: &str = r#"
import socket, sys
family, host, port, v6only, check = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
if family == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.bind(host)
    print(s.getsockname(), 0)
    sys.exit(0)
s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET)
if family == "6":
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
s.bind((host, port))
s.listen(1)
name = s.getsockname()
print(name[0], name[1])
if check:
    c = socket.create_connection(("127.0.0.1", name[1]), timeout=5)
    s.settimeout(5)
    a, _ = s.accept()
    print("reachable")
"#;

/// The built interposer, next to this test's profile directory (target/debug/).
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/bind-HASH
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let lib = profile_dir.join("librebind.so");
        if let Some(cargo) = std::env::var_os("CARGO") {
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "rebind", "--profile", profile, "--target-dir"])
                .arg(profile_dir.parent().unwrap())
                .arg("--manifest-path")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
                .status()
                .expect("run cargo build -p rebind");
            assert!(status.success(), "cargo build -p rebind failed");
        }
        assert!(lib.exists(), "{} missing: run cargo build -p rebind", lib.display());
        lib
    })
}

/// `N` distinct ports free on 127.0.0.1 (all held until all are chosen).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Runs the probe under the interposer with `env`; returns its stdout lines.
fn probe(env: &[(&str, String)], family: &str, host: &str, port: u16, v6only: bool, check: bool) -> Vec<String> {
    let flag = |b: bool| if b { "1" } else { "0" };
    let out = Command::new("python3")
        .args(["-c", PROBE, family, host, &port.to_string(), flag(v6only), flag(check)])
        .env("LD_PRELOAD", library())
        .env_remove("REBIND_OLD_PORT")
        .env_remove("REBIND_NEW_PORT")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run python3");
    assert!(out.status.success(), "probe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

fn rebind_env(old: u16, new: u16) -> Vec<(&'static str, String)> {
    vec![("REBIND_OLD_PORT", old.to_string()), ("REBIND_NEW_PORT", new.to_string())]
}

#[test]
fn ipv4_bind_to_the_old_port_lands_on_loopback_new_port() {
    let [old, new] = free_ports();
    let lines = probe(&rebind_env(old, new), "4", "0.0.0.0", old, false, true);
    assert_eq!(lines, [format!("127.0.0.1 {new}"), "reachable".to_owned()]);
}

#[test]
fn ipv6_only_bind_to_the_old_port_lands_on_ipv6_loopback() {
    let [old, new] = free_ports();
    let lines = probe(&rebind_env(old, new), "6", "::", old, true, false);
    assert_eq!(lines, [format!("::1 {new}")]);
}

#[test]
fn dual_stack_ipv6_bind_lands_where_127_0_0_1_reaches_it() {
    let [old, new] = free_ports();
    let lines = probe(&rebind_env(old, new), "6", "::", old, false, true);
    assert_eq!(lines, [format!("::ffff:127.0.0.1 {new}"), "reachable".to_owned()]);
}

#[test]
fn other_ports_and_families_pass_through() {
    let [old, new, other] = free_ports();
    let env = rebind_env(old, new);
    assert_eq!(probe(&env, "4", "0.0.0.0", other, false, false), [format!("0.0.0.0 {other}")]);
    assert_eq!(probe(&env, "6", "::", other, true, false), [format!(":: {other}")]);
    let dir = std::env::temp_dir().join(format!("rebind-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let path = dir.to_str().unwrap();
    assert_eq!(probe(&env, "unix", path, 0, false, false), [format!("{path} 0")]);
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn missing_or_invalid_environment_passes_through() {
    let [old, new] = free_ports();
    assert_eq!(probe(&[], "4", "0.0.0.0", old, false, false), [format!("0.0.0.0 {old}")]);
    for env in [
        vec![("REBIND_OLD_PORT", old.to_string())],
        vec![("REBIND_OLD_PORT", old.to_string()), ("REBIND_NEW_PORT", "abc".to_owned())],
        vec![("REBIND_OLD_PORT", old.to_string()), ("REBIND_NEW_PORT", "0".to_owned())],
        vec![("REBIND_OLD_PORT", format!(" {old}")), ("REBIND_NEW_PORT", new.to_string())],
    ] {
        assert_eq!(probe(&env, "4", "0.0.0.0", old, false, false), [format!("0.0.0.0 {old}")], "{env:?}");
    }
}
