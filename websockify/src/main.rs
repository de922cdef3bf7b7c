//! The `websockify` command: parse the command line, set up logging and signals, run the
//! server.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use websockify::cli::{self, LogOptions, Parsed};
use websockify::{Config, Server, wrap};

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
    // Before any thread exists: the runtime is built after this.
    if log.daemon {
        let mut daemon =
            daemonize::Daemonize::new().working_directory(std::env::current_dir().unwrap_or_else(|_| "/".into()));
        if let Some(pid_file) = &log.pid_file {
            daemon = daemon.pid_file(pid_file);
        }
        if let Err(e) = daemon.start() {
            eprintln!("websockify: cannot become a daemon: {e}");
            return ExitCode::FAILURE;
        }
    }
    let log_file = match init_logging(&log) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("websockify: {e:#}");
            return ExitCode::from(2);
        }
    };
    for notice in &log.notices {
        tracing::warn!("{notice}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("websockify: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(*config, log_file)) {
        Ok(code) => code,
        Err(e) => {
            if log.log_file.is_some() || log.syslog.is_some() || log.daemon {
                tracing::error!("{e}");
            }
            eprintln!("websockify: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the server; the exit code is the wrapped program's in `--wrap-mode exit`.
async fn serve(config: Config, log_file: Option<LogFile>) -> anyhow::Result<ExitCode> {
    let server = Server::bind(config).await?;
    for line in server.settings() {
        tracing::info!("{line}");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone(), server.reload_handle(), log_file));
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
/// SIGHUP: reload certificates.
async fn watch_signals(shutdown: CancellationToken, reload: Arc<Notify>, log_file: Option<LogFile>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let name = loop {
        tokio::select! {
            _ = int.recv() => break "SIGINT",
            _ = term.recv() => break "SIGTERM",
            _ = hup.recv() => {
                tracing::info!("SIGHUP received, reloading");
                if let Some(file) = &log_file
                    && let Err(e) = file.reopen()
                {
                    tracing::error!("cannot reopen the log file: {e}");
                }
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
    std::process::exit(1);
}

/// The `--log-file`, reopened on SIGHUP so that logrotate can move it away.
#[derive(Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = Self::open_file(path)?;
        Ok(Self { path: path.to_owned(), file: Arc::new(Mutex::new(file)) })
    }

    fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().create(true).append(true).open(path)
    }

    fn reopen(&self) -> std::io::Result<()> {
        let fresh = Self::open_file(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        tracing::info!("log file {} reopened", self.path.display());
        Ok(())
    }
}

impl std::io::Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = &'a LogFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Logs to stderr or `--log-file` (as text, or as JSON lines with `--log-format json`), and
/// to `--syslog` as well (always text: syslog has its own structure).
fn init_logging(log: &LogOptions) -> anyhow::Result<Option<LogFile>> {
    use anyhow::Context as _;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if log.verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("WEBSOCKIFY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let syslog = match &log.syslog {
        Some(dest) => Some(
            websockify::syslog::Syslog::connect(dest, log.daemon, log.legacy_syslog)
                .with_context(|| format!("cannot reach syslog at {dest}"))?,
        ),
        None => None,
    };
    let syslog_layer = syslog.map(|s| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_writer(s)
    });
    let registry = tracing_subscriber::registry().with(filter).with(syslog_layer);
    let file = match &log.log_file {
        Some(path) => Some(LogFile::open(path).with_context(|| format!("cannot open log file {}", path.display()))?),
        None => None,
    };
    let writer = match &file {
        Some(file) => BoxMakeWriter::new(file.clone()),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    if log.json {
        // One object per line: timestamp, level, the event's fields (message included) at
        // the top level, and the connection's span (`conn`: id, peer, client) under "span".
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(writer);
        registry.with(layer).init();
    } else {
        let ansi = file.is_none() && std::io::stderr().is_terminal();
        registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_target(false).with_writer(writer)).init();
    }
    Ok(file)
}
