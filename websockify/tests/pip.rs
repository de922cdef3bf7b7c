//! The pip package: the wheel built with maturin (from `pyproject.toml`, reusing the debug
//! build of the binary), installed into a fresh venv, and both `websockify` and
//! `python -m websockify` from it proxying a session through a custom plugin that imports
//! the package's own `websockify.token_plugins`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

/// `program PRE -v ARGS`, started and waited for until its "Listen on" line; killed on drop.
struct Started {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Started {
    fn start(program: &Path, pre: &[&str], args: &[&str]) -> Started {
        let mut child = Command::new(program)
            .args(pre)
            .arg("-v")
            .args(args)
            .env("PYTHONPATH", repo_root().join("tests/plugins"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("Listen on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("{program:?} did not start: {}", log.lock().unwrap());
        };
        Started { child, addr: addr.parse().unwrap(), log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wheel_installs_websockify_and_python_m_websockify() {
    let maturin = repo_root().join(".peers/venv/bin/maturin");
    assert!(maturin.exists(), "maturin missing: run scripts/peers.sh py");
    let dir = TempDir::new("pip");
    let wheels = dir.path("wheels");
    // A debug wheel: maturin reuses target/debug (seconds); a release build would take
    // minutes of CI's two cores for no difference in what is tested here.
    let started = Instant::now();
    let built = Command::new(&maturin)
        .args(["build", "--quiet", "--out"])
        .arg(&wheels)
        .arg("--manifest-path")
        .arg(repo_root().join("websockify/Cargo.toml"))
        .current_dir(repo_root())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(built.success(), "maturin build failed");
    eprintln!("wheel built in {:?}", started.elapsed());
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a wheel");
    assert!(wheel.file_name().unwrap().to_string_lossy().starts_with("websockify_rs-"), "{wheel:?}");

    let venv = dir.path("venv");
    assert!(Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap().success());
    let started = Instant::now();
    let installed = Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--no-index", "--no-deps"])
        .arg(&wheel)
        .status()
        .unwrap();
    assert!(installed.success(), "pip install failed");
    eprintln!("wheel installed in {:?}", started.elapsed());

    // The package's own modules import (the venv has no upstream websockify).
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import websockify.token_plugins as t, websockify.auth_plugins as a; print(t.BasePlugin, a.AuthenticationError)"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let target = echo_target("127.0.0.1:0").await;
    let source = target.to_string();
    let plugin = ["--token-plugin", "trivial.Fixed", "--token-source", &source, "127.0.0.1:0"];
    let python = venv.join("bin/python");
    for (program, pre) in [(venv.join("bin/websockify"), &[][..]), (python.clone(), &["-m", "websockify"][..])] {
        let proxy = Started::start(&program, pre, &plugin);
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/?token=any", proxy.addr)).await.unwrap();
        ws.send(Message::binary(b"through the wheel".to_vec())).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::binary(b"through the wheel".to_vec()), "{program:?}");
        let _ = ws.close(None).await;
        if pre.is_empty() {
            assert!(proxy.log().contains("Python plugin host started"), "{}", proxy.log());
        }
    }
    // `python -m websockify` runs plugins under its own interpreter (the venv's).
    let out = Command::new(&python).args(["-m", "websockify", "--help"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--token-plugin"));
}
