//! The command line: upstream websockify's positional forms and option spellings, parsed
//! with clap and turned into a validated [`Config`].
//!
//! - [`options`](Cli): the option table (flags, defaults, `--help` text);
//! - `to_config`: from parsed flags to a [`Config`], one function per part;
//! - [`file`](mod@file): `--config FILE`, the same options in TOML;
//! - here: the entry point [`parse`], `--check-config`, `--man`, `--completions`.
//!
//! The top room: it builds the machinery that flags name (token sources, authenticators,
//! certificates) to refuse a bad command line at start, so it may import every other room
//! and none imports it.

pub mod file;
mod options;
mod startup_log;
mod to_config;

pub use options::Cli;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::admission::token::TokenError;
use crate::config::Config;
use file::FileArgs;

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
    /// `--user`: who to become once the listeners are bound and the files read.
    pub user: Option<crate::host::privileges::Identity>,
    /// What the token sources and authenticators logged while they were built (a token
    /// file's bad lines, with file and line), before logging was set up: the binary logs
    /// them once it is, and `--check-config` fails on warnings and errors among them.
    pub startup: Vec<(tracing::Level, String)>,
}

/// Parses the command line (including the program name) into a configuration.
pub fn parse<I, T>(args: I) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = Cli::command();
    let file = match file::config_path(&args) {
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
        Err(e)
            if e.kind() == clap::error::ErrorKind::UnknownArgument
                && let Some(message) = ambiguous_prefix(&args, &cmd) =>
        {
            return Err(UsageError(message));
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
    // The file read is the one clap saw (found before parsing by file::config_path).
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
    let file_warning = file.as_ref().and_then(FileArgs::secrets_readable_by_others);
    if let Some(file) = file {
        cli.positionals_from(file)?;
    }
    let check = cli.check_config;
    let (parsed, startup) = startup_log::capture(|| cli.into_config());
    let parsed = match parsed? {
        Parsed::Run(config, mut log) => {
            log.startup = startup;
            log.notices.extend(file_warning);
            Parsed::Run(config, log)
        }
        parsed => parsed,
    };
    match parsed {
        Parsed::Run(config, log) if check => check_config(&config, &log),
        parsed => Ok(parsed),
    }
}

/// An option that is the prefix of several long options (`--ssl`): clap calls it unknown;
/// say what it could be, as upstream's optparse does.
fn ambiguous_prefix(args: &[OsString], cmd: &clap::Command) -> Option<String> {
    let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .filter_map(|a| a.to_str()?.strip_prefix("--"))
        .map(|a| a.split_once('=').map_or(a, |(name, _)| name))
        .filter(|name| !name.is_empty() && !longs.contains(name))
        .find_map(|name| {
            let mut could: Vec<&str> = longs.iter().copied().filter(|l| l.starts_with(name)).collect();
            could.sort_unstable();
            (could.len() > 1).then(|| {
                let list: Vec<String> = could.iter().map(|l| format!("--{l}")).collect();
                format!("ambiguous option --{name}: could be {} (see --help)", list.join(", "))
            })
        })
}

/// Whether a token source's failure is a connection that could not be made (it may come
/// up later) rather than an answer that refused us.
fn unreachable(error: &str) -> bool {
    ["Connection refused", "No route to host", "timed out", "Network is unreachable", "failed to lookup", "not known"]
        .iter()
        .any(|s| error.contains(s))
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
    // Errors that plugins logged while they were built (a token file's bad lines) fail the
    // check; their warnings (a token file that does not exist yet) are reported.
    let errors: Vec<&str> =
        log.startup.iter().filter(|(level, _)| *level == tracing::Level::ERROR).map(|(_, l)| l.as_str()).collect();
    if !errors.is_empty() {
        return Err(UsageError(errors.join("\n")));
    }
    let mut report: Vec<String> = log.notices.iter().map(|n| format!("warning: {n}")).collect();
    report.extend(
        log.startup.iter().filter(|(level, _)| *level == tracing::Level::WARN).map(|(_, l)| format!("warning: {l}")),
    );
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
    // The token source answers (a lookup of a token nobody has): a Redis or HTTP API that
    // is down or refuses our password fails the check; an unknown token is the answer.
    if let crate::config::Route::Token(route) = &config.route {
        let probe = async {
            let lookup = route.resolver.lookup("websockify-check-config-probe");
            tokio::time::timeout(std::time::Duration::from_secs(10), lookup).await
        };
        let answer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| UsageError(format!("cannot start a runtime to try the token source: {e}")))?
            .block_on(probe);
        match answer {
            Ok(Ok(_) | Err(TokenError::Refused(_) | TokenError::BadTarget(_))) => {
                report.push(format!("token source answers: {}", route.resolver.describe()));
            }
            // Down now: the proxy starts anyway and tries again at each lookup, as at start.
            Ok(Err(e @ TokenError::Timeout(_))) => report.push(format!(
                "warning: token source {}: {e}; lookups fail until it answers",
                route.resolver.describe()
            )),
            Ok(Err(TokenError::Unavailable(e))) if unreachable(&e) => report.push(format!(
                "warning: token source {} unreachable now ({e}); lookups fail until it answers",
                route.resolver.describe()
            )),
            // It answered, and refused us (a wrong password): that will not mend itself.
            Ok(Err(e)) => return Err(UsageError(format!("token source {}: {e}", route.resolver.describe()))),
            Err(_) => report.push(format!("warning: token source {}: no answer in 10 s", route.resolver.describe())),
        }
    }
    if let Some(target_tls) = &config.target_tls {
        crate::tls::connector(target_tls.cafile.as_deref()).map_err(|e| UsageError(format!("--ssl-target: {e}")))?;
    }
    report.push("configuration OK".to_owned());
    Ok(Parsed::Print(report.join("\n") + "\n"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Listen, ListenAddr, Route, Target};

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
        // A token file that does not exist yet is not an error (upstream starts too).
        assert!(run(&["6080", "--token-plugin", "TokenFile", "--token-source", "/nonexistent"]).is_ok());
    }
}
