//! Authentication before the 101 (and, with `--web-auth`, before static files): upstream's
//! `BasicHTTPAuth`, `ExpectOrigin` and `ClientCertCNAuth`, and a trait for embedders.

use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wire::http::{Request, Response};

/// What an authenticator may look at (built by the server; more may be added).
#[non_exhaustive]
pub struct AuthRequest<'a> {
    pub request: &'a Request,
    /// The subject CN of the client certificate, when TLS verified one.
    pub client_cn: Option<&'a str>,
    /// The client's address: the connection's, or the one a PROXY protocol header or a
    /// trusted `X-Forwarded-For`/`Forwarded` header gives (port 0 from those headers).
    /// `None` on a UNIX socket listener.
    pub client: Option<std::net::SocketAddr>,
}

/// Decides whether a request may go on. Implement it to plug your own check into an
/// embedded server.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<(), AuthError>;
    fn describe(&self) -> String;

    /// What the server calls: the answer of [`authenticate`](Self::authenticate) unless an
    /// authenticator that waits on something (a plugin process, a network service)
    /// overrides it, so that its wait holds no thread: each of the server's threads runs
    /// many sessions, and a blocked one would stall them all.
    fn authenticate_async<'a>(&'a self, req: AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(std::future::ready(self.authenticate(&req)))
    }

    /// Whether this authenticator checks the `Origin` header itself (`ExpectOrigin`): then
    /// a token from a cookie needs no same-origin check beside it.
    fn checks_origin(&self) -> bool {
        false
    }
}

/// The answer of [`Authenticator::authenticate_async`].
pub type AuthFuture<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + 'a>>;

/// A refusal: the response the client gets, and what the log says (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub log: String,
}

impl AuthError {
    pub fn new(status: u16, body: &str, log: impl Into<String>) -> Self {
        Self { status, headers: Vec::new(), body: body.to_owned(), log: log.into() }
    }

    pub fn response(&self) -> Response {
        let mut r = Response::error(self.status, self.body.clone());
        for (n, v) in &self.headers {
            r = r.with_header(n, v.clone());
        }
        r
    }
}

/// Builds an auth plugin from upstream's name (with or without the
/// `websockify.auth_plugins.` prefix) and its source.
pub fn plugin(name: &str, source: Option<&str>) -> Result<Arc<dyn Authenticator>, String> {
    let short = name.strip_prefix("websockify.auth_plugins.").unwrap_or(name);
    let list = || source.unwrap_or_default().split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    Ok(match short {
        "BasicHTTPAuth" => {
            let src = source.ok_or(
                "BasicHTTPAuth needs user:password (--auth-source, --auth-source-file or WEBSOCKIFY_AUTH_SOURCE)",
            )?;
            if !src.contains(':') {
                return Err("BasicHTTPAuth source must be user:password".into());
            }
            let user = src.split_once(':').map(|(u, _)| u.to_owned()).unwrap_or_default();
            Arc::new(BasicHttpAuth { user, expected: Sha256::digest(src.as_bytes()).into() })
        }
        "ExpectOrigin" => Arc::new(ExpectOrigin { allowed: list() }),
        "ClientCertCNAuth" => Arc::new(ClientCertCnAuth { allowed: list() }),
        _ => {
            return Err(format!("unknown auth plugin {name:?}; known: BasicHTTPAuth, ExpectOrigin, ClientCertCNAuth"));
        }
    })
}

/// HTTP Basic authentication against one `user:password`.
pub struct BasicHttpAuth {
    /// The configured user: a failure's log line names the user only when it is this one
    /// (a password typed into the user field must not reach the log).
    user: String,
    /// SHA-256 of `user:password`: compared in constant time, whatever the lengths.
    expected: [u8; 32],
}

impl BasicHttpAuth {
    fn demand(log: &str) -> AuthError {
        let mut e = AuthError::new(401, "Authentication required", log);
        e.headers.push(("WWW-Authenticate", "Basic realm=\"Websockify\"".into()));
        e
    }
}

impl Authenticator for BasicHttpAuth {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        let Some(header) = req.request.header("Authorization") else { return Err(Self::demand("no credentials")) };
        let malformed = |why: &str| AuthError::new(403, "Forbidden", format!("malformed Authorization header: {why}"));
        let Some(encoded) = header.strip_prefix("Basic ") else { return Err(malformed("not Basic")) };
        let raw =
            base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed("bad base64"))?;
        // ISO-8859-1, as browsers send it and upstream decodes it.
        let text: String = raw.iter().map(|&b| char::from(b)).collect();
        let Some((user, _)) = text.split_once(':') else { return Err(malformed("no colon")) };
        let given: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if bool::from(given.ct_eq(&self.expected)) {
            Ok(())
        } else {
            if user == self.user {
                Err(Self::demand(&format!("wrong password for user {user:?}")))
            } else {
                Err(Self::demand("unknown user"))
            }
        }
    }

    fn describe(&self) -> String {
        "BasicHTTPAuth".into()
    }
}

