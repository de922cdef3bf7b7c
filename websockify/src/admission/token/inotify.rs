//! Watching a token file or directory with inotify (`TokenFile` under
//! `--revoke-live-sessions`), so that a token removed from the file ends its sessions once
//! the file is written, not at the next periodic check.
//!
//! One inotify descriptor and one task per resolver, read through the runtime's reactor
//! (no thread). What is watched:
//!
//! - the source's parent directory, for the source's own name: a file replaced by a rename
//!   (how editors, `install` and `sed -i` write), deleted, re-created, closed after a
//!   write; for every name when the source is a symlink, whose target may be switched by
//!   renaming another entry (a Kubernetes volume swaps its `..data` link);
//! - a source that is a directory, for every entry: files written, created, deleted,
//!   moved in or out (watched again when such a directory appears or is replaced).
//!
//! A write is seen when the writer closes the file (`IN_CLOSE_WRITE`), not at each
//! `write(2)`: a file read half-written could lack tokens that are still valid and end
//! their sessions. A writer that keeps the file open, and changes made by another host on
//! a network file system (inotify does not see them), are left to the periodic check.

use std::ffi::OsString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::net::unix::pipe;

use super::changes::ChangeSender;

/// The events that can change what a source holds (see the module documentation for why
/// not `IN_MODIFY`).
const EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// What a watch shares with its resolver's lookups.
#[derive(Debug, Default)]
pub struct Flags {
    /// Something changed since the resolver last read its source: read it again (even if
    /// its stamps look the same: a rewrite of the same length in the same clock tick).
    pub dirty: AtomicBool,
    /// The watch is set up and working (else the resolver checks its files periodically).
    pub up: AtomicBool,
}

/// Starts watching `source`, reporting every change to `tx` (and in `flags`) until `tx`
/// is closed. Fails at once if the watch cannot be set up: no inotify instance or watch
/// left (`fs.inotify.max_user_instances`, `max_user_watches`), no parent directory.
pub fn watch(source: &Path, flags: Arc<Flags>, tx: ChangeSender) -> io::Result<()> {
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
    let mut watches = Watches::new(source, fd.as_fd())?;
    // tokio's pipe receiver registers any readable descriptor with the runtime (an inotify
    // one too): its readiness without `AsyncFd`, whose registration is `unsafe` now.
    let fd = pipe::Receiver::from_owned_fd_unchecked(fd)?;
    flags.up.store(true, Ordering::Release);
    tokio::spawn(async move {
        let why = tokio::select! {
            () = tx.closed() => return,
            why = run(&fd, &mut watches, &flags, &tx) => why,
        };
        flags.up.store(false, Ordering::Release);
        flags.dirty.store(true, Ordering::Release);
        tx.all();
        tracing::warn!(
            "token file {}: no longer watched ({why}); its files are looked at every second instead",
            watches.source.display()
        );
    });
    Ok(())
}

/// Reads events until the watch is lost; returns why.
async fn run(fd: &pipe::Receiver, watches: &mut Watches, flags: &Flags, tx: &ChangeSender) -> String {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    loop {
        if let Err(e) = fd.readable().await {
            return format!("waiting for inotify events: {e}");
        }
        let mut changed = false;
        let mut lost = None;
        // Reads every event queued; the closure ends in `WouldBlock`, which tells the
        // runtime that the descriptor must be waited for again.
        let read = fd.try_io(|| {
            let mut reader = inotify::Reader::new(fd.as_fd(), &mut buf);
            loop {
                match reader.next() {
                    Ok(event) => match watches.event(&event, fd.as_fd()) {
                        Seen::Change => changed = true,
                        Seen::Nothing => {}
                        Seen::Lost(why) => {
                            lost = Some(why);
                            return Ok(());
                        }
                    },
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
        });
        if let Some(why) = lost {
            return why;
        }
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return format!("reading inotify events: {e}"),
        }
        if changed {
            flags.dirty.store(true, Ordering::Release);
            tx.all();
        }
    }
}

/// What one event means.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Change,
    Nothing,
    Lost(String),
}

/// The watch descriptors of one source.
struct Watches {
    source: PathBuf,
    /// The source's name in its parent directory.
    name: OsString,
    /// Every entry of the parent counts, not only `name` (the source is a symlink).
    every_name: bool,
    parent: i32,
    /// The source itself, while it is a directory.
    dir: Option<i32>,
}

