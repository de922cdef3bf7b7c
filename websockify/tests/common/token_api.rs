//! `tests/peers/token_api.py`, the HTTP token API the token plugin tests talk to.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{python, repo_root};

/// The running API; stopped on drop.
pub struct TokenApi(Child);

impl Drop for TokenApi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the API knowing `tokens` (`token=host:port`) on `port` (0: a free one), writing
/// its port file in `dir`; returns it and its port once it listens.
pub fn token_api(dir: &Path, tokens: &[String], port: u16) -> (TokenApi, u16) {
    let port_file = dir.join(format!("api-port-{port}-{}", tokens.len()));
    let _ = std::fs::remove_file(&port_file);
    let api = TokenApi(
        Command::new(python())
            .arg(repo_root().join("tests/peers/token_api.py"))
            .arg(&port_file)
            .args(tokens)
            .env("TOKEN_API_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/peers/token_api.py"),
    );
    let start = Instant::now();
    loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(port) = p.trim().parse()
        {
            return (api, port);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "token_api.py did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}
