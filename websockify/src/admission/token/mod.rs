//! Choosing the target from a token: where the token comes from in the request, and the
//! plugins that map it to a target (upstream's names and source formats).
//!
//! The client never names a host: a token either maps to a target the operator listed or
//! the request is refused with an HTTP status before any 101, so the proxy is never open.

mod api;
pub mod changes;
mod file;
mod inotify;
mod jwe;
mod jwt;
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::outbound::Target;
use crate::wire::http::Request;

pub use api::{ApiFormat, TokenApi};
pub use file::{TokenFile, TokenFileName, UnixDomainSocketDirectory};
pub use jwt::JwtTokenApi;
pub use redis::TokenRedis;

/// The token sources' parsers, for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod parsers {
    pub use super::file::{parse_line as token_file_line, resolve_inside};
    pub use super::redis::parse_value as redis_value;
}

/// A boxed future, so that resolvers can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Maps tokens to targets. Implement it to plug your own resolver into an embedded server.
pub trait TokenResolver: Send + Sync + 'static {
    /// The target for `token`; `Ok(None)` if the token is unknown.
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>>;

    /// [`lookup`](Self::lookup), and what the token's sessions are counted by for
    /// `--max-sessions-per-token`. The default counts the token string; a resolver whose
    /// tokens have many spellings of one grant (a JWT re-encrypted in a new JWE, an ECDSA
    /// signature's twin) counts the content that was verified instead.
    fn lookup_counted<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Found>, TokenError>> {
        Box::pin(async move {
            Ok(self.lookup(token).await?.map(|target| Found { target, counted_as: None, expires: None }))
        })
    }

    /// How often `--revoke-live-sessions` should look tokens up again at most, when this
    /// source can tell changes cheaply (a token file that cannot be watched: a `stat`);
    /// `None` takes the configured `--revoke-check-interval`. Asked before each wait, so
    /// the answer may change (a watch lost).
    fn recheck_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// For `--revoke-live-sessions`: starts reporting changes of this source's tokens, so
    /// that a revoked token's sessions end at once (a token file watched with inotify,
    /// Redis keyspace notifications). `None`, the default, when the source cannot tell:
    /// its tokens are only looked up again periodically. Called once, inside the runtime,
    /// by the revocation task, which owns what the source starts: it ends when the
    /// returned [`Changes`](changes::Changes) is dropped. `fallback` is the periodic
    /// interval that still applies, for the source's log lines.
    fn changes(&self, fallback: std::time::Duration) -> Option<changes::Changes> {
        let _ = fallback;
        None
    }

    /// Re-reads the source (SIGHUP). Resolvers with nothing to reload keep the default.
    fn reload(&self) -> Result<(), TokenError> {
        Ok(())
    }

    /// A short description for the settings summary.
    fn describe(&self) -> String;
}

/// What a lookup found: the target, and (if not the token itself) what the session counts
/// as for the per-token cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub target: Target,
    pub counted_as: Option<String>,
    /// When the token stops being valid (a JWT's `exp`), for `--end-session-at-token-expiry`.
    pub expires: Option<std::time::SystemTime>,
}

/// Why a lookup could not be answered (an unknown token is not an error: `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token source is unreachable or failed (Redis down, API error).
    #[error("token source unavailable: {0}")]
    Unavailable(String),
    /// The token source did not answer in time.
    #[error("token source timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The token is well-formed but refused (expired or not yet valid JWT, bad signature).
    #[error("token refused: {0}")]
    Refused(String),
    /// The source answered something that is not a target.
    #[error("invalid target from token source: {0}")]
    BadTarget(String),
    /// The plugin's configuration is unusable (at start).
    #[error("{0}")]
    Config(String),
}

impl TokenError {
    /// The HTTP status a client gets for this error (the details go to the log only).
    pub fn status(&self) -> u16 {
        match self {
            Self::Unavailable(_) | Self::BadTarget(_) | Self::Config(_) => 502,
            Self::Timeout(_) => 504,
            Self::Refused(_) => 403,
        }
    }
}

