//! The accept loop: bind the listening socket, spawn one task per connection, and decide
//! when the server stops (signal, `--timeout`, `--idle-timeout`, `--run-once`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::os::fd::AsFd as _;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::admission::limit::SessionLimits;
use crate::admission::token::TokenResolver;
use crate::admission::token::changes::{Changed, Changes};
use crate::config::{AdminListen, Config, Listen, ListenAddr, Route, Target};
use crate::front::accept;
use crate::ops::admin::AdminListener;
use crate::ops::sessions::{EndedBy, Registry};
use crate::outbound::connect;
use crate::session::connection::{Addrs, Context, Outcome};
use crate::tls::{self, TlsError, TlsServer};

/// Pending connections the kernel queues for us.
const BACKLOG: i32 = 1024;
/// Pause after an accept error (EMFILE and friends) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often certificate files are checked for changes.
const CERT_POLL: Duration = Duration::from_secs(2);

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: Listener,
    /// The other threads serving connections (`Config::threads`), each waiting for
    /// [`run`](Server::run) with a runtime and a listening socket of its own.
    workers: Vec<Worker>,
    config: Arc<Config>,
    tls: Option<Arc<TlsServer>>,
    target_tls: Option<tokio_rustls::TlsConnector>,
    reload: Arc<Notify>,
    /// Problems found at start that did not stop it (shown with the settings).
    warnings: Vec<String>,
    /// `--metrics-listen`: where `GET /metrics` is served.
    metrics: Option<TcpListener>,
    /// `--admin-listen`: where the admin API is served.
    admin: Option<AdminListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot resolve listen address {addr}: {source}")]
    Resolve { addr: String, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("TLS is required (--ssl-only) but the certificate cannot be used: {0}")]
    TlsRequired(TlsError),
    #[error("--ssl-target: {0}")]
    TargetTls(TlsError),
    #[error("--admin-listen {0}: the admin API speaks plain HTTP: listen on a loopback address or a UNIX socket")]
    AdminNotLoopback(String),
    #[error("cannot start a serving thread: {0}")]
    Thread(io::Error),
}

