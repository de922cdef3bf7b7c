//! `TokenRedis`: tokens kept in a Redis server, so that many proxy instances behind a load
//! balancer share one token store.
//!
//! # Source
//!
//! `host[:port[:db[:password[:namespace]]]]`, as upstream: fields are separated by colons, a
//! field wrapped in double quotes may contain colons (`h::::"app:vnc"`), and empty fields
//! take the defaults (port 6379, db 0, no password, no namespace). Examples:
//!
//! | source                          | meaning                                      |
//! |---------------------------------|----------------------------------------------|
//! | `redis.local`                   | port 6379, db 0                              |
//! | `redis.local:6380:2`            | port 6380, db 2                              |
//! | `redis.local:::s3cret`          | password `s3cret`                            |
//! | `redis.local::::app`            | keys `app:TOKEN`                             |
//! | `redis.local::::"app:vnc"`      | keys `app:vnc:TOKEN`                         |
//! | `"::1":6380` or `[::1]:6380`    | the IPv6 host `::1` (quoted as upstream, or in brackets) |
//!
//! An unquoted IPv6 address cannot work (its colons split fields); it is refused when that
//! leaves the host empty (`::1`). Two deliberate differences from upstream's splitting: `""`
//! is an empty field (upstream would use the two quote characters as the value), and the
//! `[v6]` host form is accepted.
//!
//! # Values
//!
//! The key is `namespace:TOKEN` (or `TOKEN` without a namespace); its string value is JSON
//! `{"host": "host:port"}` or plain `host:port` (also `[v6]:port`, `v6:port` and
//! `unix_socket:/path`, as [`super::parse_target`] reads them). A missing key is an unknown
//! token; any other value is [`TokenError::BadTarget`].
//!
//! # Connection
//!
//! One multiplexed connection ([`ConnectionManager`]) is shared by all lookups. It is made on
//! the first lookup, not at start, so the proxy starts while Redis is down; it reconnects by
//! itself after Redis restarts or the connection drops (a lookup that finds the connection
//! dead retries once on the new one). Each lookup is bounded by [`LOOKUP_TIMEOUT`]; while
//! Redis is down, lookups fail in well under that (refused connections fail at once; a
//! silent host costs at most [`CONNECT_TIMEOUT`] per attempt, two attempts). The password
//! never appears in errors, logs or [`TokenResolver::describe`].
//!
//! With `--revoke-live-sessions`, a second connection listens for the token keys'
//! keyspace notifications, so that a deleted or changed key ends its sessions at once
//! ([`keyspace`]).

mod keyspace;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError};

use super::changes::{self, Changes};
use super::{BoxFuture, TokenError, TokenResolver, parse_target};
use crate::outbound::Target;

