//! The `websockify` command: parse the command line, set up logging and signals, run the
//! server.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use websockify::cli::{self, LogOptions, Parsed};
use websockify::host::logging::{self, Logging};
use websockify::host::privileges::Identity;
use websockify::host::{daemon, wrap};
use websockify::ops::metrics::METRICS;
use websockify::{Config, Server};

/// Time the exit waits for queued log lines (the last ones say why it exits); a sink that
/// takes none (a syslog daemon that does not read) must not hold the exit longer.
const LOG_FLUSH: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let (config, log) = match cli::parse(std::env::args_os()) {
        Ok(Parsed::Run(config, log)) => (config, log),
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("websockify: {e}");
            return ExitCode::from(2);
        }
    };
    // Before any thread exists: the runtime is built after this. The parent waits until
    // the daemon serves (or says why it cannot) and exits with that.
    let mut readiness = None;
    if log.daemon {
        match daemon::start(log.pid_file.as_deref()) {
            Ok(r) => readiness = Some(r),
            Err(e) => {
                eprintln!("websockify: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // A start that fails says why: on stderr (after the log lines queued there), and from
    // a daemon through its parent.
    let fail = |logging: Option<&Logging>, readiness: Option<daemon::Readiness>, message: String, code: ExitCode| {
        match logging {
            Some(logging) => logging.say(&format!("websockify: {message}")),
            None => eprintln!("websockify: {message}"),
        }
        if let Some(mut r) = readiness {
            if let Some(pid_file) = &log.pid_file {
                let _ = std::fs::remove_file(pid_file);
            }
            r.failed(&message);
        }
        code
    };
    let logging = match init_logging(&log) {
        Ok(logging) => logging,
        Err(e) => return fail(None, readiness, format!("{e:#}"), ExitCode::from(2)),
    };
    // Declared before the runtime, so dropped after it: whatever is logged until then is
    // written out (within LOG_FLUSH) on every way out of `main`.
    let _flush = FlushOnExit(logging.clone());
    for notice in &log.notices {
        tracing::warn!("{notice}");
    }
    for (level, line) in &log.startup {
        match *level {
            tracing::Level::ERROR => tracing::error!("{line}"),
            tracing::Level::WARN => tracing::warn!("{line}"),
            _ => tracing::info!("{line}"),
        }
    }
    // This thread is one of the serving threads (`--threads`): each has a single-threaded
    // runtime (front::listener::Worker says why).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(Some(&logging), readiness, format!("cannot start the runtime: {e}"), ExitCode::FAILURE);
        }
    };
    let mut started = readiness.take();
    let result = runtime.block_on(serve(*config, logging.clone(), log.user.as_ref(), &mut started));
    match result {
        Ok(code) => code,
        Err(e) => {
            if log.log_file.is_some() || log.syslog.is_some() || log.daemon {
                tracing::error!("{e}");
            }
            fail(Some(&logging), started, e.to_string(), ExitCode::FAILURE)
        }
    }
}

/// Runs the server; the exit code is the wrapped program's in `--wrap-mode exit`.
///
/// `readiness` (with `-D`) is told once the server serves, and is left in place if it never
/// does, for the caller to report the error through.
async fn serve(
    config: Config,
    logging: Logging,
    user: Option<&Identity>,
    readiness: &mut Option<daemon::Readiness>,
) -> anyhow::Result<ExitCode> {
    let server = Server::bind(config).await?;
    for line in server.settings() {
        tracing::info!("{line}");
    }
    // Root was needed for the listeners and the files read so far: not from here on.
    if let Some(user) = user {
        user.assume().map_err(anyhow::Error::msg)?;
        tracing::info!("running as {} (uid {}, gid {})", user.user, user.uid, user.gid);
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone(), server.reload_handle(), logging));
    // Under systemd (Type=notify): ready once the socket is bound. No-op elsewhere.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    // `-- PROGRAM`: started once the port is ours; when it ends in exit mode, so does the
    // server, and when the server is done (for any reason), so is the program.
    let server_done = CancellationToken::new();
    let wrapped = match &server.config().wrap {
        Some(wrap) => {
            let port = server.local_addr().map_err(wrap::WrapError::ListenPort)?.port();
            let wrapper = wrap::Wrapper::spawn(wrap, port)?;
            Some(tokio::spawn(wrapper.run(shutdown.clone(), server_done.clone())))
        }
        None => None,
    };
    if let Some(mut r) = readiness.take() {
        r.ready();
    }
    server.run(shutdown.clone()).await;
    shutdown.cancel();
    server_done.cancel();
    let code = match wrapped {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    Ok(code.map_or(ExitCode::SUCCESS, |c| ExitCode::from(u8::try_from(c).unwrap_or(1))))
}

/// SIGINT/SIGTERM: graceful shutdown (sessions get 1001); a second one exits at once.
/// SIGHUP: reload certificates, reopen the log file.
async fn watch_signals(shutdown: CancellationToken, reload: Arc<Notify>, logging: Logging) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    // A file size limit (RLIMIT_FSIZE) reached by a log file or a recording: by default
    // SIGXFSZ kills the process. Handled, the write fails with EFBIG instead, which the
    // writer reports, and every session goes on.
    let _xfsz = signal(SignalKind::from_raw(25 /* SIGXFSZ on Linux */));
    let name = loop {
        tokio::select! {
            _ = int.recv() => break "SIGINT",
            _ = term.recv() => break "SIGTERM",
            _ = hup.recv() => {
                tracing::info!("SIGHUP received, reloading");
                // In its place among the queued lines: the ones before go to the old file.
                logging.reopen_file();
                reload.notify_one();
            }
        }
    };
    tracing::info!("{name} received, shutting down");
    shutdown.cancel();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::warn!("second signal: exiting now");
    logging.flush(LOG_FLUSH);
    std::process::exit(1);
}