impl Server {
    /// Loads certificates and binds the listening socket described by `config.listen`.
    ///
    /// A certificate that cannot be used is an error with `--ssl-only` and a warning
    /// otherwise (the server then serves plain connections only).
    pub async fn bind(config: Config) -> Result<Self, BindError> {
        let mut warnings = Vec::new();
        let tls = match &config.tls {
            None => None,
            Some(options) => match TlsServer::load(options.clone()) {
                Ok(tls) => Some(Arc::new(tls)),
                Err(e) if config.ssl_only => return Err(BindError::TlsRequired(e)),
                Err(e) => {
                    warnings.push(format!("TLS disabled: {e}"));
                    None
                }
            },
        };
        let target_tls = match &config.target_tls {
            Some(t) => Some(tls::connector(t.cafile.as_deref()).map_err(BindError::TargetTls)?),
            None => None,
        };
        let threads = config.threads.max(1);
        let (listener, others) = Listener::open(&config.listen, config.prefer_ipv6, threads).await?;
        let mut workers = Vec::with_capacity(others.len());
        for (i, socket) in others.into_iter().enumerate() {
            workers.push(Worker::start(i + 1, socket).await.map_err(BindError::Thread)?);
        }
        let metrics = match &config.metrics_listen {
            Some(addr) => Some(bind(addr, config.prefer_ipv6).await?),
            None => None,
        };
        let admin = match config.admin.as_ref().map(|a| &a.listen) {
            None => None,
            Some(AdminListen::Unix(path)) => Some(AdminListener::Unix(
                bind_unix_socket(path, 0o600)
                    .map_err(|source| BindError::Bind { addr: format!("unix socket {}", path.display()), source })?,
            )),
            Some(AdminListen::Tcp(addr)) => {
                let l = bind(addr, config.prefer_ipv6).await?;
                if !l.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
                    return Err(BindError::AdminNotLoopback(addr.to_string()));
                }
                Some(AdminListener::Tcp(l))
            }
        };
        let reload = Arc::new(Notify::new());
        Ok(Self { listener, workers, config: Arc::new(config), tls, target_tls, reload, warnings, metrics, admin })
    }

    /// A handle that makes the running server reload what can be reloaded (certificates);
    /// the binary notifies it on SIGHUP.
    pub fn reload_handle(&self) -> Arc<Notify> {
        self.reload.clone()
    }

    /// The settings summary upstream prints at start, with the address actually bound.
    pub fn settings(&self) -> Vec<String> {
        let config = &self.config;
        let listen = match (&config.listen, &self.listener) {
            (Listen::Tcp(addr), Listener::Tcp(l)) => match (&addr.host, l.local_addr()) {
                (None, Ok(bound)) => format!(":{}", bound.port()),
                (Some(_), Ok(bound)) => bound.to_string(),
                (_, Err(_)) => addr.to_string(),
            },
            (_, Listener::Tcp(l)) => l.local_addr().map_or_else(|_| "inherited socket".into(), |a| a.to_string()),
            (Listen::Unix { path, mode }, _) => format!("unix socket {} (mode {mode:04o})", path.display()),
            (_, Listener::Unix { .. }) => "inherited unix socket".into(),
            (_, Listener::Connection(_)) => "one inherited connection (inetd)".into(),
        };
        let mut lines = vec!["WebSocket server settings:".to_owned(), format!("  - Listen on {listen}")];
        // A bare port: say what that means here (upstream binds IPv4 only), for firewalls.
        if let (Listen::Tcp(ListenAddr { host: None, .. }), Listener::Tcp(l)) = (&config.listen, &self.listener)
            && let Ok(bound) = l.local_addr()
        {
            lines.push(match bound {
                SocketAddr::V6(_) => format!("  - Bound to {bound}: every interface, IPv6 and IPv4"),
                SocketAddr::V4(_) => format!("  - Bound to {bound}: every IPv4 interface (no IPv6 here)"),
            });
        }
        if !self.workers.is_empty() {
            let sockets = match &self.listener {
                Listener::Tcp(_) if matches!(config.listen, Listen::Tcp(_)) => {
                    " (a listening socket each, SO_REUSEPORT)".to_owned()
                }
                _ => String::new(),
            };
            lines.push(format!("  - {} threads{sockets}", self.workers.len() + 1));
        }
        lines.push("  - Flash security policy server".to_owned());
        if let Some(web) = &config.web {
            let listings = if web.listings { "" } else { " (no directory listings)" };
            lines.push(format!("  - Web server{listings}. Web root: {}", web.root.display()));
        }
        match &self.tls {
            Some(_) => {
                lines.push("  - SSL/TLS support".to_owned());
                if config.ssl_only {
                    lines.push("  - Deny non-SSL/TLS connections".to_owned());
                }
            }
            None => lines.push("  - No SSL/TLS support (no cert file)".to_owned()),
        }
        let using = if config.target_tls.is_some() { " (using SSL)" } else { "" };
        match &config.route {
            Route::Fixed(Target::Unix(path)) => {
                lines.push(format!("  - proxying from {listen} to {}{using}", path.display()))
            }
            Route::Fixed(target) => {
                let to = match &config.wrap {
                    Some(w) if *target == w.target() => format!("'{}' (port {})", w.display_command(), w.port),
                    _ => target.to_string(),
                };
                lines.push(format!("  - proxying from {listen} to {to}{using}"));
            }
            Route::Token(t) => {
                let from = if t.source.host { " (token from the Host header)" } else { "" };
                lines.push(format!(
                    "  - proxying from {listen} to targets chosen by {}{from}{using}",
                    t.resolver.describe()
                ));
            }
        }
        if let Some(record) = &config.record {
            let run = crate::session::record::run_stamp();
            lines.push(format!("  - Recording to '{}.{run}.*' (mode 0600)", record.display()));
        }
        if let Some(auth) = &config.auth {
            let web = if config.web_auth { " (also for the web server)" } else { "" };
            lines.push(format!("  - Authentication: {}{web}", auth.describe()));
        }
        if let Some(from) = &config.accept_proxy {
            lines.push(format!("  - PROXY protocol header required from {from}"));
        }
        if !config.trusted_proxies.is_empty() {
            lines.push(format!("  - X-Forwarded-For and Forwarded believed from {}", config.trusted_proxies));
        }
        if let Some(version) = config.target_proxy {
            lines.push(format!("  - PROXY protocol {version} header sent to targets"));
        }
        if let Some(addr) = self.metrics_addr() {
            lines.push(format!("  - Prometheus metrics at http://{addr}/metrics"));
        }
        if let Some(admin) = &self.admin {
            lines.push(format!("  - Admin API at {}", admin.describe()));
        }
        if let Some(interval) = config.revoke_interval {
            lines.push(format!(
                "  - Live sessions end when their token is revoked (at once when the token source reports changes, \
                 else checked every {}s)",
                interval.as_secs()
            ));
        }
        for w in &self.warnings {
            lines.push(format!("  ! {w}"));
        }
        lines
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr(),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "not a TCP listener")),
        }
    }

    /// The address the metrics endpoint is bound to (`--metrics-listen`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until `shutdown` is cancelled or a configured end (`--timeout`,
    /// `--idle-timeout`, `--run-once`) arrives. On `shutdown`, every session is closed
    /// with 1001 and given `limits.shutdown_grace` to finish; on a configured end, live
    /// sessions run to their natural end (a later `shutdown` still closes them).
    pub async fn run(self, shutdown: CancellationToken) {
        let config = self.config.clone();
        let ctx = Arc::new(Context {
            config: config.clone(),
            tls: self.tls.clone(),
            target_tls: self.target_tls.clone(),
            shutdown: CancellationToken::new(),
            sessions: SessionLimits::new(config.limits.sessions),
            pending: Arc::new(tokio::sync::Semaphore::new(match config.limits.max_pending_handshakes {
                0 => tokio::sync::Semaphore::MAX_PERMITS,
                n => n,
            })),
            registry: (config.admin.is_some() || config.revoke_interval.is_some()).then(Arc::<Registry>::default),
        });
        let sessions_stop = ctx.shutdown.clone();
        // The metrics endpoint lives as long as this function: the guard stops it on return.
        let metrics_stop = CancellationToken::new();
        let _metrics_stop = metrics_stop.clone().drop_guard();
        if let Some(listener) = self.metrics {
            tokio::spawn(crate::ops::metrics::serve(listener, metrics_stop.clone()));
        }
        if let (Some(listener), Some(admin), Some(registry)) = (self.admin, &config.admin, &ctx.registry) {
            let token: Arc<str> = admin.token.as_str().into();
            tokio::spawn(crate::ops::admin::serve(listener, registry.clone(), token, metrics_stop.clone()));
        }
        // Poked after a SIGHUP reload of the token source, so that the reload's revocations
        // apply at once (`ReadOnlyTokenFile`).
        let revoke_now = Arc::new(Notify::new());
        if let (Some(interval), Route::Token(route), Some(registry)) =
            (config.revoke_interval, &config.route, &ctx.registry)
        {
            let resolver = route.resolver.clone();
            tokio::spawn(revoke(registry.clone(), resolver, interval, revoke_now.clone(), metrics_stop.clone()));
        }
        let mut cert_poll = tokio::time::interval(CERT_POLL);
        cert_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (active_tx, mut active_rx) = watch::channel(0usize);
        let admit = Arc::new(Admit {
            ctx,
            tracker: TaskTracker::new(),
            next_id: AtomicU64::new(1),
            active_tx: Arc::new(active_tx),
            first_session_done: Arc::new(Notify::new()),
            pending_full_said: std::sync::Mutex::new(None),
        });
        let tracker = admit.tracker.clone();
        // The other threads accept until this is cancelled, then serve their sessions to
        // their end.
        let accepting = CancellationToken::new();
        for worker in self.workers {
            worker.go(admit.clone(), accepting.clone());
        }
        let stop_accepting = accepting.drop_guard();
        tokio::spawn(keep_a_timer());
        let deadline = config.timeout.map(|t| Instant::now() + t);
        let mut idle_since = Instant::now();

        let stop = loop {
            let idle_deadline = match config.idle_timeout {
                Some(idle) if *active_rx.borrow() == 0 => Some(idle_since + idle),
                _ => None,
            };
            tokio::select! {
                () = shutdown.cancelled() => break Stop::Signal,
                () = sleep_until_opt(deadline) => break Stop::Timeout,
                () = sleep_until_opt(idle_deadline) => break Stop::Idle,
                () = admit.first_session_done.notified(), if config.run_once => break Stop::RunOnce,
                () = self.reload.notified() => {
                    reload_tls(self.tls.as_deref(), true);
                    if let Route::Token(t) = &config.route {
                        match t.resolver.reload() {
                            Ok(()) => {
                                tracing::info!("token source reloaded: {}", t.resolver.describe());
                                revoke_now.notify_one();
                            }
                            Err(e) => tracing::error!("token source reload failed, keeping the previous one: {e}"),
                        }
                    }
                }
                _ = cert_poll.tick(), if self.tls.is_some() => reload_tls(self.tls.as_deref(), false),
                changed = active_rx.changed() => {
                    if changed.is_ok() && *active_rx.borrow_and_update() == 0 {
                        idle_since = Instant::now();
                    }
                }
                accepted = self.listener.accept() => {
                    if !admit.accepted(accepted).await {
                        // The one inherited connection is being served: accept nothing more.
                        break Stop::RunOnce;
                    }
                }
            }
        };
        drop(stop_accepting);
        drop(self.listener);
        tracker.close();
        if stop != Stop::Signal {
            // Like upstream, whose forked sessions outlive the listener: stop accepting,
            // let live sessions end on their own, unless a signal asks for more haste.
            tracing::info!("{}; no longer accepting, exiting when {} session(s) end", stop.describe(), tracker.len());
            tokio::select! {
                () = tracker.wait() => return,
                () = shutdown.cancelled() => {}
            }
        }
        tracing::info!("shutting down: closing {} session(s) with 1001", tracker.len());
        sessions_stop.cancel();
        let grace = config.limits.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("{} session(s) still open after {grace:?}; dropping them", tracker.len());
        }
    }
}

