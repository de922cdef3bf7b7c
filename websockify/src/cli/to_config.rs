//! From parsed flags to a validated [`Config`]: upstream's positional forms
//! (`[source_addr:]source_port target_addr:target_port`, `-- PROGRAM ARGS`), a config
//! file's positionals, and one function per part of the configuration (route, auth, TLS,
//! listen address, wrapped program), each refusing what cannot work with a one-line
//! [`UsageError`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::file::FileArgs;
use super::{Cli, LogOptions, Parsed, UsageError, systemd_sockets};
use crate::admission::auth::Authenticator;
use crate::admission::forwarded::Networks;
use crate::admission::limit::SessionCaps;
use crate::admission::python;
use crate::admission::token::{self, TokenRoute, TokenSource};
use crate::config::{AdminListen, AdminOptions, Config, Listen, ListenAddr, Route, Target, TargetTls};
use crate::host::wrap::{WrapConfig, WrapMode};
use crate::tls::{TlsOptions, TlsVersion};
use crate::web::WebOptions;

impl Cli {
    /// The file's `listen`, `target` and `wrap` fill the positional arguments the command
    /// line did not give. Without a TCP listen address (--inetd, --unix-listen), a lone
    /// positional argument is the target, so the file's target only fills an empty line.
    pub(super) fn positionals_from(&mut self, file: FileArgs) -> Result<(), UsageError> {
        if self.command.is_empty() {
            self.command = file.wrap;
        }
        let inherited = self.inetd || self.unix_listen.is_some();
        if inherited && file.listen.is_some() {
            return Err(UsageError(format!(
                "{}: listen: no listen address is taken with --inetd or --unix-listen",
                file.path.display()
            )));
        }
        if !inherited && !systemd_sockets() {
            self.listen = self.listen.take().or(file.listen);
            self.target = self.target.take().or(file.target);
        } else if self.listen.is_none() && self.target.is_none() {
            // Here a lone positional argument is the target. (Under systemd the socket is
            // the listen address and the file's listen is unused, so that one file serves
            // both a socket unit and a manual start.)
            self.target = file.target;
        }
        Ok(())
    }

