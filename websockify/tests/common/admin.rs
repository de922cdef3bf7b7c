//! The admin API (`--admin-listen`) as tests drive it: with curl, answers parsed as JSON.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::Proxy;

/// The bearer token the tests write to `--admin-token-file`.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// The admin API's address from the settings, without the `/sessions` path.
pub fn admin_url(proxy: &Proxy) -> String {
    proxy.wait_log("Admin API at http://", Duration::from_secs(5));
    let log = proxy.log();
    log.lines().find_map(|l| l.split("Admin API at ").nth(1)).unwrap().trim().trim_end_matches("/sessions").to_owned()
}

/// `curl -X METHOD URL` with the bearer token (or `auth`); returns the status and JSON body.
pub fn curl(method: &str, url: &str, auth: Option<&str>) -> (u16, serde_json::Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(token) = auth {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}")))
}
