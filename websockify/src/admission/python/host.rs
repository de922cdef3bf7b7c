//! The plugin host process: one Python interpreter running one plugin, spoken to in JSON
//! lines, restarted when it dies.
//!
//! Plain threads, not tasks, read its output: the host must work under whichever runtime
//! calls it (the server's, `--check-config`'s current-thread one, or none while an
//! authenticator blocks), and a thread that only waits on a pipe costs nothing to the
//! runtime. Each request carries an id, so answers may come back in any order; a request
//! whose deadline passed is forgotten and its late answer dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::wire::http::printable;

/// The Python side, run with `python -c`: the binary carries it, so a site needs nothing
/// installed but its interpreter.
const HOST_SCRIPT: &str = include_str!("../../../../python/websockify/_plugin_host.py");
/// Upstream-compatible `websockify.token_plugins` and `websockify.auth_plugins`, which
/// the host installs when the interpreter has neither upstream nor websockify-rs.
const COMPAT: [(&str, &str); 2] = [
    ("websockify.token_plugins", include_str!("../../../../python/websockify/token_plugins.py")),
    ("websockify.auth_plugins", include_str!("../../../../python/websockify/auth_plugins.py")),
];

/// A host that dies is started again at most this often (a plugin that kills its process
/// on every lookup must not turn the proxy into a fork bomb).
const RESTART_GAP: Duration = Duration::from_millis(250);
/// Lookups waiting for an answer at once, per host: past this the plugin is stuck and new
/// sessions get a 502 at once rather than more Python threads.
const MAX_IN_FLIGHT: usize = 1024;
/// How long a plugin's constructor may take at start (it may connect to a database).
const START_LIMIT: Duration = Duration::from_secs(30);

/// Which methods the host calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Token,
    Auth,
}

/// What to load: upstream's `--token-plugin`/`--auth-plugin` class and its source.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    pub kind: Kind,
    pub class: String,
    pub source: Option<String>,
}

impl Spec {
    fn init(&self, check: bool) -> String {
        let kind = match self.kind {
            Kind::Token => "token",
            Kind::Auth => "auth",
        };
        let compat: serde_json::Map<String, Value> = COMPAT.iter().map(|(n, s)| ((*n).to_owned(), json!(s))).collect();
        json!({"kind": kind, "class": self.class, "source": self.source, "check": check, "compat": compat}).to_string()
    }
}

/// Why a call got no answer from the plugin.
#[derive(Debug)]
pub(super) enum CallError {
    /// The deadline passed.
    Timeout,
    /// The host could not be started, or exited before answering.
    Host(String),
}

/// A plugin host, started on first use and again after it dies.
pub(super) struct Host {
    spec: Spec,
    python: PathBuf,
    timeout: Duration,
    state: Mutex<State>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    last_start: Option<Instant>,
}

struct Running {
    stdin: ChildStdin,
    shared: Arc<Shared>,
}

/// What the reader thread and callers share about one host process.
struct Shared {
    child: Mutex<Child>,
    pending: Mutex<HashMap<u64, Reply>>,
    alive: AtomicBool,
    /// The constructor's exception, when a restarted host could not build the plugin.
    failure: Mutex<Option<String>>,
}

type Answer = Result<Value, String>;

/// Where an answer goes: an awaiting task or a blocked thread.
enum Reply {
    Async(tokio::sync::oneshot::Sender<Answer>),
    Blocking(mpsc::SyncSender<Answer>),
}

impl Reply {
    fn send(self, answer: Answer) {
        // The caller may have given up (deadline): nobody to tell then.
        match self {
            Reply::Async(tx) => drop(tx.send(answer)),
            Reply::Blocking(tx) => drop(tx.try_send(answer)),
        }
    }
}

/// Why a request was not sent.
enum Refused {
    /// The host died moments ago; it may be restarted after this long.
    Wait(Duration),
    Fail(String),
}

