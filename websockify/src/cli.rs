//! The command line: upstream websockify's positional forms and option spellings, parsed
//! with clap and turned into a validated [`Config`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

use std::sync::Arc;

use crate::auth::{self, Authenticator};
use crate::config::{Config, Listen, ListenAddr, Route, Target, TargetTls};
use crate::config_file::{self, FileArgs};
use crate::forwarded::Networks;
use crate::limit::SessionCaps;
use crate::tls::{TlsOptions, TlsVersion};
use crate::token::{self, TokenRoute, TokenSource};
use crate::web::WebOptions;
use crate::wrap::{WrapConfig, WrapMode};

/// WebSocket to TCP bridge: a drop-in replacement for Python websockify.
///
/// Accepts WebSocket connections (RFC 6455, subprotocols `binary` and `base64`) on
/// [source_addr:]source_port and forwards their bytes to target_addr:target_port, or to a
/// UNIX socket with --unix-target.
#[derive(Parser, Debug)]
// The doc comments are the --help text: brackets and <...> are meant literally there.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
#[command(
    name = "websockify",
    version,
    // The last occurrence of an option wins: --config files come first, so the command
    // line overrides them (and upstream's argparse behaves so too).
    args_override_self = true,
    override_usage = "websockify [options] [source_addr:]source_port target_addr:target_port\n       \
                      websockify [options] --unix-target FILE [source_addr:]source_port\n       \
                      websockify [options] [source_addr:]source_port -- PROGRAM ARGS...",
    after_help = "Examples:\n  websockify 6080 localhost:5900            noVNC's usual invocation\n  \
                  websockify [::1]:6080 vnc.internal:5901   IPv6 listen, host name target\n  \
                  websockify 6080 --unix-target /run/vnc.sock"
)]
pub struct Cli {
    /// Where to listen: PORT, HOST:PORT, [IPV6]:PORT or IPV6:PORT (no host: every interface)
    #[arg(value_name = "[source_addr:]source_port")]
    pub listen: Option<String>,

    /// Where to forward: HOST:PORT or [IPV6]:PORT
    #[arg(value_name = "target_addr:target_port")]
    pub target: Option<String>,

    /// Connect to this UNIX socket instead of a TCP target
    #[arg(long, value_name = "FILE", help_heading = "Target")]
    pub unix_target: Option<PathBuf>,

    /// Choose each session's target from its token with this plugin: TokenFile, ReadOnlyTokenFile,
    /// TokenFileName, BaseTokenAPI, JSONTokenApi, JWTTokenApi, TokenRedis, UnixDomainSocketDirectory
    #[arg(long, value_name = "CLASS", help_heading = "Target")]
    pub token_plugin: Option<String>,

    /// The token plugin's source: a file, directory, URL with %s, key file or Redis address
    #[arg(long, value_name = "ARG", requires = "token_plugin", help_heading = "Target")]
    pub token_source: Option<String>,

    /// Use the Host header (without its port) as the token instead of ?token=
    #[arg(long, requires = "token_plugin", help_heading = "Target")]
    pub host_token: bool,

    /// Also take the token from the last path segment (/websockify/TOKEN) when there is no ?token=
    #[arg(long, requires = "token_plugin", help_heading = "Target")]
    pub token_from_path: bool,

    /// Deprecated: same as --token-plugin TokenFile --token-source FILE
    #[arg(long, value_name = "FILE", conflicts_with = "token_plugin", help_heading = "Target")]
    pub target_config: Option<String>,

    /// Authenticate requests with this plugin: BasicHTTPAuth, ExpectOrigin, ClientCertCNAuth
    #[arg(long, value_name = "CLASS", help_heading = "Authentication")]
    pub auth_plugin: Option<String>,

    /// The auth plugin's source (user:password, origins or CNs); prefer --auth-source-file or
    /// WEBSOCKIFY_AUTH_SOURCE for secrets
    #[arg(long, value_name = "ARG", requires = "auth_plugin", help_heading = "Authentication")]
    pub auth_source: Option<String>,

