//! A throw-away `redis-server` for the tests that need a real one (`scripts/peers.sh`
//! installs it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::closed_port;

/// A throw-away `redis-server` on 127.0.0.1; killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
}

impl Redis {
    /// Starts on a free port.
    pub fn start(password: Option<&str>) -> Redis {
        Self::start_on(closed_port(), password)
    }

    pub fn start_on(port: u16, password: Option<&str>) -> Redis {
        let mut redis = Redis { child: None, port, password: password.map(str::to_owned) };
        redis.restart();
        redis
    }

    /// (Re)starts the server on the same port (its data is gone: no persistence).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let ok = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "redis-server is missing: run scripts/peers.sh redis (or scripts/peers.sh) to install it");
        let port = self.port.to_string();
        let dir = std::env::temp_dir();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let start = Instant::now();
        while self.try_cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to clients, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([&format!("-{sig}"), &pid]).status().unwrap().success());
    }

    pub fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(pw) = &self.password {
            cmd.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = cmd.args(args).stdin(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs `redis-cli ARGS` (e.g. `-n 3 SET k v`); panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    pub fn set(&self, db: u32, key: &str, value: &str) {
        assert_eq!(self.cli(&["-n", &db.to_string(), "SET", key, value]), "OK");
    }

    /// A field of `INFO`, e.g. `total_connections_received`.
    pub fn info(&self, field: &str) -> u64 {
        let info = self.cli(&["INFO"]);
        let line = info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).expect(field);
        line.trim().parse().unwrap()
    }

    /// Clients connected, not counting the `redis-cli` that asks.
    pub fn other_clients(&self) -> usize {
        self.cli(&["CLIENT", "LIST"]).lines().filter(|l| !l.contains("cmd=client|list")).count()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
