//! The validated configuration of a server: what every stage is told. The command line
//! ([`crate::cli`]) and embedders build one; nothing past this point knows about flags.
//!
//! It describes the other stages with their own option types (a stage's options are
//! declared beside the code that reads them: `TlsOptions` in [`crate::tls`], `WebOptions`
//! in [`crate::web`], ...) and the two extension points an embedder fills in
//! ([`Authenticator`], [`TokenRoute`]), and imports nothing else of theirs: no
//! machinery runs here (`scripts/check-imports` holds it to a list of names).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::auth::Authenticator;
use crate::admission::forwarded::Networks;
use crate::admission::limit::SessionCaps;
use crate::admission::token::TokenRoute;
use crate::host::wrap::WrapConfig;
use crate::tls::TlsOptions;
use crate::web::WebOptions;
use crate::wire::http::HeadLimits;
use crate::wire::proxy_protocol::Version;
use crate::wire::ws::DecoderConfig;

use crate::outbound::split_host_port;
pub use crate::outbound::{AddrError, Target};

/// Everything a [`crate::Server`] needs.
#[derive(Clone)]
pub struct Config {
    pub listen: Listen,
    /// Where sessions go: one fixed target, or one chosen per session by a token.
    pub route: Route,
    /// Checked before every WebSocket session (and static file, with `web_auth`).
    pub auth: Option<Arc<dyn Authenticator>>,
    /// Apply `auth` to the web server too (`--web-auth`).
    pub web_auth: bool,
    /// Prefer IPv6 addresses when a host name resolves to both (`-6`).
    pub prefer_ipv6: bool,
    /// Print the per-frame traffic legend (`--traffic`).
    pub traffic: bool,
    /// Ping clients this often (`--heartbeat`).
    pub heartbeat: Option<Duration>,
    /// Exit after the first WebSocket session ends (`--run-once`).
    pub run_once: bool,
    /// Exit this long after start (`--timeout`).
    pub timeout: Option<Duration>,
    /// Exit after this long with no session (`--idle-timeout`).
    pub idle_timeout: Option<Duration>,
    /// TLS for clients, found by sniffing; `None` serves plain connections only.
    pub tls: Option<TlsOptions>,
    /// Refuse plain (non-TLS) connections (`--ssl-only`).
    pub ssl_only: bool,
    /// Connect to the target over TLS (`--ssl-target`), trusting the system roots and
    /// this extra CA file.
    pub target_tls: Option<TargetTls>,
    /// Serve static files on the same port (`--web`).
    pub web: Option<WebOptions>,
    /// Run this program and forward to it (`-- PROGRAM ARGS`); the route then points at
    /// the loopback port its listening socket is moved to.
    pub wrap: Option<WrapConfig>,
    /// Record each session to `<this path>.<connection id>` (`--record`).
    pub record: Option<PathBuf>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address (`--metrics-listen`).
    pub metrics_listen: Option<ListenAddr>,
    /// Connections from these networks must start with a PROXY protocol header, whose
    /// client address replaces theirs (`--accept-proxy-protocol`, `--proxy-protocol-from`).
    pub accept_proxy: Option<Networks>,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` headers name the client (`--trusted-proxy`);
    /// empty: the headers are ignored.
    pub trusted_proxies: Networks,
    /// Send a PROXY protocol header naming the client to the target (`--target-proxy-protocol`).
    pub target_proxy: Option<Version>,
    /// The admin API (`--admin-listen`, `--admin-token-file`).
    pub admin: Option<AdminOptions>,
    /// `--revoke-live-sessions`: look each live session's token up again this often (and
    /// at once when the token source reports a change: a token file, Redis keyspace
    /// notifications); a token that no longer leads to the session's target ends it with
    /// 1008.
    pub revoke_interval: Option<Duration>,
    /// `--end-session-at-token-expiry`: a session ends (1008) when its token's `exp` passes.
    pub end_at_token_expiry: bool,
    /// Threads serving connections. 1 (the default for embedders): all on the runtime
    /// that calls [`Server::run`](crate::Server::run). More: that runtime and N-1 threads
    /// with a single-threaded runtime and a listening socket each (`--threads`).
    pub threads: usize,
    pub limits: Limits,
}

/// Where the admin API listens, and the bearer token it requires.
#[derive(Clone)]
pub struct AdminOptions {
    pub listen: AdminListen,
    pub token: String,
}

impl fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminOptions").field("listen", &self.listen).field("token", &"<redacted>").finish()
    }
}

/// `--admin-listen`: a loopback TCP address, or a UNIX socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminListen {
    Tcp(ListenAddr),
    Unix(PathBuf),
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("route", &self.route)
            .field("auth", &self.auth.as_ref().map(|a| a.describe()))
            .field("tls", &self.tls)
            .field("web", &self.web)
            .field("wrap", &self.wrap)
            .finish_non_exhaustive()
    }
}

/// How a session's target is chosen.
#[derive(Clone, Debug)]
pub enum Route {
    Fixed(Target),
    Token(TokenRoute),
}

impl From<Target> for Route {
    fn from(target: Target) -> Self {
        Self::Fixed(target)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(t) => t.fmt(f),
            Self::Token(t) => write!(f, "targets chosen by {}", t.resolver.describe()),
        }
    }
}

/// `--ssl-target` settings.
#[derive(Clone, Debug, Default)]
pub struct TargetTls {
    pub cafile: Option<PathBuf>,
}

impl Config {
    /// A configuration with defaults for everything but where to listen and where to go.
    pub fn new(listen: impl Into<Listen>, route: impl Into<Route>) -> Self {
        Self {
            listen: listen.into(),
            route: route.into(),
            auth: None,
            web_auth: false,
            prefer_ipv6: false,
            traffic: false,
            heartbeat: None,
            run_once: false,
            timeout: None,
            idle_timeout: None,
            tls: None,
            ssl_only: false,
            target_tls: None,
            web: None,
            wrap: None,
            record: None,
            metrics_listen: None,
            accept_proxy: None,
            trusted_proxies: Networks::default(),
            target_proxy: None,
            admin: None,
            revoke_interval: None,
            end_at_token_expiry: false,
            threads: 1,
            limits: Limits::default(),
        }
    }
}

/// Bounds on what peers may make the server hold or wait for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub head: HeadLimits,
    pub decoder: DecoderConfig,
    /// Time allowed to connect to the target (including its TLS handshake).
    pub connect_timeout: Duration,
    /// Time allowed for a client's TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for the client to answer our close frame.
    pub close_timeout: Duration,
    /// On shutdown, time allowed for sessions to finish their close handshakes.
    pub shutdown_grace: Duration,
    /// Concurrent sessions allowed in total, per client IP and per token.
    pub sessions: SessionCaps,
    /// Time allowed from accept to the client's first bytes.
    pub first_byte_timeout: Duration,
    /// Close sessions without data either way for this long (1001).
    pub session_idle_timeout: Option<Duration>,
    /// Ping and pong frames a client may send per second (0: unlimited); more closes with 1008.
    pub max_control_rate: u32,
    /// Largest text message (binary mode) held until it has proved to be UTF-8.
    pub max_text_hold: usize,
    /// Bytes of unfinished text messages all sessions together may hold; the session that
    /// would go past it is closed with 1009 (0: no budget beyond `max_text_hold` each).
    pub max_held_text_total: usize,
    /// Connections accepted that are not yet sessions (TLS, request head, lookups) at
    /// once; more are closed at accept (0: unlimited).
    pub max_pending_handshakes: usize,
    /// Once one side of a session has closed, time the other direction has to deliver
    /// what is left (to a target or client that does not read); then the session ends.
    pub drain_timeout: Duration,
    /// End every session this long after it started, with 1001 (`--max-session-duration`).
    pub max_session_duration: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head: HeadLimits::default(),
            decoder: DecoderConfig::default(),
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            sessions: SessionCaps::default(),
            first_byte_timeout: Duration::from_secs(5),
            session_idle_timeout: None,
            max_control_rate: 50,
            max_text_hold: 1 << 20,
            max_held_text_total: 64 << 20,
            max_pending_handshakes: 4096,
            drain_timeout: Duration::from_secs(30),
            max_session_duration: None,
        }
    }
}

/// Where connections come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address we bind.
    Tcp(ListenAddr),
    /// A UNIX stream socket we create with these permission bits (`--unix-listen`).
    Unix { path: PathBuf, mode: u32 },
    /// A socket on file descriptor 0 (`--inetd`): a listening socket, or one accepted
    /// connection (inetd `nowait`, `systemd-socket-activate --inetd`), served then done.
    Stdin,
    /// The first socket passed by systemd socket activation (`LISTEN_FDS`).
    Systemd,
}

impl From<ListenAddr> for Listen {
    fn from(addr: ListenAddr) -> Self {
        Self::Tcp(addr)
    }
}

/// Where to listen: `[host:]port`. No host means every interface, IPv6 and IPv4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: Option<String>,
    pub port: u16,
}

impl ListenAddr {
    /// Parses upstream's forms: `6080`, `0.0.0.0:6080`, `[::1]:6080`, `::1:6080` (the last
    /// colon splits), `localhost:6080`.
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        if let Ok(port) = s.parse::<u16>() {
            return Ok(Self { host: None, port });
        }
        let (host, port) = split_host_port(s)?;
        Ok(Self { host: (!host.is_empty()).then(|| host.to_owned()), port })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
            None => write!(f, ":{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = |s| ListenAddr::parse(s).unwrap();
        assert_eq!(l("6080"), ListenAddr { host: None, port: 6080 });
        assert_eq!(l(":6080"), ListenAddr { host: None, port: 6080 });
        assert_eq!(l("0.0.0.0:6080").host.as_deref(), Some("0.0.0.0"));
        assert_eq!(l("[::1]:6080").host.as_deref(), Some("::1"));
        assert_eq!(l("::1:6080"), ListenAddr { host: Some("::1".into()), port: 6080 });
        assert_eq!(l("localhost:0").port, 0);
        assert_eq!(l("[::1]:6080").to_string(), "[::1]:6080");
        assert!(ListenAddr::parse("localhost").is_err());
        assert!(ListenAddr::parse("localhost:99999").is_err());
        assert!(ListenAddr::parse("host:port").is_err());
    }
}