/// Why the accept loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Signal,
    Timeout,
    Idle,
    RunOnce,
}

impl Stop {
    fn describe(&self) -> &'static str {
        match self {
            Self::Signal => "shutdown requested",
            Self::Timeout => "--timeout reached",
            Self::Idle => "--idle-timeout reached with no session",
            Self::RunOnce => "--run-once: first session finished",
        }
    }
}

/// What every accepting thread shares: it turns an accepted connection into a session task
/// on the thread that accepted it.
struct Admit {
    ctx: Arc<Context>,
    tracker: TaskTracker,
    next_id: AtomicU64,
    /// Live sessions, counted only for `--idle-timeout`.
    active_tx: Arc<watch::Sender<usize>>,
    first_session_done: Arc<Notify>,
    /// When the `--max-pending-handshakes` warning was last said.
    pending_full_said: std::sync::Mutex<Option<Instant>>,
}

impl Admit {
    /// Serves what `accept` gave on this thread; false once an inherited single
    /// connection has been handed out (nothing more will come).
    async fn accepted(&self, accepted: io::Result<Option<(Conn, String)>>) -> bool {
        let (conn, peer) = match accepted {
            Ok(Some(ok)) => ok,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!("accept failed: {e}; pausing {ACCEPT_BACKOFF:?}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                return true;
            }
        };
        let ctx = &self.ctx;
        let config = &ctx.config;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        crate::ops::metrics::METRICS.connections_accepted.inc();
        // Connections that have not become sessions cost memory (a TLS handshake about
        // 28 KB) and only time limits end them: bounded.
        let Ok(pending) = ctx.pending.clone().try_acquire_owned() else {
            crate::ops::metrics::METRICS.limit_hit(crate::ops::metrics::Limit::MaxPendingHandshakes);
            let mut said = self.pending_full_said.lock().unwrap_or_else(|e| e.into_inner());
            if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *said = Some(Instant::now());
                tracing::warn!(
                    "{} connections are not yet sessions (--max-pending-handshakes): closing new ones at accept \
                     (said at most every 10 s)",
                    config.limits.max_pending_handshakes
                );
            }
            return true;
        };
        // `client` and `forwarded_for`: the real client, when a PROXY protocol header or a
        // trusted proxy's X-Forwarded-For names it.
        let span = tracing::info_span!(
            "conn",
            id,
            peer = %peer,
            client = tracing::field::Empty,
            forwarded_for = tracing::field::Empty
        );
        // Counted only for --idle-timeout: each change wakes the main loop, a wake-up of
        // another thread at every session's start and end otherwise.
        let guard = config.idle_timeout.map(|_| ActiveGuard::new(self.active_tx.clone()));
        let (ctx, done) = (ctx.clone(), self.first_session_done.clone());
        self.tracker.spawn(
            async move {
                tracing::debug!("accepted");
                let outcome = match conn {
                    Conn::Tcp(stream, peer) => {
                        // Options come from the listener; the peer from accept; the local
                        // address only if a PROXY header for the target needs it (each a
                        // syscall per session).
                        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
                        let addrs = Addrs {
                            peer: peer.or_else(|| stream.peer_addr().ok()).map(canonical),
                            local: ctx.config.target_proxy.and_then(|_| stream.local_addr().ok()).map(canonical),
                        };
                        accept::serve(stream, id, addrs, ctx, Some(pending)).await
                    }
                    Conn::Unix(stream) => accept::serve(stream, id, Addrs::default(), ctx, Some(pending)).await,
                };
                if outcome == Outcome::Session {
                    done.notify_one();
                }
                drop(guard);
            }
            .instrument(span),
        );
        true
    }
}

