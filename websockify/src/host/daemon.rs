//! `-D`: becoming a daemon, and telling the shell that started it whether the daemon is
//! really serving.
//!
//! A daemon that forks before binding cannot report a taken port: its parent has already
//! exited 0. So the parent waits: it keeps the read end of a pipe whose write end the
//! daemon holds, and exits 0 only when the daemon writes that it is ready (its listeners
//! bound, its certificates loaded, its wrapped program started); a failure's message comes
//! through the same pipe and the parent prints it and exits 1. A daemon that dies before
//! either closes the pipe, which the parent reports too.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::Path;

const READY: &str = "ready\n";

/// The daemon's end of the pipe to its waiting parent.
#[derive(Debug)]
pub struct Readiness(Option<OwnedFd>);

impl Readiness {
    /// Tells the parent that the daemon serves: it exits 0.
    pub fn ready(&mut self) {
        self.send(READY);
    }

    /// Tells the parent why the daemon could not start: it prints `message` and exits 1.
    pub fn failed(&mut self, message: &str) {
        self.send(message);
    }

    fn send(&mut self, text: &str) {
        if let Some(fd) = self.0.take() {
            // The parent may be gone (killed): nothing else can be told then.
            let _ = std::fs::File::from(fd).write_all(text.as_bytes());
        }
    }
}

/// Forks into the background (before any thread exists: the runtime is built after this).
/// Returns in the daemon only; the parent waits for [`Readiness`] and exits with its
/// answer. `Err` in the process that called it (the daemon could not be made).
pub fn start(pid_file: Option<&Path>) -> Result<Readiness, String> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("cannot become a daemon: pipe: {e}"))?;
    let mut daemon =
        daemonize::Daemonize::new().working_directory(std::env::current_dir().unwrap_or_else(|_| "/".into()));
    if let Some(pid_file) = pid_file {
        daemon = daemon.pid_file(pid_file);
    }
    match daemon.execute() {
        daemonize::Outcome::Parent(Ok(_)) => {
            drop(write);
            std::process::exit(wait_for(read))
        }
        daemonize::Outcome::Parent(Err(e)) => Err(format!("cannot become a daemon: {e}")),
        daemonize::Outcome::Child(Ok(_)) => {
            drop(read);
            Ok(Readiness(Some(write)))
        }
        // stderr is /dev/null here: the parent says it.
        daemonize::Outcome::Child(Err(e)) => {
            Readiness(Some(write)).failed(&format!("cannot become a daemon: {e}"));
            std::process::exit(1)
        }
    }
}

/// The parent: waits until the daemon is ready (0) or has failed (1, its message printed).
fn wait_for(read: OwnedFd) -> i32 {
    let mut answer = String::new();
    let _ = std::fs::File::from(read).read_to_string(&mut answer);
    if answer == READY {
        return 0;
    }
    match answer.trim_end() {
        "" => eprintln!("websockify: the daemon exited before it was serving (see its log)"),
        message => eprintln!("websockify: {message}"),
    }
    1
}
