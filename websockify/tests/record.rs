//! Session recording: a session through the proxy with --record, then the file loaded by
//! Node the way noVNC's player loads it (tests/node/parse_record.js); the bytes each way
//! must equal what crossed the proxy.

mod common;

use std::process::Command;
use std::time::Duration;

use common::pki::TempDir;
use common::*;

fn parse(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new("node").arg(repo_root().join("tests/node/parse_record.js")).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The recording of connection `id` of the proxy whose settings are in `log`:
/// `base.<start time>-<pid>.<id>`, the run as the settings line names it.
fn recording(base: &std::path::Path, log: &str, id: u64) -> std::path::PathBuf {
    let prefix = format!("Recording to '{}.", base.display());
    let line = log.lines().find_map(|l| l.split(&prefix).nth(1)).expect("a Recording to line");
    let run = line.split(".*'").next().unwrap();
    std::path::PathBuf::from(format!("{}.{run}.{id}", base.display()))
}

/// Waits for the recording of connection `id` to be finished.
fn finished(base: &std::path::Path, log: &str, id: u64) -> std::path::PathBuf {
    let path = recording(base, log, id);
    for _ in 0..500 {
        if std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with("'EOF'];\n")) {
            return path;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} not finished", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_load_like_novnc_and_match_the_bytes() {
    let dir = TempDir::new("record");
    let base = dir.path("session");
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--record", base.to_str().unwrap(), "127.0.0.1:0", &target.to_string()]);
    let url = proxy.url();
    let (binary, b64) = tokio::task::spawn_blocking(move || {
        (
            peer("python", &url, "echo", &["--bytes", "3000000", "--seed", "3"]),
            peer("node", &url, "echo", &["--bytes", "500000", "--protocols", "base64"]),
        )
    })
    .await
    .unwrap();
    assert_eq!((binary["match"].clone(), b64["match"].clone()), (true.into(), true.into()));
    let first = parse(&finished(&base, &proxy.log(), 1));
    assert_eq!(first["encoding"], "binary");
    assert_eq!((first["eof"].clone(), first["monotonic"].clone()), (true.into(), true.into()), "{first}");
    // An echo target: what the client sent and what it got back are the same bytes.
    assert_eq!(first["fromClient"]["bytes"], 3_000_000, "{first}");
    assert_eq!(first["fromClient"]["sha256"], binary["sha256_sent"], "{first}");
    assert_eq!(first["toClient"]["sha256"], binary["sha256_received"], "{first}");
    let second = parse(&finished(&base, &proxy.log(), 2));
    assert_eq!(second["encoding"], "base64");
    assert_eq!(second["fromClient"]["sha256"], b64["sha256_sent"], "{second}");
    assert_eq!(second["toClient"]["sha256"], b64["sha256_received"], "{second}");
    proxy.wait_log("Recording to", std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn unwritable_record_path_leaves_the_session_alone() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--record", "/nonexistent-dir/rec", "127.0.0.1:0", &target.to_string()]);
    let url = proxy.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "100000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
    proxy.wait_log("the session goes on unrecorded", Duration::from_secs(5));
}

/// Security review, finding 3: a recording holds every keystroke. It is created mode 0600,
/// never through a symbolic link or over an existing file (the session goes on
/// unrecorded, and the log says why), and a restart does not reuse an earlier run's names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_private_and_never_overwrite() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("record-safe");
    let base = dir.path("rec");
    let target = echo_target("127.0.0.1:0").await;
    let args = ["--record", base.to_str().unwrap(), "127.0.0.1:0", &target.to_string()];
    let mut first = Proxy::start(&args);
    let url = first.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "1000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
    let made = finished(&base, &first.log(), 1);
    assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o600);

    // A link planted where the next session's recording goes: not followed.
    let victim = dir.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, recording(&base, &first.log(), 2)).unwrap();
    let url = first.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "1000"])).await.unwrap();
    assert_eq!(out["match"], true, "the session goes on: {out}");
    first.wait_log("the session goes on unrecorded", Duration::from_secs(5));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(10));

    // A restart numbers connections from 1 again, in names of its own.
    let second = Proxy::start(&args);
    let url = second.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "1000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
    let again = finished(&base, &second.log(), 1);
    assert_ne!(again, made);
    assert!(std::fs::read_to_string(&made).unwrap().ends_with("'EOF'];\n"), "the first run's recording is intact");
}
