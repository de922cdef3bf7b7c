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

use crate::config::{Config, Listen, ListenAddr, Route, Target};
use crate::connection::{self, Addrs, Context, Outcome};
use crate::limit::SessionLimits;
use crate::target;
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
        let reload = Arc::new(Notify::new());
        Ok(Self { listener, config: Arc::new(config), tls, target_tls, reload, warnings, metrics })
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
                    Some(w) => format!("'{}' (port {})", w.display_command(), w.port),
                    None => target.to_string(),
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
            lines.push(format!("  - Recording to '{}.*'", record.display()));
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
        });
        let sessions_stop = ctx.shutdown.clone();
        // The metrics endpoint lives as long as this function: the guard stops it on return.
        let metrics_stop = CancellationToken::new();
        let _metrics_stop = metrics_stop.clone().drop_guard();
        if let Some(listener) = self.metrics {
            tokio::spawn(crate::metrics::serve(listener, metrics_stop));
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
                            Ok(()) => tracing::info!("token source reloaded: {}", t.resolver.describe()),
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
                    crate::metrics::METRICS.connections_accepted.inc();
                    // `client` and `forwarded_for`: the real client, when a PROXY protocol header or a
                    // trusted proxy's X-Forwarded-For names it.
                    let span = tracing::info_span!(
                        "conn",
                        id,
                        peer = %peer,
                        client = tracing::field::Empty,
                        forwarded_for = tracing::field::Empty
                    );
                    let guard = ActiveGuard::new(active_tx.clone());
                    let (ctx, done) = (ctx.clone(), first_session_done.clone());
                    tracker.spawn(
                        async move {
                            tracing::debug!("accepted");
                            let outcome = match conn {
                                Conn::Tcp(stream) => {
                                    target::tune_tcp(&stream);
                                    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
                                    let addrs = Addrs {
                                        peer: stream.peer_addr().ok().map(canonical),
                                        local: stream.local_addr().ok().map(canonical),
                                    };
                                    connection::serve(stream, id, addrs, ctx).await
                                }
                                Conn::Unix(stream) => connection::serve(stream, id, Addrs::default(), ctx).await,
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
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    async fn open(listen: &Listen, prefer_ipv6: bool) -> Result<Self, BindError> {
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
            Conn::Tcp(TcpStream::from_std(socket.into())?)
        };
        Ok(Self::Connection(std::sync::Mutex::new(Some(conn))))
    }

    /// The next connection and a name for its peer; `None` once an inherited single
    /// connection has been handed out.
    async fn accept(&self) -> io::Result<Option<(Conn, String)>> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, peer)| Some((Conn::Tcp(s), peer.to_string()))),
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
    Ok(Listener::Unix { listener, path: Some(path.to_owned()) })
}

/// Binds the listen address. No host: `[::]` accepting IPv4 too, or `0.0.0.0` where the
/// host has no IPv6. A name: its first address that binds (IPv6 first with `-6`).
async fn bind(listen: &ListenAddr, prefer_ipv6: bool) -> Result<TcpListener, BindError> {
    let addrs = match &listen.host {
        None => vec![SocketAddr::from(([0u16; 8], listen.port)), SocketAddr::from(([0u8; 4], listen.port))],
        Some(host) => target::resolve(host, listen.port, prefer_ipv6)
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