/// The longest a lookup may take, connecting included; then it fails with
/// [`TokenError::Timeout`] (HTTP 504) and the connection is replaced on the next lookup.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest one attempt to connect to Redis (TCP, `AUTH`, `SELECT`) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts to connect after the first one, within one (re)connection.
const CONNECT_RETRIES: usize = 1;
/// Pause before the retry (randomised up to this).
const CONNECT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The most of a value read: a target is a few dozen bytes. A larger value (a 100 MB one
/// cost 399 MB of memory over six lookups) is refused after `STRLEN`, never read whole.
pub const MAX_VALUE: usize = 64 * 1024;
/// Where the password may come from instead of the source (which `ps` shows).
pub const PASSWORD_ENV: &str = "WEBSOCKIFY_REDIS_PASSWORD";

const DEFAULT_PORT: u16 = 6379;
const FORMAT: &str = "host[:port[:db[:password[:namespace]]]]";

/// The parsed `--token-source`.
#[derive(Clone, PartialEq, Eq)]
struct Source {
    host: String,
    port: u16,
    db: u32,
    password: Option<String>,
    namespace: Option<String>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Source {
    /// `redis://host:port/db`, never with the password.
    fn url(&self) -> String {
        if self.host.contains(':') {
            format!("redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            format!("redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

fn config_error(what: &str) -> TokenError {
    TokenError::Config(format!(
        "TokenRedis: invalid token source: {what}; expected {FORMAT} (wrap a field containing colons in double \
         quotes, e.g. host::::\"ns:sub\"; write an IPv6 host as [::1] or \"::1\")"
    ))
}

/// Splits at colons, a field wrapped in double quotes keeping its colons; the same fields as
/// upstream's `parse_source_args` regex (a quote that does not close right before a colon or
/// the end is an ordinary character), except that `""` is an empty field.
fn split_fields(src: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = src;
    loop {
        if let Some(inner) = rest.strip_prefix('"') {
            if let Some(end) = inner.find('"') {
                let after = &inner[end + 1..];
                if after.is_empty() || after.starts_with(':') {
                    fields.push(&inner[..end]);
                    match after.strip_prefix(':') {
                        Some(next) => {
                            rest = next;
                            continue;
                        }
                        None => return fields,
                    }
                }
            }
        }
        match rest.split_once(':') {
            Some((field, next)) => {
                fields.push(field);
                rest = next;
            }
            None => {
                fields.push(rest);
                return fields;
            }
        }
    }
}

/// Parses the source. Error messages never repeat field values: one of them may be the
/// password (`host:secret` meant as a password lands in the port field).
fn parse_source(src: &str) -> Result<Source, TokenError> {
    let fields: Vec<&str> = match src.strip_prefix('[') {
        Some(after) => {
            let (host, rest) = after.split_once(']').ok_or_else(|| config_error("the [ of the host is not closed"))?;
            let mut fields = vec![host];
            if let Some(rest) = rest.strip_prefix(':') {
                fields.extend(split_fields(rest));
            } else if !rest.is_empty() {
                return Err(config_error("the [host] must be followed by a colon"));
            }
            fields
        }
        None => split_fields(src),
    };
    if fields.len() > 5 {
        return Err(config_error(&format!("{} fields, at most 5", fields.len())));
    }
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    let host = field(0).unwrap_or_default().trim();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(config_error("no host"));
    }
    let port = match field(1) {
        None => DEFAULT_PORT,
        Some(p) => {
            p.trim().parse().ok().filter(|&p| p != 0).ok_or_else(|| config_error("the port is not a number 1-65535"))?
        }
    };
    let db = match field(2) {
        None => 0,
        Some(d) => d.trim().parse().map_err(|_| config_error("the db is not a number (0, 1, ...)"))?,
    };
    Ok(Source {
        host: host.to_owned(),
        port,
        db,
        password: field(3).map(str::to_owned),
        namespace: field(4).map(str::to_owned),
    })
}

/// Reads a key's value: JSON `{"host": "h:p"}` or plain `h:p` / `unix_socket:/path`.
/// Public for the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn parse_value(raw: &[u8]) -> Result<Target, TokenError> {
    let text = std::str::from_utf8(raw).map_err(|_| TokenError::BadTarget("Redis value is not UTF-8".into()))?.trim();
    if text.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| TokenError::BadTarget(format!("Redis value is not valid JSON ({e})")))?;
        let host = json.get("host").and_then(serde_json::Value::as_str).ok_or_else(|| {
            TokenError::BadTarget(r#"Redis JSON value has no string "host" (expected {"host": "host:port"})"#.into())
        })?;
        return parse_target(host);
    }
    parse_target(text)
}

/// The shared connection and its generation (so that a failed lookup replaces only the
/// connection it used, not a newer one).
#[derive(Default)]
struct Slot {
    generation: u64,
    manager: Option<ConnectionManager>,
}

/// The `TokenRedis` plugin; see the module documentation.
pub struct TokenRedis {
    source: Source,
    client: redis::Client,
    slot: Mutex<Slot>,
    /// Whether the last lookup found Redis unavailable (to log the change once, not per lookup).
    down: AtomicBool,
}

impl fmt::Debug for TokenRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRedis").field("source", &self.source).finish_non_exhaustive()
    }
}

impl TokenRedis {
    /// Parses the source (see the module documentation); does not connect. Without a
    /// password in the source, `WEBSOCKIFY_REDIS_PASSWORD` gives it, if set.
    pub fn new(source: &str) -> Result<Self, TokenError> {
        Self::with_password(source, None)
    }

    /// [`new`](Self::new) with the password given apart (`--redis-password-file`); it
    /// takes the place of one in the source.
    pub fn with_password(source: &str, password: Option<String>) -> Result<Self, TokenError> {
        let mut source = parse_source(source)?;
        if let Some(password) =
            password.or_else(|| source.password.is_none().then(|| std::env::var(PASSWORD_ENV).ok()).flatten())
        {
            source.password = Some(password).filter(|p| !p.is_empty());
        }
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(source.db));
        if let Some(password) = &source.password {
            redis = redis.set_password(password);
        }
        let client = ConnectionAddr::Tcp(source.host.clone(), source.port)
            .into_connection_info()
            .map(|info| info.set_redis_settings(redis))
            .and_then(redis::Client::open)
            .map_err(|e| config_error(&format!("{} ({})", source.url(), e.category())))?;
        Ok(Self { source, client, slot: Mutex::new(Slot::default()), down: AtomicBool::new(false) })
    }

    fn key(&self, token: &str) -> String {
        match &self.source.namespace {
            Some(ns) => format!("{ns}:{token}"),
            None => token.to_owned(),
        }
    }

    /// The shared connection, made on first use (it connects on its first command).
    fn manager(&self) -> Result<(u64, ConnectionManager), RedisError> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(manager) = &slot.manager {
            return Ok((slot.generation, manager.clone()));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Lookups are bounded by LOOKUP_TIMEOUT as a whole instead.
            .set_response_timeout(None)
            .set_number_of_retries(CONNECT_RETRIES)
            .set_min_delay(CONNECT_RETRY_DELAY)
            .set_max_delay(CONNECT_RETRY_DELAY);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        slot.generation += 1;
        slot.manager = Some(manager.clone());
        Ok((slot.generation, manager))
    }

    /// Drops the shared connection if it is still the one of `generation`; the next lookup
    /// makes a new one. For failures the manager does not recover from by itself (a refused
    /// `AUTH` or `SELECT` is remembered for good; a hung server is never replaced).
    fn discard(&self, generation: u64) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.generation == generation {
            slot.manager = None;
        }
    }

    /// The key's length and its first [`MAX_VALUE`] bytes (`STRLEN` and `GETRANGE` in one
    /// round trip), on the shared connection. A missing key has length 0.
    async fn get(mut conn: ConnectionManager, key: &str) -> Result<(usize, Vec<u8>), RedisError> {
        let mut get = redis::pipe();
        get.cmd("STRLEN").arg(key).cmd("GETRANGE").arg(key).arg(0).arg(MAX_VALUE - 1);
        match get.query_async(&mut conn).await {
            // A dead connection (Redis restarted) fails once while the manager reconnects;
            // the retry waits for the new connection.
            Err(e) if e.is_io_error() || e.is_unrecoverable_error() => get.query_async(&mut conn).await,
            other => other,
        }
    }

    fn unavailable(&self, detail: &str) -> TokenError {
        let url = self.source.url();
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("TokenRedis: cannot use Redis at {url}: {detail}; trying again on each lookup");
        }
        TokenError::Unavailable(format!("Redis at {url}: {detail}"))
    }
}

