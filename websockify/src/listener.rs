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

use crate::config::{Config, ListenAddr};
use crate::connection::{self, Outcome};
use crate::target;

/// Pending connections the kernel queues for us.
const BACKLOG: i32 = 1024;
/// Pause after an accept error (EMFILE and friends) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    config: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot resolve listen address {addr}: {source}")]
    Resolve { addr: String, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
}

impl Server {
    /// Binds the listening socket described by `config.listen`.
    pub async fn bind(config: Config) -> Result<Self, BindError> {
        let listener = bind(&config.listen, config.prefer_ipv6).await?;
        Ok(Self { listener, config: Arc::new(config) })
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
        let config = self.config;
        let tracker = TaskTracker::new();
        let sessions_stop = CancellationToken::new();
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
                    let (config, stop, done) = (config.clone(), sessions_stop.clone(), first_session_done.clone());
                    tracker.spawn(
                        async move {
                            tracing::debug!("accepted");
                            if connection::serve(stream, config, stop).await == Outcome::Session {
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