/// Locks, ignoring poisoning: every critical section here leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Host {
    /// Loads the plugin once in a throw-away interpreter, so that a constructor that raises
    /// fails the start (exit 2, `--check-config`) with the Python exception; the serving
    /// host is started on the first call (after `--daemon`'s fork and `--user`'s drop).
    pub fn start(spec: Spec, python: PathBuf, timeout: Duration) -> Result<Host, String> {
        check(&spec, &python)?;
        Ok(Host { spec, python, timeout, state: Mutex::new(State::default()), next_id: AtomicU64::new(1) })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `body` and awaits its answer until the deadline.
    pub async fn call(&self, body: Value) -> Result<Value, CallError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let (tx, rx) = tokio::sync::oneshot::channel();
            match self.submit(&body, Reply::Async(tx)) {
                Ok(id) => {
                    return match tokio::time::timeout_at(deadline, rx).await {
                        Ok(Ok(answer)) => answer.map_err(CallError::Host),
                        Ok(Err(_)) => Err(CallError::Host("the plugin host went away".into())),
                        Err(_) => {
                            self.forget(id);
                            Err(CallError::Timeout)
                        }
                    };
                }
                Err(Refused::Wait(gap)) if tokio::time::Instant::now() + gap < deadline => {
                    tokio::time::sleep(gap).await;
                }
                Err(Refused::Wait(_)) => return Err(CallError::Timeout),
                Err(Refused::Fail(why)) => return Err(CallError::Host(why)),
            }
        }
    }

    /// [`call`](Self::call) for a synchronous caller: blocks this thread until the answer
    /// or the deadline.
    pub fn call_blocking(&self, body: Value) -> Result<Value, CallError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (tx, rx) = mpsc::sync_channel(1);
            match self.submit(&body, Reply::Blocking(tx)) {
                Ok(id) => {
                    return match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(answer) => answer.map_err(CallError::Host),
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            Err(CallError::Host("the plugin host went away".into()))
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.forget(id);
                            Err(CallError::Timeout)
                        }
                    };
                }
                Err(Refused::Wait(gap)) if Instant::now() + gap < deadline => std::thread::sleep(gap),
                Err(Refused::Wait(_)) => return Err(CallError::Timeout),
                Err(Refused::Fail(why)) => return Err(CallError::Host(why)),
            }
        }
    }

    /// Writes a request to the running host, starting it first if there is none. Spawning
    /// blocks for the fork and exec only (a few ms, at most a few times a second); the
    /// interpreter loads the plugin while the request already waits in its pipe.
    fn submit(&self, body: &Value, reply: Reply) -> Result<u64, Refused> {
        let mut reply = Some(reply);
        let mut state = lock(&self.state);
        // Twice: a write may find the host dead before its reader thread noticed.
        for _ in 0..2 {
            if !state.running.as_ref().is_some_and(|r| r.shared.alive.load(Ordering::SeqCst)) {
                state.running = None;
                if let Some(last) = state.last_start
                    && last.elapsed() < RESTART_GAP
                {
                    return Err(Refused::Wait(RESTART_GAP - last.elapsed()));
                }
                state.last_start = Some(Instant::now());
                state.running = Some(self.spawn().map_err(Refused::Fail)?);
            }
            let Some(running) = state.running.as_mut() else { continue };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            {
                let mut pending = lock(&running.shared.pending);
                if pending.len() >= MAX_IN_FLIGHT {
                    return Err(Refused::Fail(format!("{MAX_IN_FLIGHT} calls already wait for the plugin")));
                }
                if let Some(r) = reply.take() {
                    pending.insert(id, r);
                }
            }
            let mut line = body.clone();
            line["id"] = json!(id);
            let written = writeln!(running.stdin, "{line}").and_then(|()| running.stdin.flush());
            // Checked after the insert: a reader that saw the end has set `alive` before
            // draining, so a request it did not drain is caught here.
            if written.is_ok() && running.shared.alive.load(Ordering::SeqCst) {
                return Ok(id);
            }
            running.shared.alive.store(false, Ordering::SeqCst);
            reply = lock(&running.shared.pending).remove(&id);
            if reply.is_none() {
                // The reader answered it already (with the host's end).
                return Ok(id);
            }
        }
        Err(Refused::Fail("the plugin host cannot be reached".into()))
    }

    /// Drops a request whose caller stopped waiting.
    fn forget(&self, id: u64) {
        if let Some(running) = &lock(&self.state).running {
            lock(&running.shared.pending).remove(&id);
        }
    }

    fn spawn(&self) -> Result<Running, String> {
        let class = &self.spec.class;
        let mut child = command(&self.python, &self.spec)
            .spawn()
            .map_err(|e| format!("cannot run {} for plugin {class}: {e}", self.python.display()))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the plugin host has no pipes".into());
        };
        let pid = child.id();
        writeln!(stdin, "{}", self.spec.init(false))
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("plugin {class}: the host exited at once: {e}"))?;
        let shared = Arc::new(Shared {
            child: Mutex::new(child),
            pending: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            failure: Mutex::new(None),
        });
        tracing::info!("plugin {class}: Python plugin host started (pid {pid})");
        let name = class.clone();
        std::thread::Builder::new()
            .name("plugin-log".into())
            .spawn(move || forward_log(&name, stderr))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let (name, reader) = (class.clone(), shared.clone());
        std::thread::Builder::new()
            .name("plugin-host".into())
            .spawn(move || read_answers(&name, pid, stdout, &reader))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(Running { stdin, shared })
    }
}

