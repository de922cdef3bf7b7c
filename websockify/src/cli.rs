//! The command line: upstream websockify's positional forms and option spellings, parsed
//! with clap and turned into a validated [`Config`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, ListenAddr, Target};

/// WebSocket to TCP bridge: a drop-in replacement for Python websockify.
///
/// Accepts WebSocket connections (RFC 6455, subprotocols `binary` and `base64`) on
/// [source_addr:]source_port and forwards their bytes to target_addr:target_port, or to a
/// UNIX socket with --unix-target.
#[derive(Parser, Debug)]
#[command(
    name = "websockify",
    version,
    override_usage = "websockify [options] [source_addr:]source_port target_addr:target_port\n       \
                      websockify [options] --unix-target FILE [source_addr:]source_port",
    after_help = "Examples:\n  websockify 6080 localhost:5900            noVNC's usual invocation\n  \
                  websockify [::1]:6080 vnc.internal:5901   IPv6 listen, host name target\n  \
                  websockify 6080 --unix-target /run/vnc.sock"
)]
pub struct Cli {
    /// Where to listen: PORT, HOST:PORT, [IPV6]:PORT or IPV6:PORT (no host: every interface)
    #[arg(value_name = "[source_addr:]source_port")]
    pub listen: String,

    /// Where to forward: HOST:PORT or [IPV6]:PORT
    #[arg(value_name = "target_addr:target_port")]
    pub target: Option<String>,

    /// Connect to this UNIX socket instead of a TCP target
    #[arg(long, value_name = "FILE", help_heading = "Target")]
    pub unix_target: Option<PathBuf>,

    /// Prefer IPv6 when a host name resolves to both families
    #[arg(short = '6', long, help_heading = "Target")]
    pub prefer_ipv6: bool,

    /// Verbose (debug) messages
    #[arg(short, long, help_heading = "Logging")]
    pub verbose: bool,

    /// Print the per-frame traffic legend on stderr
    #[arg(long, help_heading = "Logging")]
    pub traffic: bool,

    /// Write logs to FILE (appending) instead of stderr
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub log_file: Option<PathBuf>,

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

    /// Seconds allowed from accept to a complete request head
    #[arg(long, value_name = "SECS", default_value_t = 10, help_heading = "Limits")]
    pub handshake_timeout: u64,

    /// Accepted for compatibility with upstream; has no effect
    #[arg(long, hide_short_help = true, help_heading = "Compatibility")]
    pub libserver: bool,

    /// Accepted for compatibility with upstream (pings are always answered); has no effect
    #[arg(long, hide_short_help = true, help_heading = "Compatibility")]
    pub auto_pong: bool,
}

/// Upstream options this build does not implement yet. They are refused by name rather
/// than accepted and ignored.
const NOT_YET: &[&str] = &[
    "--record",
    "-D",
    "--daemon",
    "--cert",
    "--key",
    "--key-password",
    "--ssl-only",
    "--ssl-target",
    "--verify-client",
    "--cafile",
    "--ssl-version",
    "--ssl-ciphers",
    "--unix-listen",
    "--unix-listen-mode",
    "--inetd",
    "--web",
    "--web-auth",
    "--file-only",
    "--wrap-mode",
    "--target-config",
    "--token-plugin",
    "--token-source",
    "--host-token",
    "--auth-plugin",
    "--auth-source",
    "--syslog",
    "--legacy-syslog",
];

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
    for arg in args.iter().skip(1).take_while(|a| *a != "--") {
        let name = arg.to_string_lossy();
        let name = name.split('=').next().unwrap_or_default();
        if NOT_YET.contains(&name) {
            return Err(UsageError(format!("{name} is an upstream option that this version does not implement yet")));
        }
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            return Ok(Parsed::Print(e.render().to_string()));
        }
        Err(e) => {
            // clap explains at length; keep its first line, the one that says what is wrong.
            let text = e.render().to_string();
            let line = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            return Err(UsageError(format!("{line} (see --help)")));
        }
    };
    cli.into_config()
}

impl Cli {
    fn into_config(self) -> Result<Parsed, UsageError> {
        let listen = ListenAddr::parse(&self.listen).map_err(|e| UsageError(format!("listen address: {e}")))?;
        let target = match (self.target, self.unix_target) {
            (Some(_), Some(_)) => {
                return Err(UsageError("give either target_addr:target_port or --unix-target, not both".into()));
            }
            (None, None) => {
                return Err(UsageError("a target is required: target_addr:target_port or --unix-target FILE".into()));
            }
            (Some(t), None) => Target::parse_tcp(&t).map_err(|e| UsageError(format!("target address: {e}")))?,
            (None, Some(path)) => Target::Unix(path),
        };
        if self.max_message_size == 0 {
            return Err(UsageError("--max-message-size must be at least 1".into()));
        }
        if self.handshake_timeout == 0 {
            return Err(UsageError("--handshake-timeout must be at least 1 second".into()));
        }
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        let mut config = Config::new(listen, target);
        config.prefer_ipv6 = self.prefer_ipv6;
        config.traffic = self.traffic;
        config.heartbeat = secs(self.heartbeat);
        config.run_once = self.run_once;
        config.timeout = secs(self.timeout);
        config.idle_timeout = secs(self.idle_timeout);
        config.limits.decoder.max_message = self.max_message_size;
        config.limits.head.timeout = Duration::from_secs(self.handshake_timeout);
        let mut notices = Vec::new();
        if self.libserver {
            notices.push("--libserver has no meaning here and is ignored".to_owned());
        }
        if self.auto_pong {
            notices.push("--auto-pong is ignored: pings are always answered".to_owned());
        }
        let log = LogOptions { verbose: self.verbose, log_file: self.log_file, notices };
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
        assert_eq!(c.listen, ListenAddr { host: None, port: 6080 });
        assert_eq!(c.target, Target::Tcp { host: "localhost".into(), port: 5900 });
        let c = run(&["--heartbeat=30", "--timeout", "5", "-v", "--run-once", "[::1]:6080", "[::1]:5901"]).unwrap();
        assert_eq!(c.heartbeat, Some(Duration::from_secs(30)));
        assert_eq!(c.timeout, Some(Duration::from_secs(5)));
        assert!(c.run_once);
        let c = run(&["6080", "--unix-target=/run/vnc.sock"]).unwrap();
        assert_eq!(c.target, Target::Unix("/run/vnc.sock".into()));
        assert!(run(&["-6", "--libserver", "--auto-pong", "6080", "h:1"]).is_ok());
    }

    #[test]
    fn one_line_errors() {
        for (args, needle) in [
            (&["6080"][..], "a target is required"),
            (&["6080", "h:1", "--unix-target", "/x"], "not both"),
            (&["http", "h:1"], "listen address"),
            (&["6080", "h"], "target address"),
            (&["6080", "h:1", "--web", "."], "--web is an upstream option"),
            (&["6080", "h:1", "--cert=x.pem"], "--cert is an upstream option"),
            (&["6080", "h:1", "--bogus"], "--bogus"),
            (&["6080", "h:1", "--heartbeat", "x"], "invalid value"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
    }
}