/// Where the token is taken from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenSource {
    /// `--host-token`: the `Host` header (without its port) is the token.
    pub host: bool,
    /// `--token-from-path`: the last path segment (`/websockify/TOKEN` or `/TOKEN`) is the
    /// token when the query has none.
    pub path: bool,
    /// `--token-from-cookie`: a `token` cookie is the token when the query has none. Off by
    /// default (upstream reads no cookie): a browser sends cookies on cross-site requests
    /// too, so a session whose token came from a cookie must pass a same-origin check.
    pub cookie: bool,
}

/// Where in the request a token was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Host,
    Query,
    Cookie,
    Path,
}

/// Token routing: a resolver and where to find the token.
#[derive(Clone)]
pub struct TokenRoute {
    pub resolver: Arc<dyn TokenResolver>,
    pub source: TokenSource,
}

impl fmt::Debug for TokenRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRoute").field("resolver", &self.resolver.describe()).field("source", &self.source).finish()
    }
}

/// A short stable name for a token in logs, where the token itself may be a secret (a
/// JWT, a bearer key): the first 8 hex digits of its SHA-256.
pub fn id(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The request target as logs show it: the value of each `token` query parameter, and
/// with path tokens the last path segment, replaced by `[id]` (see [`id`]), so a log
/// line can be matched to a token without holding it.
pub fn redact(target: &str, source: TokenSource) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out = String::with_capacity(target.len());
    match path.rsplit_once('/') {
        Some((dir, last)) if source.path && !last.is_empty() && last != "websockify" => {
            let token = decode(last);
            out.push_str(&format!("{dir}/[{}]", id(token.trim_end_matches(['\n', '\r']))));
        }
        _ => out.push_str(path),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, v)) if decode(k) == "token" => {
                    out.push_str(&format!("{k}=[{}]", id(decode(v).trim_end_matches(['\n', '\r']))));
                }
                // noVNC's page URL carries the WebSocket path in a parameter:
                // `vnc.html?path=websockify%3Ftoken%3DSECRET`. Shown decoded, redacted (the
                // value is shorter than the whole, so this ends).
                Some((k, v)) if decode(v).contains("token=") => {
                    out.push_str(&format!("{k}={}", redact(&decode(v), TokenSource::default())));
                }
                _ => out.push_str(pair),
            }
        }
    }
    // Decoded parts (`path=` above) may hold control characters: a line must stay one line.
    match crate::wire::http::printable(&out) {
        std::borrow::Cow::Borrowed(_) => out,
        escaped => escaped.into_owned(),
    }
}

/// A target for logs: a UNIX socket named after its token (`UnixDomainSocketDirectory`)
/// shows the token's id in place of its file name.
pub fn redact_target(target: &Target, token: Option<&str>) -> String {
    if let (Target::Unix(path), Some(token)) = (target, token)
        && path.file_name().is_some_and(|name| name == std::ffi::OsStr::new(token))
    {
        let dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default();
        return format!("unix socket {dir}/[{}]", id(token));
    }
    target.to_string()
}

/// Finds the token in a request: the `Host` header with `--host-token`; otherwise the
/// `token` query parameter (URL-decoded), then (if enabled) a `token` cookie, then (if
/// enabled) the last path segment.
pub fn extract(req: &Request, source: TokenSource) -> Option<String> {
    extract_from(req, source).map(|(token, _)| token)
}

/// [`extract`], and where the token was found.
pub fn extract_from(req: &Request, source: TokenSource) -> Option<(String, Place)> {
    if source.host {
        let host = req.header("Host")?.trim();
        return Some((strip_port(host).to_owned(), Place::Host)).filter(|(h, _)| !h.is_empty());
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let from_query = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == "token").then(|| decode(v))
    });
    let (token, place) = from_query
        .map(|t| (t, Place::Query))
        .or_else(|| {
            source.cookie.then_some(())?;
            req.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("Cookie"))
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| c.trim().strip_prefix("token=").map(|t| (decode(t.trim_matches('"')), Place::Cookie)))
        })
        .or_else(|| {
            source
                .path
                .then(|| path.rsplit('/').next().map(decode))
                .flatten()
                .filter(|t| !t.is_empty() && t != "websockify")
                .map(|t| (t, Place::Path))
        })?;
    // Upstream strips a trailing newline some clients leave in.
    let token = token.trim_end_matches(['\n', '\r']).to_owned();
    (!token.is_empty()).then_some((token, place))
}