impl Drop for Host {
    /// Ends the host with the plugin (its stdin closing ends it too; this does not wait
    /// for a plugin thread that never returns).
    fn drop(&mut self) {
        if let Some(running) = lock(&self.state).running.take()
            && let Ok(mut child) = running.shared.child.try_lock()
        {
            let _ = child.kill();
        }
    }
}

fn command(python: &PathBuf, spec: &Spec) -> Command {
    let mut cmd = Command::new(python);
    // The class name shows in `ps` (`sys.argv[1]`).
    cmd.arg("-c").arg(HOST_SCRIPT).arg(&spec.class);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group: a terminal's Ctrl-C is for the proxy, which shuts down in order.
    cmd.process_group(0);
    cmd
}

/// Routes answers to their callers until the host's stdout ends, then fails what is left.
fn read_answers(class: &str, pid: u32, stdout: impl Read, shared: &Shared) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(answer) = serde_json::from_str::<Value>(&line) else {
            tracing::warn!("plugin {class}: the host wrote a line that is not JSON: {}", printable(&line));
            continue;
        };
        match answer.get("id").and_then(Value::as_u64) {
            Some(0) => match answer.get("error").and_then(Value::as_str) {
                Some(e) => {
                    let why = format!("the plugin's constructor raised {}", printable(e));
                    tracing::error!("plugin {class}: {why}");
                    *lock(&shared.failure) = Some(why);
                }
                None => tracing::debug!("plugin {class}: loaded"),
            },
            Some(id) => {
                if let Some(reply) = lock(&shared.pending).remove(&id) {
                    reply.send(Ok(answer));
                }
            }
            None => tracing::warn!("plugin {class}: an answer without an id"),
        }
    }
    shared.alive.store(false, Ordering::SeqCst);
    let status = lock(&shared.child).wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
    let why = lock(&shared.failure).take().unwrap_or_else(|| format!("the plugin host exited ({status})"));
    tracing::warn!("plugin {class}: the Python plugin host (pid {pid}) exited ({status}); started again on next use");
    for (_, reply) in lock(&shared.pending).drain() {
        reply.send(Err(why.clone()));
    }
}

/// The plugin's own logging and prints, into our log, one line per line, at the level
/// Python's `logging` gave it.
fn forward_log(class: &str, stderr: impl Read) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let line = printable(&line);
        let level = line.split_once(' ').map_or("", |(l, _)| l);
        match level {
            "ERROR" | "CRITICAL" => tracing::error!("plugin {class}: {line}"),
            "WARNING" => tracing::warn!("plugin {class}: {line}"),
            "DEBUG" => tracing::debug!("plugin {class}: {line}"),
            _ => tracing::info!("plugin {class}: {line}"),
        }
    }
}

/// Loads the plugin in a throw-away host: `Ok` when its constructor returned.
fn check(spec: &Spec, python: &PathBuf) -> Result<(), String> {
    let mut child =
        command(python, spec).spawn().map_err(|e| format!("cannot run {} (--plugin-python): {e}", python.display()))?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the plugin host has no pipes".into());
    };
    let _ = writeln!(stdin, "{}", spec.init(true));
    drop(stdin);
    let (tx, rx) = mpsc::channel();
    let first = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let line = rx.recv_timeout(START_LIMIT);
    if line.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let _ = first.join();
    let log = log.join().unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
    let said = if tail.is_empty() { String::new() } else { format!(" (it said: {})", printable(&tail)) };
    let line = line.map_err(|_| format!("its constructor did not return within {START_LIMIT:?}"))?;
    match serde_json::from_str::<Value>(&line) {
        Ok(v) if v.get("ok").is_some() => Ok(()),
        Ok(v) => Err(format!("{}{said}", printable(v.get("error").and_then(Value::as_str).unwrap_or("failed")))),
        Err(_) => {
            let status = status.map(|s| s.to_string()).unwrap_or_default();
            Err(format!("{} could not run the plugin host ({status}){said}", python.display()))
        }
    }
}