/// Only requests whose `Origin` is one of a list.
pub struct ExpectOrigin {
    allowed: Vec<String>,
}

impl Authenticator for ExpectOrigin {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        let origin = req.request.header("Origin");
        if origin.is_some_and(|o| self.allowed.iter().any(|a| a == o)) {
            return Ok(());
        }
        Err(AuthError::new(
            403,
            "Invalid Origin",
            format!("Invalid Origin header: expected one of {:?}, got {origin:?}", self.allowed),
        ))
    }

    fn describe(&self) -> String {
        format!("ExpectOrigin {}", self.allowed.join(" "))
    }

    fn checks_origin(&self) -> bool {
        true
    }
}

/// Only TLS clients whose verified certificate has one of a list of common names.
pub struct ClientCertCnAuth {
    allowed: Vec<String>,
}

impl Authenticator for ClientCertCnAuth {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        match req.client_cn {
            Some(cn) if self.allowed.iter().any(|a| a == cn) => Ok(()),
            cn => {
                Err(AuthError::new(403, "Forbidden", format!("client certificate CN {cn:?} not in {:?}", self.allowed)))
            }
        }
    }

    fn describe(&self) -> String {
        format!("ClientCertCNAuth {}", self.allowed.join(" "))
    }
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject().iter_common_name().next()?.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::{HeadLimits, parse_head};

    fn req(headers: &str) -> Request {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        parse_head(raw.as_bytes(), HeadLimits::default()).unwrap().unwrap().0
    }

    fn check(a: &dyn Authenticator, headers: &str, cn: Option<&str>) -> Result<(), u16> {
        let r = req(headers);
        a.authenticate(&AuthRequest { request: &r, client_cn: cn, client: None }).map_err(|e| e.status)
    }

    #[test]
    fn basic_auth_rfc_vector() {
        // RFC 7617's (and upstream's test's) example credentials.
        let a = plugin("BasicHTTPAuth", Some("Aladdin:open sesame")).unwrap();
        assert_eq!(check(&*a, "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n", None), Ok(()));
        assert_eq!(check(&*a, "Authorization: Basic QWxhZGRpbjpPcGVuU2VzYW1l\r\n", None), Err(401));
        assert_eq!(check(&*a, "Authorization: Basic xxxxx\r\n", None), Err(403));
    }

    #[test]
    fn basic_auth_table() {
        let a = plugin("websockify.auth_plugins.BasicHTTPAuth", Some("alice:s3cr:et")).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(check(&*a, &format!("Authorization: Basic {}\r\n", b64("alice:s3cr:et")), None), Ok(()));
        assert_eq!(check(&*a, &format!("Authorization: Basic {}\r\n", b64("alice:wrong")), None), Err(401));
        assert_eq!(check(&*a, "", None), Err(401));
        assert_eq!(check(&*a, "Authorization: Bearer xyz\r\n", None), Err(403));
        assert_eq!(check(&*a, "Authorization: Basic !!!\r\n", None), Err(403));
        assert_eq!(check(&*a, &format!("Authorization: Basic {}\r\n", b64("nocolon")), None), Err(403));
        let e = a.authenticate(&AuthRequest { request: &req(""), client_cn: None, client: None }).unwrap_err();
        assert_eq!(e.headers, vec![("WWW-Authenticate", "Basic realm=\"Websockify\"".to_owned())]);
        assert!(plugin("BasicHTTPAuth", Some("nocolon")).is_err());
        assert!(plugin("BasicHTTPAuth", None).is_err());
    }

    #[test]
    fn origin_and_cn() {
        let o = plugin("ExpectOrigin", Some("https://a.example https://b.example")).unwrap();
        assert_eq!(check(&*o, "Origin: https://b.example\r\n", None), Ok(()));
        assert_eq!(check(&*o, "Origin: https://evil.example\r\n", None), Err(403));
        assert_eq!(check(&*o, "", None), Err(403));
        let c = plugin("ClientCertCNAuth", Some("alice bob")).unwrap();
        assert_eq!(check(&*c, "", Some("bob")), Ok(()));
        assert_eq!(check(&*c, "", Some("mallory")), Err(403));
        assert_eq!(check(&*c, "", None), Err(403));
        assert!(plugin("Nope", None).is_err());
    }
}
