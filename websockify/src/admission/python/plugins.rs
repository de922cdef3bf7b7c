//! The adapters from a plugin host to the proxy's traits: [`PythonToken`] is a
//! [`TokenResolver`], [`PythonAuth`] an [`Authenticator`], each mapping upstream's return
//! values and exceptions to our answers (502 for an exception, 504 past the deadline,
//! an `AuthenticationError`'s own status, headers and message).
//!
//! They live in this child module, apart from the entry points in `mod.rs`, because
//! `token::plugin` and `auth::plugin` call those entry points for their fallback: the
//! traits are named here only, so the import rule sees no circle between siblings.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::HostOptions;
use super::host::{CallError, Host, Kind, Spec};
use crate::admission::auth::{AuthError, AuthFuture, AuthRequest, Authenticator};
use crate::admission::token::{self, BoxFuture, TokenError, TokenResolver};
use crate::outbound::Target;
use crate::wire::http::printable;

/// A Python token plugin: `cls(source).lookup(token)`.
pub struct PythonToken {
    host: Host,
    class: String,
}

impl PythonToken {
    /// Loads the class once to check that its constructor works (the Python exception is
    /// the error otherwise).
    pub fn start(class: &str, source: &str, options: HostOptions) -> Result<Self, String> {
        let spec = Spec { kind: Kind::Token, class: class.to_owned(), source: Some(source.to_owned()) };
        let host = Host::start(spec, options.python, options.timeout)?;
        Ok(Self { host, class: class.to_owned() })
    }

    fn target(&self, answer: &Value) -> Result<Option<Target>, TokenError> {
        let pair = match answer.get("target") {
            Some(Value::Null) => return Ok(None),
            Some(Value::Array(pair)) => pair,
            _ => return Err(TokenError::BadTarget(format!("plugin {} answered {answer}", self.class))),
        };
        let (Some(host), Some(port)) = (pair.first().and_then(Value::as_str), pair.get(1).and_then(Value::as_str))
        else {
            return Err(TokenError::BadTarget(format!("plugin {} returned {answer}", self.class)));
        };
        if host == "unix_socket" {
            return Ok(Some(Target::Unix(port.into())));
        }
        let port = port
            .trim()
            .parse::<u16>()
            .map_err(|_| TokenError::BadTarget(format!("plugin {} returned port {:?}", self.class, printable(port))))?;
        Ok(Some(Target::Tcp { host: host.trim().to_owned(), port }))
    }
}

impl TokenResolver for PythonToken {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move {
            let class = &self.class;
            match self.host.call(json!({ "token": token })).await {
                Ok(answer) => match answer.get("error").and_then(Value::as_str) {
                    Some(e) => Err(TokenError::Unavailable(format!("plugin {class} raised {}", scrub(e, token)))),
                    None => self.target(&answer),
                },
                Err(CallError::Timeout) => {
                    let timeout = self.host.timeout();
                    tracing::warn!(
                        "plugin {class}: lookup of token [{}] timed out after {timeout:?}",
                        token::id(token)
                    );
                    Err(TokenError::Timeout(timeout))
                }
                Err(CallError::Host(why)) => Err(TokenError::Unavailable(format!("plugin {class}: {why}"))),
            }
        })
    }

    fn describe(&self) -> String {
        // Not the source: it may hold a password.
        format!("Python plugin {}", self.class)
    }
}

/// A Python auth plugin: `cls(source).authenticate(headers, target_host, target_port)`.
pub struct PythonAuth {
    host: Host,
    class: String,
    target: Option<Target>,
}

impl PythonAuth {
    /// Loads the class once to check that its constructor works.
    pub fn start(class: &str, source: Option<&str>, options: HostOptions) -> Result<Self, String> {
        let spec = Spec { kind: Kind::Auth, class: class.to_owned(), source: source.map(str::to_owned) };
        let host = Host::start(spec, options.python, options.timeout)?;
        Ok(Self { host, class: class.to_owned(), target: options.target })
    }