    /// Exactly one way to choose targets: a fixed address, a UNIX socket or a token plugin.
    fn route(&self, notices: &mut Vec<String>) -> Result<Route, UsageError> {
        let plugin = match (&self.token_plugin, &self.target_config) {
            (Some(p), _) => Some((p.clone(), self.token_source.clone())),
            (None, Some(file)) => {
                notices.push("--target-config is deprecated: use --token-plugin TokenFile --token-source FILE".into());
                Some(("TokenFile".to_owned(), Some(file.clone())))
            }
            (None, None) => None,
        };
        let given =
            [self.target.is_some(), self.unix_target.is_some(), plugin.is_some()].iter().filter(|g| **g).count();
        if given > 1 {
            return Err(UsageError(
                "give only one of target_addr:target_port, --unix-target or --token-plugin/--target-config".into(),
            ));
        }
        if let Some((name, source)) = plugin {
            let source = source.ok_or_else(|| UsageError(format!("--token-plugin {name} needs --token-source")))?;
            let redis = name.strip_prefix("websockify.token_plugins.").unwrap_or(&name) == "TokenRedis";
            let resolver = match &self.redis_password_file {
                Some(file) if redis => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| UsageError(format!("--redis-password-file {}: {e}", file.display())))?;
                    let password = text.lines().next().unwrap_or_default().to_owned();
                    token::TokenRedis::with_password(&source, Some(password))
                        .map(|r| -> Arc<dyn token::TokenResolver> { Arc::new(r) })
                }
                Some(_) => return Err(UsageError(format!("--redis-password-file is for TokenRedis, not {name}"))),
                None => crate::admission::token_plugin(&name, &source),
            }
            .map_err(|e| UsageError(format!("--token-plugin {name}: {e}")))?;
            let source =
                TokenSource { host: self.host_token, path: self.token_from_path, cookie: self.token_from_cookie };
            return Ok(Route::Token(TokenRoute { resolver, source }));
        }
        match (&self.target, &self.unix_target) {
            (Some(t), None) => Ok(Target::parse_tcp(t).map_err(|e| UsageError(format!("target address: {e}")))?.into()),
            (None, Some(path)) => Ok(Target::Unix(path.clone()).into()),
            _ => Err(UsageError(
                "a target is required: target_addr:target_port, --unix-target FILE or --token-plugin CLASS".into(),
            )),
        }
    }

    /// How custom Python plugins run: set before the plugins are built by name.
    fn python_plugins(&self) -> Result<(), UsageError> {
        if !(self.plugin_timeout.is_finite() && self.plugin_timeout > 0.0) {
            return Err(UsageError(format!(
                "--plugin-timeout {}: expected a number of seconds above 0",
                self.plugin_timeout
            )));
        }
        let target = match (&self.target, &self.unix_target) {
            (Some(t), None) => Target::parse_tcp(t).ok(),
            _ => None,
        };
        python::set_defaults(python::HostOptions {
            python: self.plugin_python.clone(),
            timeout: Duration::from_secs_f64(self.plugin_timeout.min(86_400.0)),
            target,
        });
        Ok(())
    }

    fn auth(&self) -> Result<Option<Arc<dyn Authenticator>>, UsageError> {
        let Some(name) = &self.auth_plugin else { return Ok(None) };
        let source = match (&self.auth_source, &self.auth_source_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| UsageError(format!("--auth-source-file {}: {e}", file.display())))?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
            (None, None) => std::env::var("WEBSOCKIFY_AUTH_SOURCE").ok(),
        };
        crate::admission::auth_plugin(name, source.as_deref())
            .map(Some)
            .map_err(|e| UsageError(format!("--auth-plugin: {e}")))
    }

    /// TLS is on when a certificate is named, required, or the default `self.pem` exists.
    fn tls_options(&self, notices: &mut Vec<String>) -> Result<Option<TlsOptions>, UsageError> {
        let min_version = TlsVersion::parse(&self.ssl_version).ok_or_else(|| {
            UsageError(format!("--ssl-version {:?}: expected default, tlsv1_1, tlsv1_2 or tlsv1_3", self.ssl_version))
        })?;
        if min_version == TlsVersion::Tls11 {
            notices.push("--ssl-version tlsv1_1: TLS 1.1 is not offered (rustls implements 1.2 and 1.3)".to_owned());
        }
        if let Some(list) = &self.ssl_ciphers {
            crate::tls::check_ciphers(list).map_err(|e| UsageError(format!("--ssl-ciphers: {e}")))?;
        }
        if self.cafile.is_some() && !self.verify_client {
            notices.push("--cafile has no effect without --verify-client".to_owned());
        }
        // As upstream, plain ws:// clients are still served: they present no certificate.
        if self.verify_client && !self.ssl_only {
            notices.push(
                "--verify-client without --ssl-only: TLS clients must present a certificate, but plain \
                 (ws://, http://) clients are still served without one; add --ssl-only to refuse them"
                    .to_owned(),
            );
        }
        let cert = self.cert.clone().unwrap_or_else(|| PathBuf::from("self.pem"));
        let wanted = self.cert.is_some() || self.key.is_some() || self.ssl_only || self.verify_client || cert.exists();
        if !wanted {
            return Ok(None);
        }
        let key_password = match (&self.key_password, &self.key_password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| UsageError(format!("--key-password-file {}: {e}", file.display())))?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
            (None, None) => std::env::var("WEBSOCKIFY_KEY_PASSWORD").ok(),
        };
        Ok(Some(TlsOptions {
            cert,
            key: self.key.clone(),
            key_password,
            min_version,
            ciphers: self.ssl_ciphers.clone(),
            verify_client: self.verify_client,
            cafile: self.cafile.clone(),
        }))
    }

    /// Where connections come from. Without a TCP listen address (inetd, UNIX socket,
    /// systemd), the first positional argument is the target, as upstream reads it.
    fn listen(&mut self) -> Result<Listen, UsageError> {
        let listen = if self.inetd {
            Listen::Stdin
        } else if let Some(path) = &self.unix_listen {
            let mode =
                u32::from_str_radix(&self.unix_listen_mode, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                    UsageError(format!(
                        "--unix-listen-mode {:?}: expected octal bits such as 600",
                        self.unix_listen_mode
                    ))
                })?;
            Listen::Unix { path: std::path::absolute(path).unwrap_or_else(|_| path.clone()), mode }
        } else if systemd_sockets() {
            Listen::Systemd
        } else {
            let addr = self
                .listen
                .as_deref()
                .ok_or_else(|| UsageError("a listen address ([host:]port) is required".into()))?;
            return ListenAddr::parse(addr).map(Listen::Tcp).map_err(|e| UsageError(format!("listen address: {e}")));
        };
        if let Some(first) = self.listen.take() {
            if self.target.is_some() {
                return Err(UsageError(
                    "no listen address is taken with --inetd, --unix-listen or systemd sockets".into(),
                ));
            }
            self.target = Some(first);
        }
        Ok(listen)
    }

    /// `-- PROGRAM ARGS`: the wrapped program, the target unless another is given.
    fn wrap(&self, notices: &mut Vec<String>) -> Result<Option<WrapConfig>, UsageError> {
        let mode = self.wrap_mode.as_deref().map(str::parse::<WrapMode>).transpose().map_err(UsageError)?;
        if self.command.is_empty() {
            if mode.is_some() {
                notices.push("--wrap-mode has no effect without -- PROGRAM ARGS".to_owned());
            }
            return Ok(None);
        }
        // With a target too (`--unix-target FILE -- PROGRAM`, as Jupyter desktop proxies
        // run a VNC server on a UNIX socket), the program is started and cleaned up as in
        // wrap mode, and sessions go to the target (upstream does the same).
        WrapConfig::new(self.command.clone(), mode.unwrap_or_default()).map(Some).map_err(|e| UsageError(e.to_string()))
    }

    pub(super) fn into_config(mut self) -> Result<Parsed, UsageError> {
        let listen = self.listen()?;
        let mut notices = Vec::new();
        let wrap = self.wrap(&mut notices)?;
        let targeted = self.target.is_some()
            || self.unix_target.is_some()
            || self.token_plugin.is_some()
            || self.target_config.is_some();
        self.python_plugins()?;
        let route = match &wrap {
            Some(w) if !targeted => w.target().into(),
            _ => self.route(&mut notices)?,
        };
        let auth = self.auth()?;
        if self.max_message_size == 0 {
            return Err(UsageError("--max-message-size must be at least 1".into()));
        }
        for (name, secs) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--first-byte-timeout", self.first_byte_timeout),
            ("--tls-handshake-timeout", self.tls_handshake_timeout),
            ("--connect-timeout", self.connect_timeout),
        ] {
            if secs == 0 {
                return Err(UsageError(format!("{name} must be at least 1 second")));
            }
        }
        if self.max_request_head < 64 {
            return Err(UsageError("--max-request-head must be at least 64 bytes".into()));
        }
        if self.max_headers == 0 {
            return Err(UsageError("--max-headers must be at least 1".into()));
        }
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        let tls = self.tls_options(&mut notices)?;
        let web = match &self.web {
            Some(dir) => Some(
                WebOptions::new(dir, self.dir_listing && !self.file_only)
                    .map_err(|e| UsageError(format!("--web {}: {e}", dir.display())))?,
            ),
            None => None,
        };
        let mut config = Config::new(listen, route);
        config.auth = auth;
        config.web_auth = self.web_auth;
        config.record = match &self.record {
            Some(path) => {
                Some(std::path::absolute(path).map_err(|e| UsageError(format!("--record {}: {e}", path.display())))?)
            }
            None => None,
        };
        config.prefer_ipv6 = self.prefer_ipv6;
        config.traffic = self.traffic;
        config.heartbeat = secs(self.heartbeat);
        config.run_once = self.run_once;
        config.timeout = secs(self.timeout);
        config.idle_timeout = secs(self.idle_timeout);
        config.threads = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => usize::from(n),
        };
        config.limits.decoder.max_message = self.max_message_size;
        config.limits.head.timeout = Duration::from_secs(self.handshake_timeout);
        config.limits.head.max_bytes = self.max_request_head;
        config.limits.head.max_headers = self.max_headers;
        config.limits.first_byte_timeout = Duration::from_secs(self.first_byte_timeout);
        config.limits.tls_handshake_timeout = Duration::from_secs(self.tls_handshake_timeout);
        config.limits.connect_timeout = Duration::from_secs(self.connect_timeout);
        config.limits.session_idle_timeout = secs(self.session_idle_timeout);
        config.limits.max_control_rate = self.max_control_rate;
        config.limits.max_text_hold = self.max_text_hold;
        config.limits.max_held_text_total = self.max_held_text_total;
        config.limits.max_pending_handshakes = self.max_pending_handshakes;
        config.limits.drain_timeout = Duration::from_secs(self.drain_timeout);
        config.limits.max_session_duration = secs(self.max_session_duration);
        config.revoke_interval = self.revoke_live_sessions.then(|| Duration::from_secs(self.revoke_check_interval));
        config.end_at_token_expiry = self.end_session_at_token_expiry;
        config.admin = match (&self.admin_listen, &self.admin_token_file) {
            (Some(listen), Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| UsageError(format!("--admin-token-file {}: {e}", file.display())))?;
                let token = text.lines().next().unwrap_or_default().trim().to_owned();
                if token.len() < 16 {
                    return Err(UsageError(format!(
                        "--admin-token-file {}: the token must be at least 16 characters",
                        file.display()
                    )));
                }
                let listen = if listen.contains('/') {
                    AdminListen::Unix(listen.into())
                } else {
                    AdminListen::Tcp(ListenAddr::parse(listen).map_err(|e| UsageError(format!("--admin-listen: {e}")))?)
                };
                Some(AdminOptions { listen, token })
            }
            _ => None,
        };
        config.limits.sessions = SessionCaps {
            total: self.max_sessions,
            per_ip: self.max_sessions_per_ip,
            per_token: self.max_sessions_per_token,
            ipv6_prefix: self.ipv6_client_prefix,
        };
        config.tls = tls;
        config.ssl_only = self.ssl_only;
        config.target_tls = self.ssl_target.then(|| TargetTls { cafile: self.target_cafile.clone() });
        config.web = web;
        config.wrap = wrap;
        config.metrics_listen = match &self.metrics_listen {
            Some(addr) => Some(ListenAddr::parse(addr).map_err(|e| UsageError(format!("--metrics-listen: {e}")))?),
            None => None,
        };
        if self.accept_proxy_protocol {
            config.accept_proxy = Some(match &self.proxy_protocol_from {
                Some(list) => Networks::parse(list).map_err(|e| UsageError(format!("--proxy-protocol-from: {e}")))?,
                None => Networks::loopback(),
            });
        }
        if let Some(list) = &self.trusted_proxy {
            config.trusted_proxies = Networks::parse(list).map_err(|e| UsageError(format!("--trusted-proxy: {e}")))?;
        }
        config.target_proxy = self.target_proxy_protocol.as_deref().map(str::parse).transpose().map_err(UsageError)?;
        if self.libserver {
            notices.push("--libserver has no meaning here and is ignored".to_owned());
        }
        if self.auto_pong {
            notices.push("--auto-pong is ignored: pings are always answered".to_owned());
        }
        // The daemon keeps the working directory, but absolute paths survive any later change.
        let absolute = |p: Option<PathBuf>| p.map(|p| std::path::absolute(&p).unwrap_or(p));
        let log = LogOptions {
            verbose: self.verbose,
            log_file: absolute(self.log_file),
            syslog: self.syslog,
            legacy_syslog: self.legacy_syslog,
            json: self.log_format == "json",
            daemon: self.daemon,
            pid_file: absolute(self.pid_file),
            notices,
            startup: Vec::new(),
            user: self
                .user
                .as_deref()
                .map(crate::host::privileges::Identity::resolve)
                .transpose()
                .map_err(UsageError)?,
        };
        Ok(Parsed::Run(Box::new(config), log))
    }
}