/// One of the threads beyond the caller's: a single-threaded runtime with a listening
/// socket of its own, serving to their end the sessions it accepts. It is started by
/// [`Server::bind`] (so that a failure is a start error) and waits there for
/// [`Server::run`]; dropped unused, it ends.
///
/// Why threads with a runtime each rather than tokio's work-stealing runtime: a session's
/// two directions, its timers and its wake-ups then stay on one thread, and no thread
/// wakes another (a `futex` per hand-over: 11.6 per session before, measured with
/// `strace -f -c` in bench/run's syscalls scenario); the kernel spreads connections over
/// the threads' sockets (`SO_REUSEPORT`). The cost: a session stays on the thread that
/// accepted it, so a thread busy with bulk transfers serves its new sessions between
/// them (tokio's cooperative budget interleaves them) rather than handing them over.
struct Worker {
    go: std::sync::mpsc::Sender<(Arc<Admit>, CancellationToken)>,
}

impl Worker {
    async fn start(index: usize, socket: WorkerSocket) -> io::Result<Self> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<io::Result<()>>();
        let (go, go_rx) = std::sync::mpsc::channel::<(Arc<Admit>, CancellationToken)>();
        std::thread::Builder::new().name(format!("websockify-{index}")).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let listener = {
                let _entered = runtime.enter();
                match socket.register() {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
            };
            let _ = ready_tx.send(Ok(()));
            let Ok((admit, accepting)) = go_rx.recv() else { return };
            runtime.block_on(async move {
                tokio::spawn(keep_a_timer());
                loop {
                    tokio::select! {
                        () = accepting.cancelled() => break,
                        accepted = listener.accept() => if !admit.accepted(accepted).await { break },
                    }
                }
                drop(listener);
                // Every thread's sessions, this one's among them; the main thread decides
                // how long the process waits for them.
                admit.tracker.wait().await;
            });
        })?;
        ready_rx.await.unwrap_or_else(|_| Err(io::Error::other("the thread ended at start")))?;
        Ok(Self { go })
    }

    fn go(self, admit: Arc<Admit>, accepting: CancellationToken) {
        let _ = self.go.send((admit, accepting));
    }
}

