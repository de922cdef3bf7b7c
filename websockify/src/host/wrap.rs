//! Wrap mode (`websockify [options] [source_addr:]source_port -- PROGRAM ARGS...`): run a
//! program that listens on the proxy's own port, and forward sessions to it.
//!
//! The program is started with the `rebind` interposer in `LD_PRELOAD` (the workspace's
//! `rebind` cdylib, `librebind.so`). When the program binds the proxy's port
//! (`REBIND_OLD_PORT`), the interposer binds a free loopback port (`REBIND_NEW_PORT`)
//! instead, and the proxy's route is that loopback port. The program runs without a shell,
//! in its own process group, its output logged line by line; [`Wrapper::run`] then follows
//! `--wrap-mode` when it exits, and once the server is done terminates its process group
//! (SIGTERM, then SIGKILL after [`STOP_GRACE`]).
//!
//! # Where the interposer is found
//!
//! No configuration is needed after a normal `cargo build` (which builds every workspace
//! member, `librebind.so` beside the `websockify` binary). [`find_rebind`] tries, in order:
//! 1. `$WEBSOCKIFY_REBIND`, when set (an explicit choice wins);
//! 2. `librebind.so` in the directory of the running executable;
//! 3. `../lib/websockify/librebind.so` relative to that directory (an installed layout:
//!    `/usr/local/bin/websockify` and `/usr/local/lib/websockify/librebind.so`).

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outbound::Target;

/// Environment variables the proxy reads secrets from (Basic-auth credentials, the key
/// password, the Redis password), and systemd's socket-passing variables, which describe the
/// proxy's own sockets. None of them reaches the wrapped program: it is not trusted with
/// the proxy's secrets (a VNC desktop or a shell would show them to its user).
pub const WITHHELD_ENV: &[&str] = &[
    "WEBSOCKIFY_AUTH_SOURCE",
    "WEBSOCKIFY_KEY_PASSWORD",
    "WEBSOCKIFY_REDIS_PASSWORD",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// The interposer's file name.
pub const REBIND_LIBRARY: &str = "librebind.so";
/// Names an interposer to use instead of searching for one.
pub const REBIND_ENV: &str = "WEBSOCKIFY_REBIND";
/// Time the program's process group has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// `respawn` starts the program again no sooner than this after the mean of its last
/// [`RESPAWN_HISTORY`] start times (upstream's rule: at most 3 starts per ~10 s).
pub const RESPAWN_WINDOW: Duration = Duration::from_secs(10);
pub const RESPAWN_HISTORY: usize = 3;
/// Longest line of the program's output logged as one line.
const MAX_LINE: usize = 8192;
/// How long to wait for output the program wrote just before it exited.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// How often a stopping process group is checked for members.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The program to wrap and what to do when it exits.
#[derive(Clone, Debug)]
pub struct WrapConfig {
    /// The program and its arguments, run without a shell.
    pub command: Vec<OsString>,
    pub mode: WrapMode,
    /// The loopback port the program's listening socket is moved to; sessions go there.
    pub port: u16,
    /// The interposer library, see [`find_rebind`].
    pub rebind: PathBuf,
}

/// What happens when the wrapped program exits (`--wrap-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WrapMode {
    /// The proxy exits too, with the program's status.
    #[default]
    Exit,
    /// The proxy keeps serving (for programs that daemonize).
    Ignore,
    /// The program is started again, at most [`RESPAWN_HISTORY`] times per [`RESPAWN_WINDOW`].
    Respawn,
}

#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    #[error("no program given after --")]
    NoCommand,
    #[error(
        "{REBIND_LIBRARY} (the bind() interposer wrap mode needs) not found; looked in: {}. \
         `cargo build` builds it beside the websockify binary; or set {REBIND_ENV}",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RebindNotFound(Vec<PathBuf>),
    #[error("{0}: LD_PRELOAD cannot carry a path with a space or a colon")]
    RebindPath(PathBuf),
    #[error("cannot find a free loopback port for the wrapped program: {0}")]
    Port(io::Error),
    #[error("wrapping a program needs a TCP listen port: {0}")]
    ListenPort(io::Error),
    #[error("cannot start '{command}': {source}")]
    Spawn { command: String, source: io::Error },
}

impl FromStr for WrapMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exit" => Ok(Self::Exit),
            "ignore" => Ok(Self::Ignore),
            "respawn" => Ok(Self::Respawn),
            other => Err(format!("{other:?}: expected exit, ignore or respawn")),
        }
    }
}

