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
        let listener = Listener::open(&config.listen, config.prefer_ipv6).await?;
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
        Ok(Self { listener, config: Arc::new(config), tls, target_tls, reload, warnings, metrics, admin })
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
        let mut pending_full_said = None::<Instant>;
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
        let tracker = TaskTracker::new();
        let (active_tx, mut active_rx) = watch::channel(0usize);
        let active_tx = Arc::new(active_tx);
        let first_session_done = Arc::new(Notify::new());
        let next_id = AtomicU64::new(1);
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
                () = first_session_done.notified(), if config.run_once => break Stop::RunOnce,
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
                    let (conn, peer) = match accepted {
                        Ok(Some(ok)) => ok,
                        // The one inherited connection is being served: accept nothing more.
                        Ok(None) => break Stop::RunOnce,
                        Err(e) => {
                            tracing::error!("accept failed: {e}; pausing {ACCEPT_BACKOFF:?}");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    crate::ops::metrics::METRICS.connections_accepted.inc();
                    // Connections that have not become sessions cost memory (a TLS
                    // handshake about 28 KB) and only time limits end them: bounded.
                    let Ok(pending) = ctx.pending.clone().try_acquire_owned() else {
                        crate::ops::metrics::METRICS.limit_hit(crate::ops::metrics::Limit::MaxPendingHandshakes);
                        if pending_full_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            pending_full_said = Some(Instant::now());
                            tracing::warn!(
                                "{} connections are not yet sessions (--max-pending-handshakes): closing new ones \
                                 at accept (said at most every 10 s)",
                                config.limits.max_pending_handshakes
                            );
                        }
                        drop(conn);
                        continue;
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
                    // Counted only for --idle-timeout: each change wakes this loop, a wake-up
                    // of another thread at every session's start and end otherwise.
                    let guard = config.idle_timeout.map(|_| ActiveGuard::new(active_tx.clone()));
                    let (ctx, done) = (ctx.clone(), first_session_done.clone());
                    tracker.spawn(
                        async move {
                            tracing::debug!("accepted");
                            let outcome = match conn {
                                Conn::Tcp(stream, peer) => {
                                    // Options come from the listener; the peer from accept;
                                    // the local address only if a PROXY header for the
                                    // target needs it (each a syscall per session).
                                    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
                                    let addrs = Addrs {
                                        peer: peer.or_else(|| stream.peer_addr().ok()).map(canonical),
                                        local: ctx
                                            .config
                                            .target_proxy
                                            .and_then(|_| stream.local_addr().ok())
                                            .map(canonical),
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
                }
            }
        };
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
    async fn open(listen: &Listen, prefer_ipv6: bool) -> Result<Self, BindError> {
        let listener = Self::open_bare(listen, prefer_ipv6).await?;
        if let Self::Tcp(l) = &listener {
            connect::tune_listener(l);
        }
        Ok(listener)
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
    let addrs = match &listen.host {
        None => vec![SocketAddr::from(([0u16; 8], listen.port)), SocketAddr::from(([0u8; 4], listen.port))],
        Some(host) => connect::resolve(host, listen.port, prefer_ipv6)
            .await
            .map_err(|e| BindError::Resolve { addr: listen.to_string(), source: io::Error::other(e.to_string()) })?,
    };
    let mut last = None;
    for addr in addrs {
        match bind_one(addr) {
            Ok(listener) => return Ok(listener),
            Err(source) => last = Some(BindError::Bind { addr: addr.to_string(), source }),
        }
    }
    Err(last.expect("at least one address"))
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        // Listening on every interface means IPv4 too (IPv4-mapped addresses).
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}
