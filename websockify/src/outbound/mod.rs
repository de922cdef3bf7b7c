//! Where sessions go, and how we get there: the [`Target`] value every stage speaks of
//! (the command line parses it, token sources produce it, the session connects to it, the
//! wrapped program's port becomes one), and the [connector](mod@connect) that reaches it over TCP, a
//! UNIX socket or TLS.
//!
//! The lowest room after [`crate::wire`] and [`crate::tls`]: it imports no other stage, so
//! that everything that names a target (admission, config, host, session) can import it.

pub mod connect;

use std::fmt;
use std::path::PathBuf;

pub use connect::{ConnectError, TargetStream, connect};

/// Where sessions are forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A host name or address and a port, resolved for each session.
    Tcp { host: String, port: u16 },
    /// A UNIX stream socket (`--unix-target`).
    Unix(PathBuf),
}

impl Target {
    /// Parses `host:port`, `[v6]:port` or `v6:port` (the last colon splits).
    pub fn parse_tcp(s: &str) -> Result<Self, AddrError> {
        let (host, port) = split_host_port(s)?;
        if host.is_empty() {
            return Err(AddrError::MissingHost(s.to_owned()));
        }
        // No host name or address has these; one that did would not read back the same
        // from logs or a token file (found by the token_file fuzz target).
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AddrError::BadHost(s.to_owned()));
        }
        if port == 0 {
            return Err(AddrError::BadPort(s.to_owned()));
        }
        Ok(Self::Tcp { host: host.to_owned(), port })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "unix socket {}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("{0:?} is not [host:]port")]
    NoPort(String),
    #[error("{0:?} has an invalid port (1-65535)")]
    BadPort(String),
    #[error("{0:?} has no host")]
    MissingHost(String),
    #[error("{0:?} has spaces or control characters in its host")]
    BadHost(String),
}

/// Splits at the last colon; strips the brackets of `[v6]` (also for listen addresses).
pub fn split_host_port(s: &str) -> Result<(&str, u16), AddrError> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| AddrError::NoPort(s.to_owned()))?;
    let port = port.parse::<u16>().map_err(|_| AddrError::BadPort(s.to_owned()))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.contains(['[', ']', '/', ' ']) {
        return Err(AddrError::NoPort(s.to_owned()));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms() {
        let t = |s| Target::parse_tcp(s).unwrap();
        assert_eq!(t("localhost:5900"), Target::Tcp { host: "localhost".into(), port: 5900 });
        assert_eq!(t("[::1]:5901"), Target::Tcp { host: "::1".into(), port: 5901 });
        assert_eq!(t("::1:5901"), Target::Tcp { host: "::1".into(), port: 5901 });
        assert_eq!(t("[::1]:5901").to_string(), "[::1]:5901");
        assert_eq!(Target::parse_tcp(":5900"), Err(AddrError::MissingHost(":5900".into())));
        assert_eq!(Target::parse_tcp("[\u{c}h]:59"), Err(AddrError::BadHost("[\u{c}h]:59".into())));
        assert_eq!(Target::parse_tcp("[a\tb]:59"), Err(AddrError::BadHost("[a\tb]:59".into())));
        assert_eq!(Target::parse_tcp("h:0"), Err(AddrError::BadPort("h:0".into())));
        assert!(Target::parse_tcp("5900").is_err());
    }
}
