//! The `websockify` command: parse the command line, set up logging and signals, run the
//! server.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
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
    if let Err(e) = init_logging(&log) {
        eprintln!("websockify: {e:#}");
        return ExitCode::from(2);
    }
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
    match runtime.block_on(serve(*config)) {
        Ok(code) => code,
        Err(e) => {
            if log.log_file.is_some() {
                tracing::error!("{e}");
            }
            eprintln!("websockify: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the server; the exit code is the wrapped program's in `--wrap-mode exit`.
async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let server = Server::bind(config).await?;
    for line in server.settings() {
        tracing::info!("{line}");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone(), server.reload_handle()));
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
async fn watch_signals(shutdown: CancellationToken, reload: Arc<Notify>) {
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

fn init_logging(log: &LogOptions) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tracing_subscriber::EnvFilter;
    let default = if log.verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("WEBSOCKIFY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match &log.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder.with_ansi(false).with_writer(std::sync::Mutex::new(file)).init();
        }
        None => builder.with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init(),
    }
    Ok(())
}