impl WrapConfig {
    /// Finds the interposer and picks the loopback port the program will be moved to.
    pub fn new(command: Vec<OsString>, mode: WrapMode) -> Result<Self, WrapError> {
        if command.is_empty() {
            return Err(WrapError::NoCommand);
        }
        let rebind = find_rebind()?;
        let port = free_loopback_port().map_err(WrapError::Port)?;
        Ok(Self { command, mode, port, rebind })
    }

    /// Where sessions go: the program's moved port.
    pub fn target(&self) -> Target {
        Target::Tcp { host: "127.0.0.1".to_owned(), port: self.port }
    }

    /// The command line as upstream shows it, words joined by spaces, on one line (control
    /// characters escaped).
    pub fn display_command(&self) -> String {
        let words: Vec<String> = self
            .command
            .iter()
            .map(|a| {
                a.to_string_lossy()
                    .chars()
                    .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
                    .collect()
            })
            .collect();
        words.join(" ")
    }
}

/// Finds `librebind.so` (see the module documentation for the order).
pub fn find_rebind() -> Result<PathBuf, WrapError> {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os(REBIND_ENV).filter(|p| !p.is_empty()) {
        tried.push(PathBuf::from(path));
    }
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        tried.push(dir.join(REBIND_LIBRARY));
        tried.push(dir.join("../lib/websockify").join(REBIND_LIBRARY));
    }
    let Some(found) = tried.iter().find(|p| p.is_file()) else {
        return Err(WrapError::RebindNotFound(tried));
    };
    // LD_PRELOAD needs an absolute path (a relative one is resolved in the program's
    // working directory) and splits on spaces and colons.
    let found = std::path::absolute(found).unwrap_or_else(|_| found.clone());
    let found = found.canonicalize().unwrap_or(found);
    if found.to_string_lossy().contains([' ', ':']) {
        return Err(WrapError::RebindPath(found));
    }
    Ok(found)
}

/// A port free on 127.0.0.1 now. The program binds it a moment later; upstream picks
/// the port the same way.
fn free_loopback_port() -> io::Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr().map(|a| a.port())
}

/// A running wrapped program; [`run`](Self::run) it.
///
/// Dropped before `run` has finished (a panic, a runtime shutting down), it sends SIGKILL
/// to the process groups it started, so no program outlives the proxy.
pub struct Wrapper {
    config: WrapConfig,
    listen_port: u16,
    /// `argv[0]`'s file name, prefixed to the program's output lines.
    name: Arc<str>,
    child: Child,
    /// Process groups started (one per start) that may still have members.
    groups: Vec<Pid>,
    throttle: Throttle,
    /// Output readers of the current start (drained when it exits), then of earlier ones.
    output: Vec<JoinHandle<()>>,
}

impl Wrapper {
    /// Starts the program. `listen_port` is the proxy's bound port, the one the program
    /// asks for and the interposer moves.
    pub fn spawn(config: &WrapConfig, listen_port: u16) -> Result<Self, WrapError> {
        let name = Path::new(config.command.first().ok_or(WrapError::NoCommand)?)
            .file_name()
            .map_or_else(|| "program".into(), OsStr::to_string_lossy)
            .into();
        let mut throttle = Throttle::default();
        throttle.record(Instant::now());
        let (child, output) = start(config, listen_port, &name)?;
        let groups = child.id().and_then(|id| Pid::from_raw(id as i32)).into_iter().collect();
        Ok(Self { config: config.clone(), listen_port, name, child, groups, throttle, output })
    }

    /// Follows `--wrap-mode` until `shutdown` is cancelled, or (exit mode) the program
    /// exits, which then cancels `shutdown` to end the server. Once `server_done` is
    /// cancelled too (the server has closed its sessions: they end with 1001, not with a
    /// target that went away), the program's process groups are terminated.
    ///
    /// Returns the exit code the proxy should exit with: the program's, when it exited
    /// in `exit` mode (128 + the signal number when a signal killed it); `None` otherwise.
    pub async fn run(mut self, shutdown: CancellationToken, server_done: CancellationToken) -> Option<i32> {
        let code = self.supervise(&shutdown).await;
        shutdown.cancel();
        server_done.cancelled().await;
        self.stop().await;
        code
    }

