//! The Python websockify (`.peers/venv/bin/websockify`, installed by `scripts/peers.sh`),
//! run beside ours where upstream's behaviour is the reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{closed_port, repo_root};

/// The Python websockify's command.
pub fn upstream_bin() -> PathBuf {
    let bin = repo_root().join(".peers/venv/bin/websockify");
    assert!(bin.exists(), "the Python websockify is missing: run scripts/peers.sh");
    bin
}

/// The Python websockify serving on a free port (it has no port 0 report); its stderr goes
/// to a file in the directory given. Killed on drop.
pub struct Upstream {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Upstream {
    /// `websockify ARGS 127.0.0.1:PORT [TARGET]` with `env` added to its environment.
    pub fn start(dir: &Path, args: &[&str], target: Option<&str>, env: &[(&str, &str)]) -> Upstream {
        let port = closed_port();
        let log = dir.join(format!("upstream-{port}.log"));
        let child = Command::new(upstream_bin())
            .args(args)
            .arg(format!("127.0.0.1:{port}"))
            .args(target)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the Python websockify's log"))
            .spawn()
            .expect("start the Python websockify");
        // Owned (killed on drop) before anything may panic.
        let upstream = Upstream { child, port, log };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the Python websockify did not start: {}",
                upstream.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        upstream
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