/// A listening socket for a [`Worker`], registered with the worker's runtime there.
enum WorkerSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl WorkerSocket {
    fn register(self) -> io::Result<Listener> {
        Ok(match self {
            Self::Tcp(l) => {
                let listener = TcpListener::from_std(l)?;
                connect::tune_listener(&listener);
                Listener::Tcp(listener)
            }
            Self::Unix(l) => Listener::Unix { listener: UnixListener::from_std(l)?, path: None },
        })
    }

    /// Another descriptor for the same listening socket (one we did not bind: the threads
    /// share it, the kernel wakes one of them per connection).
    fn duplicate(listener: &Listener) -> io::Result<Option<Self>> {
        let dup =
            |fd: std::os::fd::BorrowedFd<'_>| -> io::Result<Socket> { Ok(Socket::from(fd.try_clone_to_owned()?)) };
        Ok(match listener {
            Listener::Tcp(l) => Some(Self::Tcp(dup(l.as_fd())?.into())),
            Listener::Unix { listener, .. } => Some(Self::Unix(dup(listener.as_fd())?.into())),
            Listener::Connection(_) => None,
        })
    }
}

/// Keeps a timer pending on this thread's runtime, a second away at most. Tokio wakes its
/// own driver (a `write` to an eventfd) whenever a new timer is due before every other
/// one; a session's handshake deadline, its first timer, would be that at every session
/// start on an otherwise idle thread. With this one pending, the deadlines of seconds
/// that sessions arm are never the earliest. Costs one wake-up a second per thread.
async fn keep_a_timer() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reloads the certificates: always when asked (SIGHUP), else only if the files changed.
/// A failed reload keeps the previous certificate in use.
fn reload_tls(tls: Option<&TlsServer>, forced: bool) {
    let Some(tls) = tls else { return };
    let result = if forced { tls.reload().map(|()| true) } else { tls.reload_if_changed() };
    match result {
        Ok(true) => tracing::info!("TLS certificate reloaded from {}", tls.options().cert.display()),
        Ok(false) => {}
        Err(e) => tracing::error!("TLS certificate reload failed, keeping the previous one: {e}"),
    }
}