/// Writes out the queued log lines when `main` returns (bounded by [`LOG_FLUSH`]).
struct FlushOnExit(Logging);

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        self.0.flush(LOG_FLUSH);
    }
}

/// Logs to stderr or `--log-file` (as text, or as JSON lines with `--log-format json`), and
/// to `--syslog` as well (always text: syslog has its own structure). Each sink is a
/// bounded queue with a thread of its own ([`logging`]): a sink that stops taking lines
/// loses lines, counted in `websockify_log_lines_dropped_total{sink}`, and never stops
/// the proxy.
fn init_logging(log: &LogOptions) -> anyhow::Result<Logging> {
    use anyhow::Context as _;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if log.verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("WEBSOCKIFY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let syslog = match &log.syslog {
        Some(dest) => Some(Box::new(
            websockify::host::syslog::Syslog::connect(dest, log.daemon, log.legacy_syslog)
                .with_context(|| format!("cannot reach syslog at {dest}"))?,
        ) as Box<dyn logging::Output>),
        None => None,
    };
    // As upstream: --log-file adds a file, stderr stays (journald keeps the lines of a
    // service that also writes a file); a daemon's stderr is /dev/null.
    let sinks = logging::Sinks {
        format: if log.json { logging::Format::Json } else { logging::Format::Text },
        stderr: !(log.daemon && log.log_file.is_some()),
        file: log.log_file.clone(),
        syslog,
    };
    // The counters exist from the start (at 0) for the sinks in use; `ops` is not for
    // `host` to import, so the binary ties them together.
    let counters: Vec<_> = logging::Sink::ALL
        .into_iter()
        .filter(|sink| match sink {
            logging::Sink::Stderr => sinks.stderr,
            logging::Sink::File => sinks.file.is_some(),
            logging::Sink::Syslog => sinks.syslog.is_some(),
        })
        .map(|sink| (sink, METRICS.log_lines_dropped(sink.label())))
        .collect();
    let on_lost: logging::OnLost = Arc::new(move |sink| {
        if let Some((_, counter)) = counters.iter().find(|(s, _)| *s == sink) {
            counter.inc();
        }
    });
    let path = log.log_file.clone();
    let logging = Logging::start(sinks, on_lost).with_context(|| match &path {
        Some(path) => format!("cannot open log file {}", path.display()),
        None => "cannot start logging".to_owned(),
    })?;
    tracing_subscriber::registry().with(filter).with(logging.layer()).init();
    Ok(logging)
}
