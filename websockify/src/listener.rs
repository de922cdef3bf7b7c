//! The accept loop: bind the listening socket, spawn one task per connection, and decide
//! when the server stops (signal, `--timeout`, `--idle-timeout`, `--run-once`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::config::{Config, ListenAddr, Route, Target};
use crate::connection::{self, Context, Outcome};
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
    listener: TcpListener,
    config: Arc<Config>,
    tls: Option<Arc<TlsServer>>,
    target_tls: Option<tokio_rustls::TlsConnector>,
    reload: Arc<Notify>,
    /// Problems found at start that did not stop it (shown with the settings).
    warnings: Vec<String>,
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
        let listener = bind(&config.listen, config.prefer_ipv6).await?;
        Ok(Self { listener, config: Arc::new(config), tls, target_tls, reload: Arc::new(Notify::new()), warnings })
    }

    /// A handle that makes the running server reload what can be reloaded (certificates);
    /// the binary notifies it on SIGHUP.
    pub fn reload_handle(&self) -> Arc<Notify> {
        self.reload.clone()
    }

    /// The settings summary upstream prints at start, with the address actually bound.
    pub fn settings(&self) -> Vec<String> {
        let config = &self.config;
        let listen = match (&config.listen.host, self.listener.local_addr()) {
            (None, Ok(bound)) => format!(":{}", bound.port()),
            (Some(_), Ok(bound)) => bound.to_string(),
            (_, Err(_)) => config.listen.to_string(),
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
            Route::Fixed(target) => lines.push(format!("  - proxying from {listen} to {target}{using}")),
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
        for w in &self.warnings {
            lines.push(format!("  ! {w}"));
        }
        lines
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
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
        });
        let sessions_stop = ctx.shutdown.clone();
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
                    let (stream, peer) = match accepted {
                        Ok(ok) => ok,
                        Err(e) => {
                            tracing::error!("accept failed: {e}; pausing {ACCEPT_BACKOFF:?}");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let span = tracing::info_span!("conn", id, peer = %peer);
                    let guard = ActiveGuard::new(active_tx.clone());
                    let (ctx, done) = (ctx.clone(), first_session_done.clone());
                    tracker.spawn(
                        async move {
                            tracing::debug!("accepted");
                            if connection::serve(stream, id, ctx).await == Outcome::Session {
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