/// Whether a request comes from a page of the origin it is addressed to: its `Origin`
/// names the same host and port as its `Host` header (default ports aside), or it has no
/// `Origin` (not a browser, which always sends one on a WebSocket request).
pub fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.header("Origin").map(str::trim) else { return true };
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    let Some(host) = req.header("Host").map(str::trim) else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return false,
    };
    let origin_host = rest.trim_end_matches('/');
    let strip = |h: &str| h.strip_suffix(default_port).unwrap_or(h).to_ascii_lowercase();
    strip(origin_host) == strip(host) || strip(origin_host) == strip(host).trim_end_matches(':')
}

/// `host:port` -> `host`, `[v6]:port` -> `v6`, a bare IPv6 address stays whole.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn decode(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy().into_owned()
}

/// Parses a target as token sources give it: `host:port`, `[v6]:port`, `v6:port` (last
/// colon splits), or `unix_socket:/path`.
pub fn parse_target(s: &str) -> Result<Target, TokenError> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix_socket:") {
        return Ok(Target::Unix(path.trim().into()));
    }
    Target::parse_tcp(s).map_err(|e| TokenError::BadTarget(e.to_string()))
}

/// Builds a token plugin from upstream's name (with or without the
/// `websockify.token_plugins.` prefix) and its `--token-source`.
pub fn plugin(name: &str, source: &str) -> Result<Arc<dyn TokenResolver>, TokenError> {
    let short = name.strip_prefix("websockify.token_plugins.").unwrap_or(name);
    Ok(match short {
        "TokenFile" => Arc::new(TokenFile::new(source, true)?),
        "ReadOnlyTokenFile" => Arc::new(TokenFile::new(source, false)?),
        "TokenFileName" => Arc::new(TokenFileName::new(source)?),
        "BaseTokenAPI" => Arc::new(TokenApi::new(source, ApiFormat::Plain)?),
        "JSONTokenApi" => Arc::new(TokenApi::new(source, ApiFormat::Json)?),
        "JWTTokenApi" => Arc::new(JwtTokenApi::new(source)?),
        "TokenRedis" => Arc::new(TokenRedis::new(source)?),
        "UnixDomainSocketDirectory" => Arc::new(UnixDomainSocketDirectory::new(source)?),
        _ => {
            return Err(TokenError::Config(format!(
                "unknown token plugin {name:?}; known: TokenFile, ReadOnlyTokenFile, TokenFileName, BaseTokenAPI, \
                 JSONTokenApi, JWTTokenApi, TokenRedis, UnixDomainSocketDirectory"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::{HeadLimits, parse_head};

    fn req(target: &str, headers: &str) -> Request {
        let raw = format!("GET {target} HTTP/1.1\r\n{headers}\r\n");
        parse_head(raw.as_bytes(), HeadLimits::default()).unwrap().unwrap().0
    }

    #[test]
    fn token_from_query_cookie_path_and_host() {
        let none = TokenSource::default();
        assert_eq!(extract(&req("/websockify?token=abc", ""), none).as_deref(), Some("abc"));
        assert_eq!(extract(&req("/?a=1&token=a%20b%2Fc&b=2", ""), none).as_deref(), Some("a b/c"));
        assert_eq!(extract(&req("/?token=abc%0A", ""), none).as_deref(), Some("abc"));
        assert_eq!(extract(&req("/?token=", ""), none), None);
        assert_eq!(extract(&req("/", "Cookie: a=1; token=cookie-tok\r\n"), none), None, "cookie only when enabled");
        let cookie = TokenSource { cookie: true, ..none };
        assert_eq!(
            extract_from(&req("/", "Cookie: a=1; token=cookie-tok\r\n"), cookie),
            Some(("cookie-tok".to_owned(), Place::Cookie))
        );
        assert_eq!(extract(&req("/?token=q", "Cookie: token=c\r\n"), cookie).as_deref(), Some("q"), "query first");
        let origin = |o: &str, h: &str| same_origin(&req("/", &format!("Origin: {o}\r\nHost: {h}\r\n")));
        assert!(origin("http://a.example", "a.example") && origin("https://a.example", "A.example:443"));
        assert!(origin("http://a.example:6080", "a.example:6080") && origin("http://[::1]:80", "[::1]"));
        assert!(!origin("http://evil.example", "a.example") && !origin("null", "a.example"));
        assert!(!origin("http://a.example:6081", "a.example:6080") && !origin("https://a.example", "a.example:80"));
        assert!(same_origin(&req("/", "Host: a.example\r\n")), "no Origin: not a browser");
        assert_eq!(extract(&req("/websockify/path-tok", ""), none), None, "path only when enabled");
        let path = TokenSource { path: true, ..none };
        assert_eq!(extract(&req("/websockify/path-tok", ""), path).as_deref(), Some("path-tok"));
        assert_eq!(extract(&req("/path-tok?x=1", ""), path).as_deref(), Some("path-tok"));
        assert_eq!(extract(&req("/websockify", ""), path), None);
        let host = TokenSource { host: true, ..none };
        assert_eq!(
            extract(&req("/?token=q", "Host: vm1.example.com:6080\r\n"), host).as_deref(),
            Some("vm1.example.com")
        );
        assert_eq!(extract(&req("/", "Host: [::1]:6080\r\n"), host).as_deref(), Some("::1"));
        assert_eq!(extract(&req("/", "Host: vm2\r\n"), host).as_deref(), Some("vm2"));
    }

    #[test]
    fn logs_show_token_ids_not_tokens() {
        let none = TokenSource::default();
        let abc = id("abc");
        assert_eq!(redact("/websockify?token=abc", none), format!("/websockify?token=[{abc}]"));
        assert_eq!(redact("/?a=1&token=abc%0A&b=2", none), format!("/?a=1&token=[{abc}]&b=2"));
        assert_eq!(redact("/?to%6Ben=abc", none), format!("/?to%6Ben=[{abc}]"));
        assert_eq!(redact("/websockify/abc", none), "/websockify/abc", "path only when enabled");
        let path = TokenSource { path: true, ..none };
        assert_eq!(redact("/websockify/abc?x=1", path), format!("/websockify/[{abc}]?x=1"));
        assert_eq!(redact("/websockify", path), "/websockify");
        assert_eq!(redact("/plain/page.html", none), "/plain/page.html");
        // noVNC's page URL, encoded and not.
        assert_eq!(
            redact("/vnc.html?path=websockify%3Ftoken%3Dabc&x=1", none),
            format!("/vnc.html?path=websockify?token=[{abc}]&x=1")
        );
        assert_eq!(
            redact("/vnc.html?path=websockify?token=abc", none),
            format!("/vnc.html?path=websockify?token=[{abc}]")
        );
        let unix = Target::Unix("/run/consoles/abc".into());
        assert_eq!(redact_target(&unix, Some("abc")), format!("unix socket /run/consoles/[{abc}]"));
        assert_eq!(redact_target(&unix, Some("other")), "unix socket /run/consoles/abc");
        assert_eq!(redact_target(&Target::Tcp { host: "h".into(), port: 1 }, Some("abc")), "h:1");
    }

    #[test]
    fn target_forms() {
        assert_eq!(parse_target("h:5900").unwrap(), Target::Tcp { host: "h".into(), port: 5900 });
        assert_eq!(parse_target("::1:5900").unwrap(), Target::Tcp { host: "::1".into(), port: 5900 });
        assert_eq!(parse_target(" [::1]:5900\n").unwrap(), Target::Tcp { host: "::1".into(), port: 5900 });
        assert_eq!(parse_target("unix_socket:/run/vnc.sock").unwrap(), Target::Unix("/run/vnc.sock".into()));
        assert!(parse_target("nonsense").is_err());
    }

    #[test]
    fn plugin_names() {
        let dir = std::env::temp_dir();
        assert!(plugin("websockify.token_plugins.TokenFileName", dir.to_str().unwrap()).is_ok());
        let err = plugin("NoSuchPlugin", "x").err().unwrap();
        assert!(err.to_string().contains("unknown token plugin"), "{err}");
    }
}