impl Watches {
    fn new(source: &Path, fd: BorrowedFd<'_>) -> io::Result<Self> {
        let name = source
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the source has no file name"))?
            .to_owned();
        let parent = match source.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent = inotify::add_watch(fd, parent, EVENTS)?;
        let mut watches = Self { source: source.to_owned(), name, every_name: source.is_symlink(), parent, dir: None };
        watches.watch_dir(fd)?;
        Ok(watches)
    }

    /// Watches the source itself if it is a directory (again when one appears in its place).
    fn watch_dir(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        if self.source.is_dir() {
            self.dir = Some(inotify::add_watch(fd, &self.source, EVENTS)?);
        }
        Ok(())
    }

    fn event(&mut self, event: &inotify::Event<'_>, fd: BorrowedFd<'_>) -> Seen {
        let what = event.events();
        if what.contains(ReadFlags::QUEUE_OVERFLOW) {
            return Seen::Change;
        }
        if event.wd() == self.parent {
            if what.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) {
                return Seen::Lost("its directory was removed or moved".to_owned());
            }
            let ours = event.file_name().is_some_and(|n| n.to_bytes() == self.name.as_bytes());
            if ours && what.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
                if let Err(e) = self.watch_dir(fd) {
                    return Seen::Lost(format!("watching the new directory: {e}"));
                }
            }
            return if ours || self.every_name { Seen::Change } else { Seen::Nothing };
        }
        if Some(event.wd()) == self.dir {
            if what.contains(ReadFlags::IGNORED) {
                self.dir = None;
            } else if what.contains(ReadFlags::MOVE_SELF) {
                // Moved away: what is at the source's path now is seen from the parent.
                let _ = inotify::remove_watch(fd, event.wd());
            }
            return Seen::Change;
        }
        Seen::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wsfy-inotify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Waits for a report; returns whether one came within `limit`.
    async fn reported(rx: &mut super::super::changes::Changes, flags: &Flags, limit: Duration) -> bool {
        let got = tokio::time::timeout(limit, rx.next()).await.is_ok();
        got && flags.dirty.swap(false, Ordering::AcqRel)
    }

    #[tokio::test]
    async fn file_replaced_deleted_and_recreated() {
        let dir = tempdir("file");
        let file = dir.join("tokens");
        std::fs::write(&file, "a: h:1\n").unwrap();
        let flags = Arc::new(Flags::default());
        let (tx, mut rx) = super::super::changes::channel();
        watch(&file, flags.clone(), tx).unwrap();
        assert!(flags.up.load(Ordering::Acquire));
        let soon = Duration::from_secs(2);

        // Another file in the same directory: not ours.
        std::fs::write(dir.join("other"), "x").unwrap();
        assert!(!reported(&mut rx, &flags, Duration::from_millis(200)).await);
        // Written in place, replaced by a rename, deleted, created again.
        std::fs::write(&file, "b: h:2\n").unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "written");
        std::fs::write(dir.join(".tokens.tmp"), "c: h:3\n").unwrap();
        std::fs::rename(dir.join(".tokens.tmp"), &file).unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "renamed over");
        std::fs::remove_file(&file).unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "deleted");
        std::fs::write(&file, "d: h:4\n").unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "created");

        // The directory goes: the watch is lost, said, and the periodic check takes over.
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!flags.up.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn directory_entries_and_a_directory_that_appears_later() {
        let root = tempdir("dir");
        let dir = root.join("tokens.d");
        let flags = Arc::new(Flags::default());
        let (tx, mut rx) = super::super::changes::channel();
        watch(&dir, flags.clone(), tx).unwrap();
        let soon = Duration::from_secs(2);
        std::fs::create_dir(&dir).unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "appeared");
        std::fs::write(dir.join("one"), "a: h:1\n").unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "a file in it");
        std::fs::remove_file(dir.join("one")).unwrap();
        assert!(reported(&mut rx, &flags, soon).await, "removed");
        drop(rx);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn no_parent_directory_is_an_error() {
        let fd = inotify::init(CreateFlags::CLOEXEC).unwrap();
        assert!(Watches::new(Path::new("/nonexistent-wsfy/dir/tokens"), fd.as_fd()).is_err());
    }
}
