//! The pip package: the wheel built with maturin (from `pyproject.toml`, reusing the debug
//! build of the binary), installed into a fresh venv, and both `websockify` and
//! `python -m websockify` from it proxying a session through a custom plugin that imports
//! the package's own `websockify.token_plugins`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

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
        let mut command = Command::new(&program);
        command.args(pre).arg("-v");
        let plugins = repo_root().join("tests/plugins");
        let proxy = Proxy::start_program(command, &plugin, &[("PYTHONPATH", plugins.to_str().unwrap())]);
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/?token=any", proxy.addr)).await.unwrap();
        ws.send(Message::binary(b"through the wheel".to_vec())).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, Message::binary(b"through the wheel".to_vec()), "{program:?}");
        let _ = ws.close(None).await;
        if pre.is_empty() {
            proxy.wait_log("Python plugin host started", Duration::from_secs(5));
        }
    }
    // `python -m websockify` runs plugins under its own interpreter (the venv's).
    let out = Command::new(&python).args(["-m", "websockify", "--help"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--token-plugin"));
}
