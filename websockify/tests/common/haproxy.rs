//! HAProxy (Debian's `haproxy`, installed by `scripts/peers.sh apt`) run in the foreground
//! (`-db`) with a configuration written at test time, its log on stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pki::TempDir;

/// The `global` and `defaults` sections the test configurations start with: TCP mode,
/// logs to stdout (`log-format` lines set per frontend).
pub const GLOBAL: &str = "global
    log stdout format raw local0

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s
";

/// A running haproxy; killed on drop.
pub struct Haproxy {
    child: Child,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts haproxy with `config` and waits until every port in `listening` accepts.
    pub fn start(config: &str, listening: &[u16]) -> Haproxy {
        let ok = Command::new("haproxy").arg("-v").output().is_ok_and(|o| o.status.success());
        assert!(ok, "haproxy is missing: run scripts/peers.sh apt (or scripts/peers.sh) to install it");
        let dir = TempDir::new("haproxy");
        let path = dir.path("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().unwrap();
        assert!(
            check.status.success(),
            "haproxy -c refused the configuration:\n{config}\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let mut child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        let log = Arc::new(Mutex::new(String::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let haproxy = Haproxy { child, log, _dir: dir };
        let start = Instant::now();
        for port in listening {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "haproxy did not listen on {port}:\n{}",
                    haproxy.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        haproxy
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (at most `limit`); panics with the log if not.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(start.elapsed() < limit, "no {needle:?} in the haproxy log within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A target that decodes the PROXY protocol with HAProxy itself: a frontend on `port`
/// with `accept-proxy` that logs `proxied client=<%ci:%cp> dst=<%fi:%fp>` as soon as a
/// connection is forwarded, to the TCP server at `backend` (an echo server, say).
pub fn decoding_target(port: u16, backend: std::net::SocketAddr) -> Haproxy {
    let config = format!(
        "{GLOBAL}
frontend decode
    bind 127.0.0.1:{port} accept-proxy
    option logasap
    log-format \"proxied client=%ci:%cp dst=%fi:%fp\"
    default_backend echo

backend echo
    server echo {backend}
"
    );
    Haproxy::start(&config, &[port])
}