    /// Follows `--wrap-mode` until `shutdown`, or until the program exits in exit mode.
    async fn supervise(&mut self, shutdown: &CancellationToken) -> Option<i32> {
        loop {
            let status = tokio::select! {
                status = self.child.wait() => status,
                () = shutdown.cancelled() => return None,
            };
            self.drain_output().await;
            let code = match status {
                Ok(status) => {
                    tracing::info!("'{}' {}", self.config.display_command(), describe(status));
                    exit_code(status)
                }
                Err(e) => {
                    tracing::error!("cannot wait for '{}': {e}", self.config.display_command());
                    1
                }
            };
            match self.config.mode {
                WrapMode::Exit => {
                    tracing::info!("--wrap-mode exit: shutting down");
                    return Some(code);
                }
                WrapMode::Ignore => {
                    tracing::info!("--wrap-mode ignore: still serving");
                    shutdown.cancelled().await;
                    return None;
                }
                WrapMode::Respawn => {
                    if !self.respawn(shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Starts the program again once the throttle allows; false if `shutdown` came first.
    async fn respawn(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            if let Some(at) = self.throttle.next_start().filter(|at| *at > Instant::now()) {
                tracing::warn!(
                    "'{}' respawning too fast: next start in {:.1} s",
                    self.config.display_command(),
                    (at - Instant::now()).as_secs_f64()
                );
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shutdown.cancelled() => return false,
                }
            }
            self.throttle.record(Instant::now());
            self.groups.retain(|g| group_alive(*g));
            self.output.retain(|h| !h.is_finished());
            match start(&self.config, self.listen_port, &self.name) {
                Ok((child, output)) => {
                    self.groups.extend(child.id().and_then(|id| Pid::from_raw(id as i32)));
                    self.child = child;
                    self.output.extend(output);
                    return true;
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
    }

    /// Waits (briefly) for the output the program wrote before it exited, so that it is
    /// logged before its exit. Readers still blocked (a daemon or a forked child keeps the
    /// pipe open) stay in the list and are ended by [`stop`](Self::stop).
    async fn drain_output(&mut self) {
        let deadline = Instant::now() + OUTPUT_DRAIN;
        for handle in self.output.iter_mut().rev().take(2) {
            let _ = tokio::time::timeout_at(deadline, handle).await;
        }
        self.output.retain(|h| !h.is_finished());
    }

    /// SIGTERM to every process group still alive, SIGKILL to what remains after
    /// [`STOP_GRACE`]; reaps the current child. Output readers are ended.
    async fn stop(&mut self) {
        self.groups.retain(|g| group_alive(*g));
        let mut reaped = !matches!(self.child.try_wait(), Ok(None));
        if !self.groups.is_empty() || !reaped {
            tracing::info!("stopping '{}' (SIGTERM to its process group)", self.config.display_command());
            signal_groups(&self.groups, Signal::TERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && !(reaped && self.groups.is_empty()) {
                tokio::select! {
                    _ = self.child.wait(), if !reaped => reaped = true,
                    () = tokio::time::sleep(STOP_POLL) => {}
                }
                self.groups.retain(|g| group_alive(*g));
            }
            if !(reaped && self.groups.is_empty()) {
                tracing::warn!(
                    "'{}' still running {STOP_GRACE:?} after SIGTERM: sending SIGKILL",
                    self.config.display_command()
                );
                signal_groups(&self.groups, Signal::KILL);
                self.groups.clear();
                // In case it left its process group.
                let _ = self.child.start_kill();
            }
        }
        // Never leave a zombie: the child is dead or dying by now.
        let _ = self.child.wait().await;
        let deadline = Instant::now() + OUTPUT_DRAIN;
        for handle in &mut self.output {
            if tokio::time::timeout_at(deadline, &mut *handle).await.is_err() {
                handle.abort();
            }
        }
        self.output.clear();
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        // Only groups not already stopped by `stop` are left here.
        signal_groups(&self.groups, Signal::KILL);
        for handle in &self.output {
            handle.abort();
        }
    }
}

/// Spawns one instance of the program and the tasks that log its output.
fn start(config: &WrapConfig, listen_port: u16, name: &Arc<str>) -> Result<(Child, Vec<JoinHandle<()>>), WrapError> {
    let command = config.display_command();
    let mut preload = config.rebind.clone().into_os_string();
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(":");
        preload.push(existing);
    }
    let mut command_line = Command::new(&config.command[0]);
    for name in WITHHELD_ENV {
        command_line.env_remove(name);
    }
    let mut child = command_line
        .args(&config.command[1..])
        .env("LD_PRELOAD", preload)
        .env("REBIND_OLD_PORT", listen_port.to_string())
        .env("REBIND_NEW_PORT", config.port.to_string())
        // Its own process group: terminal signals (Ctrl-C) reach the proxy only, and the
        // proxy can end the program together with whatever it forked.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| WrapError::Spawn { command: command.clone(), source })?;
    let pid = child.id().unwrap_or_default();
    tracing::info!(
        "started '{command}' (pid {pid}); its bind() to port {listen_port} goes to 127.0.0.1:{}",
        config.port
    );
    let mut output = Vec::with_capacity(2);
    if let Some(stdout) = child.stdout.take() {
        output.push(tokio::spawn(log_lines(name.clone(), stdout)));
    }
    if let Some(stderr) = child.stderr.take() {
        output.push(tokio::spawn(log_lines(name.clone(), stderr)));
    }
    Ok((child, output))
}

/// Logs each line of `stream` as `NAME: line` (lines longer than [`MAX_LINE`] in pieces).
async fn log_lines(name: Arc<str>, stream: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let (take, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len().min(MAX_LINE - line.len()), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete || line.len() >= MAX_LINE {
            log_line(&name, &line);
            line.clear();
        }
    }
    if !line.is_empty() {
        log_line(&name, &line);
    }
}

fn log_line(name: &str, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    tracing::info!("{name}: {}", line.trim_end_matches(['\r', '\n']));
}

fn signal_groups(groups: &[Pid], signal: Signal) {
    for group in groups {
        // ESRCH: already gone; nothing else can fail for our own children's groups.
        let _ = rustix::process::kill_process_group(*group, signal);
    }
}

/// Whether the process group has a member that is not a zombie. Zombies hold no port and
/// cannot be killed; an orphan's zombie waits for an init that may never reap it.
fn group_alive(group: Pid) -> bool {
    if rustix::process::test_kill_process_group(group).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return true };
    let pgid = group.as_raw_nonzero().get();
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { return false };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else { return false };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

/// The exit code a shell would report: the status, or 128 + the signal number.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended: {status}"),
    }
}

/// The respawn rule: a start is allowed [`RESPAWN_WINDOW`] after the mean of the last
/// [`RESPAWN_HISTORY`] starts; until that many starts, at once.
#[derive(Debug, Default)]
struct Throttle {
    /// Oldest first.
    starts: Vec<Instant>,
}

impl Throttle {
    fn record(&mut self, at: Instant) {
        if self.starts.len() == RESPAWN_HISTORY {
            self.starts.remove(0);
        }
        self.starts.push(at);
    }

    /// When the next start may happen; `None`: now.
    fn next_start(&self) -> Option<Instant> {
        let (first, rest) = self.starts.split_first()?;
        if self.starts.len() < RESPAWN_HISTORY {
            return None;
        }
        let offsets: Duration = rest.iter().map(|s| s.saturating_duration_since(*first)).sum();
        Some(*first + offsets / RESPAWN_HISTORY as u32 + RESPAWN_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("exit".parse(), Ok(WrapMode::Exit));
        assert_eq!("ignore".parse(), Ok(WrapMode::Ignore));
        assert_eq!("respawn".parse(), Ok(WrapMode::Respawn));
        assert!("Exit".parse::<WrapMode>().is_err());
    }

    #[test]
    fn throttle_allows_three_quick_starts_then_one_per_window_on_average() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let mut throttle = Throttle::default();
        assert_eq!(throttle.next_start(), None);
        throttle.record(s(0.0));
        throttle.record(s(0.1));
        assert_eq!(throttle.next_start(), None);
        throttle.record(s(0.2));
        // mean of 0.0, 0.1, 0.2 is 0.1
        assert_eq!(throttle.next_start(), Some(s(10.1)));
        throttle.record(s(10.1));
        // mean of 0.1, 0.2, 10.1 is 3.4666...
        let next = throttle.next_start().unwrap();
        assert!((next - t0).as_secs_f64() > 13.46 && (next - t0).as_secs_f64() < 13.47, "{next:?}");
        // A program that runs long enough is restarted at once.
        throttle.record(s(100.0));
        throttle.record(s(200.0));
        throttle.record(s(300.0));
        assert!(throttle.next_start().unwrap() < s(300.0));
    }

    #[test]
    fn exit_codes_like_a_shell() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(describe(ExitStatus::from_raw(15)), "was killed by signal 15");
    }
}