    fn request(&self, req: &AuthRequest<'_>) -> Value {
        // As upstream: the client may not set SSL_ headers; the verified certificate's CN
        // arrives as SSL_CLIENT_S_DN_CN (Apache's StdEnvVars name).
        let mut headers: Vec<[String; 2]> = req
            .request
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with("SSL_"))
            .map(|(name, value)| [name.clone(), value.iter().map(|&b| char::from(b)).collect()])
            .collect();
        if let Some(cn) = req.client_cn {
            headers.push(["SSL_CLIENT_S_DN_CN".to_owned(), cn.to_owned()]);
        }
        let (host, port) = match &self.target {
            Some(Target::Tcp { host, port }) => (json!(host), json!(port)),
            _ => (Value::Null, Value::Null),
        };
        json!({ "headers": headers, "target_host": host, "target_port": port })
    }

    fn answer(&self, answer: &Value) -> Result<(), AuthError> {
        let class = &self.class;
        if let Some(e) = answer.get("error").and_then(Value::as_str) {
            return Err(AuthError::new(
                502,
                "Authentication failed",
                format!("plugin {class} raised {}", printable(e)),
            ));
        }
        let Some(refused) = answer.get("refused") else { return Ok(()) };
        let text = |key: &str| refused.get(key).and_then(Value::as_str).map(str::to_owned);
        let code = refused.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
        // Only a refusal can come out of here: a plugin's 200 or 302 is a 403.
        let status = code.filter(|c| (400..=599).contains(c)).unwrap_or(403);
        let body = text("msg").or_else(|| text("reason")).unwrap_or_else(|| "Forbidden".into());
        let log = format!("plugin {class}: AuthenticationError {}", printable(&text("log").unwrap_or_default()));
        let mut error = AuthError::new(status, &body, log);
        let pairs = refused.get("headers").and_then(Value::as_array).cloned().unwrap_or_default();
        for pair in pairs {
            let (Some(name), Some(value)) = (pair.get(0).and_then(Value::as_str), pair.get(1).and_then(Value::as_str))
            else {
                continue;
            };
            match (header_name(name), value.chars().all(|c| c == '\t' || !c.is_control())) {
                (Some(name), true) => error.headers.push((name, value.to_owned())),
                _ => tracing::warn!("plugin {class}: header {:?} not sent: not a valid header", printable(name)),
            }
        }
        Err(error)
    }
}

impl PythonAuth {
    /// The plugin host's answer (or its failure) as the client's answer.
    fn outcome(&self, result: Result<Value, CallError>) -> Result<(), AuthError> {
        let class = &self.class;
        match result {
            Ok(answer) => self.answer(&answer),
            Err(CallError::Timeout) => Err(AuthError::new(
                504,
                "Authentication timed out",
                format!("plugin {class} timed out after {:?}", self.host.timeout()),
            )),
            Err(CallError::Host(why)) => {
                Err(AuthError::new(502, "Authentication failed", format!("plugin {class}: {why}")))
            }
        }
    }
}

impl Authenticator for PythonAuth {
    /// For an embedder calling the trait synchronously. On a multi-thread runtime
    /// `block_in_place` hands this worker's other tasks to another worker while we wait;
    /// elsewhere the wait blocks this thread, bounded by the deadline. The server itself
    /// calls [`authenticate_async`](Authenticator::authenticate_async).
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        let body = self.request(req);
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let result = if multi {
            tokio::task::block_in_place(|| self.host.call_blocking(body))
        } else {
            self.host.call_blocking(body)
        };
        self.outcome(result)
    }

    /// The plugin's answer awaited: the wait holds no thread.
    fn authenticate_async<'a>(&'a self, req: AuthRequest<'a>) -> AuthFuture<'a> {
        let body = self.request(&req);
        Box::pin(async move { self.outcome(self.host.call(body).await) })
    }

    fn describe(&self) -> String {
        format!("Python plugin {}", self.class)
    }
}

/// An exception's text for the log: one line, and the token (which a `KeyError` quotes)
/// replaced by its id.
fn scrub(text: &str, token: &str) -> String {
    let text = if token.is_empty() { text.to_owned() } else { text.replace(token, &format!("[{}]", token::id(token))) };
    printable(&text).into_owned()
}

/// Header names live as `&'static str` in [`AuthError`]: a plugin's own names are kept
/// once each, up to a bound, so a plugin inventing names per request cannot grow memory.
fn header_name(name: &str) -> Option<&'static str> {
    const MAX_NAMES: usize = 64;
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return None;
    }
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return Some(known);
    }
    if names.len() >= MAX_NAMES {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_scrubbing() {
        assert_eq!(header_name("X-Plugin"), Some("X-Plugin"));
        assert_eq!(header_name("Bad Name"), None);
        assert_eq!(header_name("Bad:Name"), None);
        let scrubbed = scrub("KeyError: 'secret-tok'\n", "secret-tok");
        assert!(!scrubbed.contains("secret-tok") && !scrubbed.contains('\n'), "{scrubbed}");
    }
}