    /// Read the auth plugin's source from the first line of FILE
    #[arg(
        long,
        value_name = "FILE",
        requires = "auth_plugin",
        conflicts_with = "auth_source",
        help_heading = "Authentication"
    )]
    pub auth_source_file: Option<PathBuf>,

    /// Require authentication for the web server too
    #[arg(long, requires_all = ["web", "auth_plugin"], help_heading = "Authentication")]
    pub web_auth: bool,

    /// Prefer IPv6 when a host name resolves to both families
    #[arg(short = '6', long, help_heading = "Target")]
    pub prefer_ipv6: bool,

    /// Connect to the target over TLS (verified against the system CAs and --target-cafile)
    #[arg(long, help_heading = "Target")]
    pub ssl_target: bool,

    /// Extra CA certificates (PEM) trusted for --ssl-target
    #[arg(long, value_name = "FILE", requires = "ssl_target", help_heading = "Target")]
    pub target_cafile: Option<PathBuf>,

    /// PEM certificate chain for TLS clients; may also hold the key [default: self.pem]
    #[arg(long, value_name = "FILE", help_heading = "TLS (clients are detected by their first byte)")]
    pub cert: Option<PathBuf>,

    /// PEM private key (PKCS#1, PKCS#8 or SEC1), if not in --cert
    #[arg(long, value_name = "FILE", help_heading = "TLS (clients are detected by their first byte)")]
    pub key: Option<PathBuf>,

    /// Password of an encrypted PKCS#8 key (prefer --key-password-file or WEBSOCKIFY_KEY_PASSWORD)
    #[arg(long, value_name = "PASSWORD", help_heading = "TLS (clients are detected by their first byte)")]
    pub key_password: Option<String>,

    /// Read the key password from the first line of FILE
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "key_password",
        help_heading = "TLS (clients are detected by their first byte)"
    )]
    pub key_password_file: Option<PathBuf>,

    /// Refuse plain (non-TLS) connections
    #[arg(long, help_heading = "TLS (clients are detected by their first byte)")]
    pub ssl_only: bool,

    /// Require clients to present a certificate signed by --cafile (or a system CA)
    #[arg(long, help_heading = "TLS (clients are detected by their first byte)")]
    pub verify_client: bool,

    /// CA certificates (PEM) trusted for client certificates (with --verify-client)
    #[arg(long, value_name = "FILE", help_heading = "TLS (clients are detected by their first byte)")]
    pub cafile: Option<PathBuf>,

    /// Minimum TLS version: default, tlsv1_1, tlsv1_2, tlsv1_3 (TLS 1.1 is not offered by rustls: means 1.2)
    #[arg(
        long,
        value_name = "VERSION",
        default_value = "default",
        help_heading = "TLS (clients are detected by their first byte)"
    )]
    pub ssl_version: String,

    /// Allowed cipher suites, OpenSSL or IANA names separated by ':' (TLS 1.3 suites stay unless named)
    #[arg(long, value_name = "LIST", help_heading = "TLS (clients are detected by their first byte)")]
    pub ssl_ciphers: Option<String>,

    /// Serve static files from DIR on the same port
    #[arg(long, value_name = "DIR", help_heading = "Web server")]
    pub web: Option<PathBuf>,

    /// Serve directory listings where a directory has no index.html (off by default)
    #[arg(long, requires = "web", help_heading = "Web server")]
    pub dir_listing: bool,

    /// Never serve directory listings (upstream's spelling; listings are off by default)
    #[arg(long, requires = "web", help_heading = "Web server")]
    pub file_only: bool,

    /// Verbose (debug) messages
    #[arg(short, long, help_heading = "Logging")]
    pub verbose: bool,

    /// Print the per-frame traffic legend on stderr
    #[arg(long, help_heading = "Logging")]
    pub traffic: bool,

    /// Write logs to FILE (appending) instead of stderr; reopened on SIGHUP (logrotate)
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub log_file: Option<PathBuf>,

    /// Also log to syslog: a UDP host:port, or a local socket such as /dev/log (RFC 5424)
    #[arg(long, value_name = "SERVER", help_heading = "Logging")]
    pub syslog: Option<String>,

    /// Use the old BSD syslog format instead of RFC 5424
    #[arg(long, requires = "syslog", help_heading = "Logging")]
    pub legacy_syslog: bool,

    /// Log lines as text, or as one JSON object per line (stderr and --log-file; syslog stays text)
    #[arg(
        long,
        value_name = "FORMAT",
        value_parser = ["text", "json"],
        default_value = "text",
        help_heading = "Logging"
    )]
    pub log_format: String,

    /// Serve Prometheus metrics as GET /metrics on HOST:PORT, apart from the public port
    #[arg(long, value_name = "ADDR", help_heading = "Logging")]
    pub metrics_listen: Option<String>,

    /// Become a daemon (background process); stdio goes to /dev/null, logs to --log-file/--syslog
    #[arg(short = 'D', long, help_heading = "Process")]
    pub daemon: bool,

    /// With -D, write the daemon's pid to FILE
    #[arg(long, value_name = "FILE", requires = "daemon", help_heading = "Process")]
    pub pid_file: Option<PathBuf>,

    /// Take the listening socket (or one accepted connection) from file descriptor 0
    #[arg(long, conflicts_with = "unix_listen", help_heading = "Listening")]
    pub inetd: bool,

    /// Listen on a UNIX socket instead of a TCP port
    #[arg(long, value_name = "FILE", help_heading = "Listening")]
    pub unix_listen: Option<PathBuf>,

    /// Permission bits of the --unix-listen socket, in octal
    #[arg(long, value_name = "OCTAL", default_value = "600", requires = "unix_listen", help_heading = "Listening")]
    pub unix_listen_mode: String,

    /// Record each session to FILE.<connection id> (noVNC player format)
    #[arg(long, value_name = "FILE", help_heading = "Sessions")]
    pub record: Option<PathBuf>,

    /// Send a ping to each client every INTERVAL seconds (0: never)
    #[arg(long, value_name = "INTERVAL", default_value_t = 0, help_heading = "Sessions")]
    pub heartbeat: u64,

    /// Handle a single WebSocket session, then exit
    #[arg(long, help_heading = "Process")]
    pub run_once: bool,

    /// Stop accepting TIMEOUT seconds after start, exit once live sessions end (0: never)
    #[arg(long, value_name = "TIMEOUT", default_value_t = 0, help_heading = "Process")]
    pub timeout: u64,

    /// Exit after IDLE_TIMEOUT seconds without any active connection (0: never)
    #[arg(long, value_name = "IDLE_TIMEOUT", default_value_t = 0, help_heading = "Process")]
    pub idle_timeout: u64,

    /// Largest WebSocket message accepted from a client, in bytes; larger closes with 1009
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, help_heading = "Limits")]
    pub max_message_size: u64,

    /// Concurrent WebSocket sessions allowed in total; more get 503 (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Limits")]
    pub max_sessions: usize,

    /// Concurrent sessions allowed per client IP address; more get 429 (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Limits")]
    pub max_sessions_per_ip: usize,

    /// Concurrent sessions allowed per token; more get 429 (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Limits")]
    pub max_sessions_per_token: usize,

    /// Seconds allowed from accept to a complete request head
    #[arg(long, value_name = "SECS", default_value_t = 10, help_heading = "Limits")]
    pub handshake_timeout: u64,

    /// Seconds allowed from accept to the client's first bytes
    #[arg(long, value_name = "SECS", default_value_t = 5, help_heading = "Limits")]
    pub first_byte_timeout: u64,

    /// Largest request head (request line and headers), in bytes; larger gets 431
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024, help_heading = "Limits")]
    pub max_request_head: usize,

    /// Most header lines in a request head; more gets 431
    #[arg(long, value_name = "N", default_value_t = 64, help_heading = "Limits")]
    pub max_headers: usize,

    /// Seconds allowed for a client's TLS handshake
    #[arg(long, value_name = "SECS", default_value_t = 10, help_heading = "Limits")]
    pub tls_handshake_timeout: u64,

    /// Seconds allowed to connect to a target (its TLS handshake included)
    #[arg(long, value_name = "SECS", default_value_t = 10, help_heading = "Limits")]
    pub connect_timeout: u64,

    /// Close a session with 1001 after SECS without data in either direction; pings do not
    /// count (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 0, help_heading = "Limits")]
    pub session_idle_timeout: u64,

    /// Most ping and pong frames a client may send per second; more closes with 1008
    /// (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 50, help_heading = "Limits")]
    pub max_control_rate: u32,

    /// A text message from a binary-mode client reaches the target once all of it is valid
    /// UTF-8, held up to this many bytes; a longer one is forwarded as it arrives
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, help_heading = "Limits")]
    pub max_text_hold: usize,

    /// Require a PROXY protocol header (v1 or v2, HAProxy's send-proxy / send-proxy-v2) at
    /// the start of connections from --proxy-protocol-from: the client address it gives
    /// replaces the balancer's for logs, per-IP limits and the target's PROXY header
    #[arg(long, help_heading = "Client address (load balancers)")]
    pub accept_proxy_protocol: bool,

    /// Who must send that header: comma-separated addresses or networks (CIDR) [default:
    /// 127.0.0.0/8,::1]. Others are served as direct clients, and refused if they send one
    #[arg(
        long,
        value_name = "CIDR,...",
        requires = "accept_proxy_protocol",
        help_heading = "Client address (load balancers)"
    )]
    pub proxy_protocol_from: Option<String>,

    /// Believe X-Forwarded-For (or Forwarded) from these proxies, comma-separated addresses
    /// or networks (CIDR): the right-most address not in the list is the client, for logs,
    /// per-IP limits and the target's PROXY header. Without it the headers are ignored
    #[arg(long, value_name = "CIDR,...", help_heading = "Client address (load balancers)")]
    pub trusted_proxy: Option<String>,

    /// Send the target a PROXY protocol header (v1 text or v2 binary) naming the client and
    /// the address it connected to, so that the target sees the real client
    #[arg(long, value_name = "VERSION", value_parser = ["v1", "v2"], help_heading = "Client address (load balancers)")]
    pub target_proxy_protocol: Option<String>,

    /// Read options from a TOML file (long names as keys, plus listen, target and wrap);
    /// the command line overrides it
    #[arg(long, value_name = "FILE", help_heading = "Configuration")]
    pub config: Option<PathBuf>,

    /// Check the configuration (options, certificates, token and auth sources) and exit:
    /// 0 and "configuration OK", or 2 and the error
    #[arg(long, help_heading = "Configuration")]
    pub check_config: bool,

    /// Print a completion script for SHELL and exit
    #[arg(long, value_name = "SHELL", help_heading = "Configuration")]
    pub completions: Option<clap_complete::Shell>,

    /// Print the manual page (roff) and exit: websockify --man | man -l -
    #[arg(long, help_heading = "Configuration")]
    pub man: bool,

    /// Accepted for compatibility with upstream; has no effect
    #[arg(long, hide_short_help = true, help_heading = "Compatibility")]
    pub libserver: bool,

    /// Accepted for compatibility with upstream (pings are always answered); has no effect
    #[arg(long, hide_short_help = true, help_heading = "Compatibility")]
    pub auto_pong: bool,

    /// When the wrapped program exits: exit (with its status), ignore (it daemonized; keep
    /// serving) or respawn (at most 3 starts per ~10 s) [default: exit]
    #[arg(long, value_name = "MODE", value_parser = ["exit", "ignore", "respawn"], help_heading = "Wrapping a program")]
    pub wrap_mode: Option<String>,

    /// Run PROGRAM (no shell) in place of a target: its bind() to source_port is moved to a
    /// loopback port by the rebind interposer (LD_PRELOAD), and sessions go there
    #[arg(last = true, value_name = "PROGRAM ARGS", help_heading = "Wrapping a program")]
    pub command: Vec<OsString>,
}

