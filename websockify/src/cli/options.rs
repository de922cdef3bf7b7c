//! The option table: every flag with its upstream spelling, default and `--help` text, as
//! clap parses them. No checks here beyond a value's type: [`super::to_config`] turns the
//! parsed flags into a [`Config`](crate::Config) and says what is wrong with them.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

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
    // Unambiguous prefixes of long options, as upstream's optparse takes them (`--verb`).
    infer_long_args = true,
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

    /// Also take the token from a `token` cookie when there is no ?token= (off by default,
    /// as upstream: a cookie rides along on cross-site requests, so a cookie's token is
    /// refused (403) when the request's Origin is not its Host or an ExpectOrigin origin)
    #[arg(long, requires = "token_plugin", help_heading = "Target")]
    pub token_from_cookie: bool,

    /// The Python interpreter that runs a custom plugin (a dotted CLASS that is not built in,
    /// such as mymodule.MyPlugin, for --token-plugin or --auth-plugin); a venv's python has
    /// the plugin's own packages
    #[arg(long, value_name = "PATH", default_value = "python3", help_heading = "Target")]
    pub plugin_python: PathBuf,

    /// How long a custom Python plugin may take for one lookup or check before the client
    /// gets a 504
    #[arg(long, value_name = "SECS", default_value_t = 5.0, help_heading = "Target")]
    pub plugin_timeout: f64,

    /// Once the listeners are bound and the key, certificates and secret files read,
    /// become USER (and GROUP, or USER's group) for good; the wrapped program runs as USER
    /// too. Certificates reloaded later must be readable by USER
    #[arg(long, value_name = "USER[:GROUP]", help_heading = "Process")]
    pub user: Option<String>,

    /// TokenRedis: read the Redis password from FILE (its first line) rather than from
    /// --token-source, which `ps` shows (WEBSOCKIFY_REDIS_PASSWORD works too)
    #[arg(long, value_name = "FILE", requires = "token_plugin", help_heading = "Target")]
    pub redis_password_file: Option<PathBuf>,

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

    /// Password of an encrypted key: PKCS#8 or OpenSSL's legacy PEM encryption (prefer
    /// --key-password-file or WEBSOCKIFY_KEY_PASSWORD)
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

    /// Require TLS clients to present a certificate signed by --cafile (or a system CA), X.509
    /// v1 certificates too, as OpenSSL; plain ws:// clients are still served (as upstream)
    /// unless --ssl-only
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

    /// OpenSSL cipher string (e.g. HIGH:!aNULL:!MD5), evaluated as OpenSSL does; selected suites
    /// rustls lacks are skipped with a warning (TLS 1.3 suites stay unless named)
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

    /// Also write logs to FILE (appending; reopened on SIGHUP for logrotate). As upstream,
    /// they still go to stderr too, except with -D
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

    /// Serve the admin API (GET /sessions, DELETE /sessions/ID, ?token=ID, ?target=HOST:PORT)
    /// on a loopback HOST:PORT or a UNIX socket PATH (mode 0600); needs --admin-token-file
    #[arg(long, value_name = "ADDR|PATH", requires = "admin_token_file", help_heading = "Session control")]
    pub admin_listen: Option<String>,

    /// The bearer token admin API requests must carry (the file's first line)
    #[arg(long, value_name = "FILE", requires = "admin_listen", help_heading = "Session control")]
    pub admin_token_file: Option<PathBuf>,

    /// End a live session (1008 "Token revoked") once its token no longer leads to its
    /// target: at once for token files and directories (inotify) and Redis with keyspace
    /// notifications, else checked every --revoke-check-interval
    #[arg(long, requires = "token_plugin", help_heading = "Session control")]
    pub revoke_live_sessions: bool,

    /// Seconds between two checks of all live sessions' tokens, besides those a change
    /// reported by the token source starts (--revoke-live-sessions)
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Session control")]
    pub revoke_check_interval: u64,

    /// End a session (1008 "Token expired") when its token's exp passes (JWTTokenApi)
    #[arg(long, requires = "token_plugin", help_heading = "Session control")]
    pub end_session_at_token_expiry: bool,

    /// End every session SECS after it started (1001 "Session time limit"; 0: never)
    #[arg(long, value_name = "SECS", default_value_t = 0, help_heading = "Session control")]
    pub max_session_duration: u64,

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

    /// Record each session to FILE.<start time>-<pid>.<connection id> (noVNC player
    /// format), created mode 0600 and never over an existing file or link
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

    /// Threads serving connections, each with a runtime and a listening socket of its own
    /// (SO_REUSEPORT) and serving the sessions it accepts (0: one per CPU this process may
    /// use)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024), help_heading = "Process")]
    pub threads: u16,

    /// Largest WebSocket message accepted from a client, in bytes; larger closes with 1009
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, help_heading = "Limits")]
    pub max_message_size: u64,

    /// Concurrent WebSocket sessions allowed in total; more get 503 (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Limits")]
    pub max_sessions: usize,

    /// Concurrent sessions allowed per client IP address (IPv6: per prefix, see
    /// --ipv6-client-prefix); more get 429 (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Limits")]
    pub max_sessions_per_ip: usize,

    /// IPv6 clients count as one per prefix of this length for --max-sessions-per-ip (a
    /// home or cloud line has a whole /64; 128: every address apart)
    #[arg(long, value_name = "BITS", default_value_t = 64, value_parser = clap::value_parser!(u8).range(0..=128), help_heading = "Limits")]
    pub ipv6_client_prefix: u8,

    /// Concurrent sessions allowed per token; more get 429 (0: unlimited). JWTTokenApi
    /// tokens count by their signed content: one JWT in new JWE wrappings, or with its
    /// ECDSA twin signature, is one token
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

    /// Bytes of unfinished text messages all sessions together may hold; a session that
    /// would go past it is closed with 1009 (0: no budget beyond --max-text-hold each)
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, help_heading = "Limits")]
    pub max_held_text_total: usize,

    /// Connections that are not yet WebSocket sessions (TLS and HTTP handshakes, token
    /// lookups, static files) allowed at once; more are closed at accept (0: unlimited)
    #[arg(long, value_name = "N", default_value_t = 4096, help_heading = "Limits")]
    pub max_pending_handshakes: usize,

    /// Once the client or the target has closed, seconds the other direction has to
    /// deliver what is left to a peer that is not reading; then the session ends
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Limits")]
    pub drain_timeout: u64,

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

    /// Run PROGRAM (no shell): its bind() to source_port is moved to a loopback port by the
    /// rebind interposer (LD_PRELOAD), and sessions go there; with a target too (e.g.
    /// --unix-target FILE), sessions go to the target and the program is only run
    #[arg(last = true, value_name = "PROGRAM ARGS", help_heading = "Wrapping a program")]
    pub command: Vec<OsString>,
}
