//! Admission: who may open a session and where it goes, decided before any 101.
//!
//! - [`auth`]: authenticators (upstream's `BasicHTTPAuth`, `ExpectOrigin`,
//!   `ClientCertCNAuth`, and the [`auth::Authenticator`] trait for embedders);
//! - [`token`]: token sources that map a request's token to a [`Target`](crate::Target)
//!   (files, JWT/JWE, HTTP APIs, Redis, and the [`token::TokenResolver`] trait);
//! - [`limit`]: caps on concurrent sessions in total, per client IP and per token;
//! - [`forwarded`]: which proxies may name the client, and what their headers say;
//! - [`python`]: a site's own plugins written for the Python websockify, run in a plugin
//!   host process ([`token_plugin`] and [`auth_plugin`] choose between ours and theirs).
//!
//! Every answer here is an HTTP status with a log line; nothing here touches a socket of
//! the session. Imports only [`crate::wire`], [`crate::tls`] and [`crate::outbound`].

pub mod auth;
pub mod forwarded;
pub mod limit;
pub mod python;
pub mod token;

use std::sync::Arc;

/// The names [`token::plugin`] knows (after upstream's `websockify.token_plugins.` prefix).
const TOKEN_BUILTINS: &[&str] = &[
    "TokenFile",
    "ReadOnlyTokenFile",
    "TokenFileName",
    "BaseTokenAPI",
    "JSONTokenApi",
    "JWTTokenApi",
    "TokenRedis",
    "UnixDomainSocketDirectory",
];

/// The names [`auth::plugin`] knows (after upstream's `websockify.auth_plugins.` prefix).
const AUTH_BUILTINS: &[&str] = &["BasicHTTPAuth", "ExpectOrigin", "ClientCertCNAuth"];

/// A token source by its command-line name: one of ours ([`token::plugin`]), or any other
/// dotted name, a Python class run by [`python`] as upstream loads it. The choice is made
/// here so that `token` and `python` do not name each other.
pub fn token_plugin(name: &str, source: &str) -> Result<Arc<dyn token::TokenResolver>, token::TokenError> {
    let short = name.strip_prefix("websockify.token_plugins.").unwrap_or(name);
    if !TOKEN_BUILTINS.contains(&short) && python::is_python_name(name) {
        return Ok(Arc::new(python::token_plugin(name, source).map_err(token::TokenError::Config)?));
    }
    token::plugin(name, source)
}

/// An authenticator by its command-line name: one of ours ([`auth::plugin`]), or any other
/// dotted name, a Python class run by [`python`].
pub fn auth_plugin(name: &str, source: Option<&str>) -> Result<Arc<dyn auth::Authenticator>, String> {
    let short = name.strip_prefix("websockify.auth_plugins.").unwrap_or(name);
    if !AUTH_BUILTINS.contains(&short) && python::is_python_name(name) {
        return Ok(Arc::new(python::auth_plugin(name, source)?));
    }
    auth::plugin(name, source)
}