/// Counts a connection as active for `--idle-timeout` while it lives.
struct ActiveGuard(Arc<watch::Sender<usize>>);

impl ActiveGuard {
    fn new(tx: Arc<watch::Sender<usize>>) -> Self {
        tx.send_modify(|n| *n += 1);
        Self(tx)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// How long the revocation task waits after a token source reports a change before it
/// looks: an editor or a portal writes a file in several steps, a script deletes several
/// keys; the steps of one burst are looked at once.
const REVOKE_DEBOUNCE: Duration = Duration::from_millis(30);

/// `--revoke-live-sessions`: looks each live session's token up again (one lookup per
/// token, however many sessions it has) when the token source reports a change (a token
/// file written, a Redis key deleted: see [`TokenResolver::changes`]), after a SIGHUP
/// reload (`recheck`), and in any case every `interval` or as often as the resolver asks
/// (a token file that cannot be watched: every second, a stat when nothing changed). A
/// token that is gone or leads elsewhere ends its sessions with 1008 "Token revoked". A
/// source that cannot answer revokes nothing (said once per outage).
async fn revoke(
    registry: Arc<Registry>,
    resolver: Arc<dyn TokenResolver>,
    interval: Duration,
    recheck: Arc<Notify>,
    stop: CancellationToken,
) {
    // Owned here: what the source started to report changes ends when this returns.
    let mut changes = resolver.changes(interval);
    let mut failing = false;
    let mut last_full = Instant::now();
    loop {
        let period = resolver.recheck_interval().map_or(interval, |own| own.min(interval));
        let (which, why) = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(last_full + period) => (Changed::All, "periodic"),
            () = recheck.notified() => (Changed::All, "token source reloaded"),
            changed = next_change(changes.as_mut()) => {
                tokio::time::sleep(REVOKE_DEBOUNCE).await;
                let changed = match changes.as_mut().and_then(Changes::try_next) {
                    Some(more) => changed.merge(more),
                    None => changed,
                };
                (changed, "the token source reported a change")
            }
        };
        if which == Changed::All {
            last_full = Instant::now();
        }
        check_tokens(&registry, &*resolver, &which, why, &mut failing).await;
    }
}

/// The next report of `changes`; never, without a source that reports.
async fn next_change(changes: Option<&mut Changes>) -> Changed {
    match changes {
        Some(changes) => changes.next().await,
        None => std::future::pending().await,
    }
}

/// One look at the live sessions' tokens that `which` covers (see [`revoke`]).
async fn check_tokens(
    registry: &Registry,
    resolver: &dyn TokenResolver,
    which: &Changed,
    why: &str,
    failing: &mut bool,
) {
    let mut by_token: std::collections::HashMap<String, Vec<Arc<crate::ops::sessions::Live>>> =
        std::collections::HashMap::new();
    for live in registry.list() {
        if let Some(token) = live.token.clone().filter(|t| which.covers(t)) {
            by_token.entry(token).or_default().push(live);
        }
    }
    tracing::debug!("token revocation: looking up {} live token(s) again ({why})", by_token.len());
    for (token, sessions) in by_token {
        let id = crate::admission::token::id(&token);
        let now = match resolver.lookup(&token).await {
            Ok(found) => {
                *failing = false;
                found
            }
            Err(e) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(
                        "token revocation: the token source cannot answer ({e}); revoking nothing until it can"
                    );
                }
                continue;
            }
        };
        for live in sessions {
            let still = now.as_ref().is_some_and(|t| t.to_string() == live.target_key);
            if !still && live.end(1008, "Token revoked", EndedBy::Revoked) {
                tracing::info!("session {} ended: token [{id}] revoked", live.id);
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The sockets connections come from.
enum Listener {
    Tcp(TcpListener),
    /// A UNIX socket; `path` is removed at exit when we created it.
    Unix {
        listener: UnixListener,
        path: Option<std::path::PathBuf>,
    },
    /// One already accepted connection (inetd `nowait` style), served once.
    Connection(std::sync::Mutex<Option<Conn>>),
}

/// An accepted connection.
enum Conn {
    /// A TCP connection, and its peer's address when `accept` already said it.
    Tcp(TcpStream, Option<SocketAddr>),
    Unix(UnixStream),
}

impl Listener {
    /// Opens the listener; a TCP one gets the socket options every connection should
    /// have (the connections it accepts inherit them).
    /// With `threads` above 1, also a socket for each other thread: a listening socket of
    /// its own in one `SO_REUSEPORT` group when we bind the port, else the same socket
    /// shared (an inherited or UNIX one; one inherited connection is served by one
    /// thread).
    async fn open(listen: &Listen, prefer_ipv6: bool, threads: usize) -> Result<(Self, Vec<WorkerSocket>), BindError> {
        let (listener, others) = match listen {
            Listen::Tcp(addr) if threads > 1 => {
                let mut group = bind_group(addr, prefer_ipv6, threads).await?.into_iter();
                let first = group.next().expect("a socket per thread");
                let err = |source| BindError::Bind { addr: addr.to_string(), source };
                let listener = TcpListener::from_std(first).map_err(err)?;
                (Self::Tcp(listener), group.map(WorkerSocket::Tcp).collect())
            }
            _ => {
                let listener = Self::open_bare(listen, prefer_ipv6).await?;
                let mut others = Vec::new();
                for _ in 1..threads {
                    match WorkerSocket::duplicate(&listener) {
                        Ok(Some(socket)) => others.push(socket),
                        Ok(None) => break,
                        Err(source) => return Err(BindError::Bind { addr: "the listening socket".into(), source }),
                    }
                }
                (listener, others)
            }
        };
        if let Self::Tcp(l) = &listener {
            connect::tune_listener(l);
        }
        Ok((listener, others))
    }

    async fn open_bare(listen: &Listen, prefer_ipv6: bool) -> Result<Self, BindError> {
        match listen {
            Listen::Tcp(addr) => bind(addr, prefer_ipv6).await.map(Self::Tcp),
            Listen::Unix { path, mode } => {
                bind_unix(path, *mode).map_err(|source| BindError::Bind { addr: path.display().to_string(), source })
            }
            Listen::Stdin => {
                let fd = std::io::stdin().as_fd().try_clone_to_owned();
                let fd = fd.map_err(|source| BindError::Bind { addr: "stdin (--inetd)".into(), source })?;
                Self::inherited(socket2::Socket::from(fd))
                    .map_err(|source| BindError::Bind { addr: "stdin (--inetd)".into(), source })
            }
            Listen::Systemd => {
                let mut fds = listenfd::ListenFd::from_env();
                let err = |source| BindError::Bind { addr: "systemd socket (LISTEN_FDS)".into(), source };
                if let Ok(Some(l)) = fds.take_tcp_listener(0) {
                    l.set_nonblocking(true).map_err(err)?;
                    return TcpListener::from_std(l).map(Self::Tcp).map_err(err);
                }
                match fds.take_unix_listener(0) {
                    Ok(Some(l)) => {
                        l.set_nonblocking(true).map_err(err)?;
                        UnixListener::from_std(l).map(|listener| Self::Unix { listener, path: None }).map_err(err)
                    }
                    Ok(None) => Err(err(io::Error::other("LISTEN_FDS names no socket for this process"))),
                    Err(e) => Err(err(e)),
                }
            }
        }
    }

    /// A socket received from our parent: listening (inetd `wait`), or one connection.
    fn inherited(socket: socket2::Socket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let unix = socket.domain()? == Domain::UNIX;
        if socket.is_listener()? {
            return Ok(if unix {
                Self::Unix { listener: UnixListener::from_std(socket.into())?, path: None }
            } else {
                Self::Tcp(TcpListener::from_std(socket.into())?)
            });
        }
        let conn = if unix {
            Conn::Unix(UnixStream::from_std(socket.into())?)
        } else {
            let stream = TcpStream::from_std(socket.into())?;
            connect::tune_tcp(&stream);
            Conn::Tcp(stream, None)
        };
        Ok(Self::Connection(std::sync::Mutex::new(Some(conn))))
    }

    /// The next connection and a name for its peer; `None` once an inherited single
    /// connection has been handed out.
    async fn accept(&self) -> io::Result<Option<(Conn, String)>> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, peer)| Some((Conn::Tcp(s, Some(peer)), peer.to_string()))),
            Self::Unix { listener, .. } => {
                listener.accept().await.map(|(s, _)| Some((Conn::Unix(s), "unix".to_owned())))
            }
            Self::Connection(conn) => {
                let taken = conn.lock().expect("inherited connection").take();
                match taken {
                    Some(conn) => Ok(Some((conn, "inetd".to_owned()))),
                    None => Ok(None),
                }
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix { path: Some(path), .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates a UNIX listening socket with `mode` permission bits. A stale socket file (no
/// one listening) is replaced; a live one is an error, as is any other file.
fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<Listener> {
    let listener = bind_unix_socket(path, mode)?;
    Ok(Listener::Unix { listener, path: Some(path.to_owned()) })
}

/// Binds a UNIX stream socket at `path` with permission bits `mode`, replacing a stale
/// socket file (one nobody listens on) but nothing else.
fn bind_unix_socket(path: &std::path::Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket"));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "another process listens on it"));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Binds the listen address. No host: `[::]` accepting IPv4 too, or `0.0.0.0` where the
/// host has no IPv6. A name: its first address that binds (IPv6 first with `-6`).
async fn bind(listen: &ListenAddr, prefer_ipv6: bool) -> Result<TcpListener, BindError> {
    first_that_binds(listen, prefer_ipv6, bind_one).await
}

/// [`bind`] for `n` threads: `n` listening sockets on one address, one `SO_REUSEPORT`
/// group, among which the kernel spreads the connections.
async fn bind_group(listen: &ListenAddr, prefer_ipv6: bool, n: usize) -> Result<Vec<std::net::TcpListener>, BindError> {
    first_that_binds(listen, prefer_ipv6, |addr| bind_group_at(addr, n)).await
}

/// Tries `bind_at` on each address `listen` stands for, in order; the first that binds, or
/// the last error.
async fn first_that_binds<T>(
    listen: &ListenAddr,
    prefer_ipv6: bool,
    bind_at: impl Fn(SocketAddr) -> io::Result<T>,
) -> Result<T, BindError> {
    let addrs = match &listen.host {
        None => vec![SocketAddr::from(([0u16; 8], listen.port)), SocketAddr::from(([0u8; 4], listen.port))],
        Some(host) => connect::resolve(host, listen.port, prefer_ipv6)
            .await
            .map_err(|e| BindError::Resolve { addr: listen.to_string(), source: io::Error::other(e.to_string()) })?,
    };
    let mut last = None;
    for addr in addrs {
        match bind_at(addr) {
            Ok(bound) => return Ok(bound),
            Err(source) => last = Some(BindError::Bind { addr: addr.to_string(), source }),
        }
    }
    Err(last.expect("at least one address"))
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

fn tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        // Listening on every interface means IPv4 too (IPv4-mapped addresses).
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The port stays ours: it is first bound by a socket without `SO_REUSEPORT`, which fails
/// ("Address already in use") if anything listens there, another websockify's group
/// among them, as a single socket would. That socket, bound but not listening, does not
/// stop the group from binding beside it, and is closed once the group listens. (A later
/// process of the same user that sets `SO_REUSEPORT` itself could still join the group:
/// docs/security.md says so.)
fn bind_group_at(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let probe = tcp_socket(addr)?;
    probe.bind(&addr.into())?;
    let addr = probe.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?;
    let group = (0..n)
        .map(|_| {
            let socket = tcp_socket(addr)?;
            socket.set_reuse_port(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)?;
            Ok(socket.into())
        })
        .collect();
    drop(probe);
    group
}