impl TokenResolver for TokenRedis {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move {
            let key = self.key(token);
            let (generation, conn) = self.manager().map_err(|e| self.unavailable(&e.to_string()))?;
            let value = match tokio::time::timeout(LOOKUP_TIMEOUT, Self::get(conn, &key)).await {
                Ok(Ok(value)) => {
                    if self.down.swap(false, Ordering::Relaxed) {
                        tracing::info!("TokenRedis: Redis at {} answers again", self.source.url());
                    }
                    value
                }
                Ok(Err(e)) if e.code() == Some("WRONGTYPE") || e.to_string().contains("WRONGTYPE") => {
                    return Err(TokenError::BadTarget("the token's Redis key does not hold a string".into()));
                }
                Ok(Err(e)) => {
                    // The manager reconnects by itself after I/O errors; anything else (a
                    // refused AUTH or SELECT) would stick, so start over on the next lookup.
                    if !e.is_io_error() {
                        self.discard(generation);
                    }
                    // RedisError's text holds neither the password nor the command.
                    return Err(self.unavailable(&e.to_string()));
                }
                Err(_) => {
                    // Possibly a hung server or a dead network path: use a new connection
                    // next time rather than wait on this one again.
                    self.discard(generation);
                    self.unavailable(&format!("no answer within {LOOKUP_TIMEOUT:?}"));
                    return Err(TokenError::Timeout(LOOKUP_TIMEOUT));
                }
            };
            match value {
                (0, _) => Ok(None),
                (len, _) if len > MAX_VALUE => {
                    tracing::warn!(
                        "TokenRedis: the value of token [{}] is {len} bytes, more than the {MAX_VALUE} a target \
                         takes: refused unread",
                        super::id(token)
                    );
                    Err(TokenError::BadTarget(format!("Redis value of {len} bytes (at most {MAX_VALUE})")))
                }
                (_, bytes) => parse_value(&bytes).map(Some),
            }
        })
    }

    /// Listens for the token keys' keyspace notifications (see the `keyspace` module).
    fn changes(&self, fallback: Duration) -> Option<Changes> {
        tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = changes::channel();
        let keyspace = keyspace::Keyspace {
            client: self.client.clone(),
            url: self.source.url(),
            db: self.source.db,
            key_prefix: self.key(""),
            fallback,
        };
        tokio::spawn(keyspace.run(tx));
        Some(rx)
    }

    fn describe(&self) -> String {
        let mut notes = Vec::new();
        if let Some(ns) = &self.source.namespace {
            notes.push(format!("namespace {ns:?}"));
        }
        if self.source.password.is_some() {
            notes.push("with password".to_owned());
        }
        let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
        format!("TokenRedis {}{notes}", self.source.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(host: &str, port: u16, db: u32, password: Option<&str>, namespace: Option<&str>) -> Source {
        Source { host: host.into(), port, db, password: password.map(Into::into), namespace: namespace.map(Into::into) }
    }

    #[test]
    fn source_strings() {
        let table: &[(&str, Source)] = &[
            ("redis.local", src("redis.local", 6379, 0, None, None)),
            ("h:6380", src("h", 6380, 0, None, None)),
            ("h:", src("h", 6379, 0, None, None)),
            ("h:6380:2", src("h", 6380, 2, None, None)),
            ("h::3", src("h", 6379, 3, None, None)),
            ("h:::pw", src("h", 6379, 0, Some("pw"), None)),
            ("h::::ns", src("h", 6379, 0, None, Some("ns"))),
            ("h::::", src("h", 6379, 0, None, None)),
            ("h:1:2:pw:ns", src("h", 1, 2, Some("pw"), Some("ns"))),
            ("h::::\"a:b\"", src("h", 6379, 0, None, Some("a:b"))),
            ("h:::\"p:w:d\":ns", src("h", 6379, 0, Some("p:w:d"), Some("ns"))),
            ("h:\"6380\":\"1\"", src("h", 6380, 1, None, None)),
            ("h:::\"\":ns", src("h", 6379, 0, None, Some("ns"))),
            // A quote that does not close a whole field is an ordinary character (upstream).
            ("h:::p\"w:ns", src("h", 6379, 0, Some("p\"w"), Some("ns"))),
            ("h:::\"pw:ns", src("h", 6379, 0, Some("\"pw"), Some("ns"))),
            ("h:::\"p\"w:ns", src("h", 6379, 0, Some("\"p\"w"), Some("ns"))),
            ("h:::a\"b:c\"", src("h", 6379, 0, Some("a\"b"), Some("c\""))),
            // IPv6 hosts: quoted (upstream) or in brackets.
            ("\"::1\"", src("::1", 6379, 0, None, None)),
            ("\"::1\":6380:1", src("::1", 6380, 1, None, None)),
            ("[::1]", src("::1", 6379, 0, None, None)),
            ("[::1]:6380::pw", src("::1", 6380, 0, Some("pw"), None)),
            ("[fe80::1]:::\"x:y\":ns", src("fe80::1", 6379, 0, Some("x:y"), Some("ns"))),
            ("\"[::1]\":6380", src("::1", 6380, 0, None, None)),
            (" h : 7 : 1 ", src("h", 7, 1, None, None)),
        ];
        for (input, want) in table {
            match parse_source(input) {
                Ok(got) => assert_eq!(&got, want, "{input:?}"),
                Err(e) => panic!("{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn bad_source_strings() {
        let table: &[(&str, &str)] = &[
            ("", "no host"),
            ("\"\"", "no host"),
            (":6379", "no host"),
            ("::1", "no host"),
            ("h:1:2:secret:ns:extra", "6 fields"),
            ("h:secret", "port"),
            ("h:0", "port"),
            ("h:65536", "port"),
            ("h:-1", "port"),
            ("h:1:secret", "db"),
            ("h:1:-1", "db"),
            ("[::1", "not closed"),
            ("[::1]secret", "followed by a colon"),
        ];
        for (input, want) in table {
            let err = parse_source(input).expect_err(input);
            let msg = err.to_string();
            assert!(matches!(err, TokenError::Config(_)), "{input:?}: {err:?}");
            assert!(msg.contains(want), "{input:?}: {msg}");
            assert!(msg.contains(FORMAT), "{input:?}: {msg}");
            assert!(!msg.contains("secret"), "{input:?} leaks a field value: {msg}");
        }
    }

    #[test]
    fn keys_and_description_without_password() {
        let r = TokenRedis::new("10.0.0.5:6380:2:hunter2:\"app:vnc\"").unwrap();
        assert_eq!(r.key("tok"), "app:vnc:tok");
        let d = r.describe();
        assert_eq!(d, "TokenRedis redis://10.0.0.5:6380/2 (namespace \"app:vnc\", with password)");
        assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
        let r = TokenRedis::new("[::1]").unwrap();
        assert_eq!(r.key("tok"), "tok");
        assert_eq!(r.describe(), "TokenRedis redis://[::1]:6379/0");
        assert!(super::super::plugin("websockify.token_plugins.TokenRedis", "localhost::::ns").is_ok());
        assert!(matches!(super::super::plugin("TokenRedis", "h:x"), Err(TokenError::Config(_))));
    }

    #[test]
    fn values() {
        let tcp = |h: &str, p| Target::Tcp { host: h.into(), port: p };
        let ok: &[(&str, Target)] = &[
            ("127.0.0.1:5900", tcp("127.0.0.1", 5900)),
            ("  vnc.example:5901\n", tcp("vnc.example", 5901)),
            ("::1:5900", tcp("::1", 5900)),
            ("[::1]:5900", tcp("::1", 5900)),
            (r#"{"host": "10.1.2.3:5902"}"#, tcp("10.1.2.3", 5902)),
            (r#" {"host":"[::1]:5903","extra":1} "#, tcp("::1", 5903)),
            ("unix_socket:/run/vnc.sock", Target::Unix("/run/vnc.sock".into())),
            (r#"{"host": "unix_socket:/run/vnc.sock"}"#, Target::Unix("/run/vnc.sock".into())),
        ];
        for (value, want) in ok {
            assert_eq!(&parse_value(value.as_bytes()).unwrap(), want, "{value:?}");
        }
        let bad: &[&[u8]] = &[
            b"",
            b"nonsense",
            b"host:port",
            b"host:0",
            b"{not json",
            br#"{"port": 5900}"#,
            br#"{"host": 5900}"#,
            br#"{"host": "nohostport"}"#,
            b"\xff\xfe:1",
        ];
        for value in bad {
            let err = parse_value(value).expect_err(&String::from_utf8_lossy(value));
            assert!(matches!(err, TokenError::BadTarget(_)), "{value:?}: {err:?}");
        }
    }

    /// Nothing listens: the lookup fails quickly with Unavailable, without the password.
    #[tokio::test]
    async fn unreachable_redis_fails_fast() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let r = TokenRedis::new(&format!("127.0.0.1:{port}:0:hunter2:ns")).unwrap();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let err = r.lookup("tok").await.expect_err("no Redis");
            assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
            assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("redis://127.0.0.1:{port}/0")), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }
}