/// Whether systemd passed us listening sockets (LISTEN_FDS, with LISTEN_PID our pid).
fn systemd_sockets() -> bool {
    let pid_ok = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    pid_ok && std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n > 0)
}

/// A command-line error: one line for the user, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What the binary should do after parsing.
pub enum Parsed {
    Run(Box<Config>, LogOptions),
    /// `--help` or `--version`: print this and exit 0.
    Print(String),
}

/// Logging options, applied by the binary (the library does not install a logger).
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub verbose: bool,
    pub log_file: Option<PathBuf>,
    /// `--syslog`: `host:port` (UDP) or a datagram socket path such as `/dev/log`.
    pub syslog: Option<String>,
    /// BSD syslog format instead of RFC 5424.
    pub legacy_syslog: bool,
    /// `--log-format json`: one JSON object per line (stderr, `--log-file`).
    pub json: bool,
    /// `-D`: become a daemon before any thread starts.
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    /// Notices about accepted-but-ignored options, to log once logging is up.
    pub notices: Vec<String>,
}

/// Parses the command line (including the program name) into a configuration.
pub fn parse<I, T>(args: I) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = Cli::command();
    let file = match config_file::config_path(&args) {
        Some(path) => Some(FileArgs::read(&path, &cmd).map_err(|e| UsageError(e.0))?),
        None => None,
    };
    let matches = match &file {
        Some(file) => file.matches(&cmd, &args),
        None => cmd.clone().try_get_matches_from(&args),
    };
    let mut cli = match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            return Ok(Parsed::Print(e.render().to_string()));
        }
        Err(e) => {
            // clap explains at length; keep its first line, the one that says what is wrong.
            let text = e.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .take_while(|l| {
                    !l.starts_with("Usage:") && !l.trim_start().starts_with("tip:") && !l.starts_with("For more")
                })
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let line = line.join(" ");
            let from = match &file {
                Some(file) => format!("options from {} included; ", file.path.display()),
                None => String::new(),
            };
            return Err(UsageError(format!("{} ({from}see --help)", line.trim_start_matches("error: "))));
        }
    };
    // The file read is the one clap saw (found before parsing by config_file::config_path).
    if cli.config != file.as_ref().map(|f| f.path.clone()) {
        return Err(UsageError("--config: give the file as --config FILE or --config=FILE".into()));
    }
    if let Some(shell) = cli.completions {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "websockify", &mut script);
        return Ok(Parsed::Print(String::from_utf8_lossy(&script).into_owned()));
    }
    if cli.man {
        return man_page().map(Parsed::Print).map_err(|e| UsageError(format!("cannot render the man page: {e}")));
    }
    if let Some(file) = file {
        cli.positionals_from(file)?;
    }
    let check = cli.check_config;
    let parsed = cli.into_config()?;
    match parsed {
        Parsed::Run(config, log) if check => check_config(&config, &log),
        parsed => Ok(parsed),
    }
}

/// `--man`: clap's page of the options, with the configuration file, exit status and
/// examples added.
fn man_page() -> std::io::Result<String> {
    use clap_mangen::roff::{Roff, bold, italic, roman};
    let cmd = Cli::command();
    let examples = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    let man = clap_mangen::Man::new(cmd);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut more = Roff::new();
    more.control("SH", ["CONFIGURATION FILE"])
        .text([
            roman("With "),
            bold("--config"),
            roman(" "),
            italic("FILE"),
            roman(
                ", options are read from a TOML file first, under their long names without the dashes \
                 (a dash or an underscore inside a name, as in ssl-only or ssl_only). Flags take true or false, \
                 values a string or a number. The keys listen and target stand for the positional arguments, \
                 and wrap = [\"PROGRAM\", \"ARG\"] for -- PROGRAM ARGS. The command line overrides the file. \
                 Unknown keys, wrong types and options given twice are errors naming the file and line.",
            ),
        ])
        .control("PP", [])
        .control("nf", [])
        .text([roman(
            "listen = \"6080\"\ntarget = \"localhost:5900\"\nheartbeat = 30\nssl-only = true\n\
             cert = \"/etc/websockify/cert.pem\"",
        )])
        .control("fi", [])
        .control("SH", ["EXIT STATUS"])
        .text([roman(
            "0 when the server stopped normally (or the wrapped program's status with --wrap-mode exit); \
             1 when it could not start (an address that cannot be bound, a required certificate that cannot \
             be used); 2 for a usage or configuration error.",
        )])
        .control("SH", ["EXAMPLES"])
        .control("nf", [])
        .text([roman(examples.trim_start_matches("Examples:").trim_start_matches('\n'))])
        .control("fi", []);
    more.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

/// `--check-config`: what the server would refuse to start with, short of binding: the
/// options (already checked), the certificates and the target's CA file.
fn check_config(config: &Config, log: &LogOptions) -> Result<Parsed, UsageError> {
    let mut report: Vec<String> = log.notices.iter().map(|n| format!("warning: {n}")).collect();
    if let Some(options) = &config.tls {
        match crate::tls::TlsServer::load(options.clone()) {
            Ok(_) => {}
            Err(e) if config.ssl_only => {
                return Err(UsageError(format!(
                    "TLS is required (--ssl-only) but the certificate cannot be used: {e}"
                )));
            }
            Err(e) => report.push(format!("warning: TLS disabled: {e}")),
        }
    }
    if let Some(target_tls) = &config.target_tls {
        crate::tls::connector(target_tls.cafile.as_deref()).map_err(|e| UsageError(format!("--ssl-target: {e}")))?;
    }
    report.push("configuration OK".to_owned());
    Ok(Parsed::Print(report.join("\n") + "\n"))
}

impl Cli {
    /// The file's `listen`, `target` and `wrap` fill the positional arguments the command
    /// line did not give. Without a TCP listen address (--inetd, --unix-listen), a lone
    /// positional argument is the target, so the file's target only fills an empty line.
    fn positionals_from(&mut self, file: FileArgs) -> Result<(), UsageError> {
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
            let resolver =
                token::plugin(&name, &source).map_err(|e| UsageError(format!("--token-plugin {name}: {e}")))?;
            let source = TokenSource { host: self.host_token, path: self.token_from_path };
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
        auth::plugin(name, source.as_deref()).map(Some).map_err(|e| UsageError(format!("--auth-plugin: {e}")))
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

    /// `-- PROGRAM ARGS`: the wrapped program takes the place of a target.
    fn wrap(&self, notices: &mut Vec<String>) -> Result<Option<WrapConfig>, UsageError> {
        let mode = self.wrap_mode.as_deref().map(str::parse::<WrapMode>).transpose().map_err(UsageError)?;
        if self.command.is_empty() {
            if mode.is_some() {
                notices.push("--wrap-mode has no effect without -- PROGRAM ARGS".to_owned());
            }
            return Ok(None);
        }
        if self.target.is_some()
            || self.unix_target.is_some()
            || self.token_plugin.is_some()
            || self.target_config.is_some()
        {
            return Err(UsageError(
                "a wrapped program (-- PROGRAM ARGS) takes the place of a target: give no target_addr:target_port, \
                 --unix-target or --token-plugin"
                    .into(),
            ));
        }
        WrapConfig::new(self.command.clone(), mode.unwrap_or_default()).map(Some).map_err(|e| UsageError(e.to_string()))
    }

    fn into_config(mut self) -> Result<Parsed, UsageError> {
        let listen = self.listen()?;
        let mut notices = Vec::new();
        let wrap = self.wrap(&mut notices)?;
        let route = match &wrap {
            Some(w) => w.target().into(),
            None => self.route(&mut notices)?,
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
        config.limits.sessions = SessionCaps {
            total: self.max_sessions,
            per_ip: self.max_sessions_per_ip,
            per_token: self.max_sessions_per_token,
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
        };
        Ok(Parsed::Run(Box::new(config), log))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("websockify").chain(args.iter().copied());
        match parse(argv) {
            Ok(Parsed::Run(config, _)) => Ok(*config),
            Ok(Parsed::Print(text)) => Err(format!("printed: {text}")),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn upstream_forms() {
        let c = run(&["6080", "localhost:5900"]).unwrap();
        assert_eq!(c.listen, Listen::Tcp(ListenAddr { host: None, port: 6080 }));
        assert!(matches!(&c.route, Route::Fixed(Target::Tcp { host, port: 5900 }) if host == "localhost"));
        let c = run(&["--heartbeat=30", "--timeout", "5", "-v", "--run-once", "[::1]:6080", "[::1]:5901"]).unwrap();
        assert_eq!(c.heartbeat, Some(Duration::from_secs(30)));
        assert_eq!(c.timeout, Some(Duration::from_secs(5)));
        assert!(c.run_once);
        let c = run(&["6080", "--unix-target=/run/vnc.sock"]).unwrap();
        assert!(matches!(&c.route, Route::Fixed(Target::Unix(p)) if p.to_str() == Some("/run/vnc.sock")));
        assert!(run(&["-6", "--libserver", "--auto-pong", "6080", "h:1"]).is_ok());
    }

    #[test]
    fn one_line_errors() {
        for (args, needle) in [
            (&["6080"][..], "a target is required"),
            (&["6080", "h:1", "--legacy-syslog"], "--syslog"),
            (&["6080", "h:1", "--pid-file", "x"], "--daemon"),
            (&["6080", "h:1", "--unix-target", "/x"], "only one of"),
            (&["http", "h:1"], "listen address"),
            (&["6080", "h"], "target address"),
            (&["6080", "h:1", "--web-auth"], "--web"),
            (&["6080", "--token-source", "x"], "--token-plugin"),
            (&["6080", "--token-plugin", "TokenFile"], "needs --token-source"),
            (&["6080", "--token-plugin", "Nope", "--token-source", "x"], "unknown token plugin"),
            (&["6080", "--token-plugin", "TokenFile", "--token-source", "/nonexistent"], "/nonexistent"),
            (&["6080", "h:1", "--token-plugin", "TokenFileName", "--token-source", "/tmp"], "only one of"),
            (&["6080", "h:1", "--host-token"], "--token-plugin"),
            (&["6080", "h:1", "--auth-plugin", "BasicHTTPAuth"], "user:password"),
            (&["6080", "h:1", "--auth-source", "a:b"], "--auth-plugin"),
            (&["6080", "h:1", "--web", "/nonexistent-dir"], "--web /nonexistent-dir"),
            (&["6080", "h:1", "--ssl-version", "sslv3"], "--ssl-version"),
            (&["6080", "h:1", "--dir-listing"], "--web"),
            (&["6080", "h:1", "--bogus"], "--bogus"),
            (&["6080", "h:1", "--heartbeat", "x"], "invalid value"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
    }
}
