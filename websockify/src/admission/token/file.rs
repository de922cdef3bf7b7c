//! File-based token plugins: `TokenFile` / `ReadOnlyTokenFile` (lines `token: host:port` in
//! a file or a directory of files), `TokenFileName` (a directory; the file named after the
//! token holds the target) and `UnixDomainSocketDirectory` (the token names a socket).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::changes::{self, Changes};
use super::inotify;
use super::{BoxFuture, TokenError, TokenResolver, parse_target};
use crate::outbound::Target;

/// How often `TokenFile` looks at the files' stamps on a hit; between checks, a hit costs
/// a hash-map probe. A miss always looks (see [`TokenFile::lookup`]), so a token written
/// before its lookup is found at once; this bounds how long a removed token still works
/// for a new session, and, when the files cannot be watched, for a live one.
const RECHECK: Duration = Duration::from_secs(1);

/// `TokenFile` (sees edits) and `ReadOnlyTokenFile` (reads once, and on SIGHUP).
pub struct TokenFile {
    source: PathBuf,
    watch: bool,
    table: ArcSwap<HashMap<String, Target>>,
    state: Mutex<WatchState>,
    /// Set by the inotify watch (`--revoke-live-sessions`), when there is one.
    notified: Arc<inotify::Flags>,
}

/// How much [`TokenFile::refresh`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresh {
    /// The stamps, if [`RECHECK`] has passed since the last look.
    IfDue,
    /// The stamps, now.
    Now,
    /// The files, now: the watch saw them change (their stamps may not tell).
    Read,
}

struct WatchState {
    checked: Instant,
    stamps: Vec<(PathBuf, Option<Stamp>)>,
}

/// What tells a file changed: modification time (in ticks of the kernel's coarse clock, so
/// not enough alone: a token appended in the same tick as the last read keeps the time),
/// size (an append changes it) and inode (a file replaced by a rename).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl TokenFile {
    /// Loads `source` (a file, or a directory whose files are all read). With `watch`,
    /// edits are picked up without a restart.
    ///
    /// A source that does not exist yet is not an error (a portal may create it later, as
    /// upstream allows): the plugin starts with no tokens, says so, and reads the source
    /// when it appears.
    pub fn new(source: &str, watch: bool) -> Result<Self, TokenError> {
        let source = PathBuf::from(source);
        let (table, stamps) = match std::fs::symlink_metadata(&source) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    "token source {} does not exist yet: no token is found until it appears",
                    source.display()
                );
                (HashMap::new(), stamps(&source))
            }
            _ => load(&source)?,
        };
        Ok(Self {
            source,
            watch,
            table: ArcSwap::from_pointee(table),
            state: Mutex::new(WatchState { checked: Instant::now(), stamps }),
            notified: Arc::default(),
        })
    }

    /// Reloads if the files changed (or files came or went) since the last load; with
    /// [`Refresh::IfDue`], only once per [`RECHECK`]. Returns whether the table changed.
    fn refresh(&self, how: Refresh) -> bool {
        let mut state = self.state.lock().expect("token file state");
        if how == Refresh::IfDue && state.checked.elapsed() < RECHECK {
            return false;
        }
        state.checked = Instant::now();
        if how != Refresh::Read && stamps(&self.source) == state.stamps {
            return false;
        }
        match load(&self.source) {
            // Read on a watch event that changed nothing here (an unrelated entry of the
            // directory, a `touch`): nothing to say.
            Ok((table, stamps)) if *self.table.load_full() == table => {
                state.stamps = stamps;
                false
            }
            Ok((table, stamps)) => {
                tracing::info!("token file {} reloaded: {} token(s)", self.source.display(), table.len());
                self.table.store(Arc::new(table));
                state.stamps = stamps;
                true
            }
            // Keep serving the last good table; say why once per change.
            Err(e) => {
                tracing::error!("token file reload failed, keeping the previous tokens: {e}");
                state.stamps = stamps(&self.source);
                false
            }
        }
    }
}

impl TokenFile {
    /// Whether the source existed at the last look.
    fn loaded(&self) -> bool {
        self.state.lock().expect("token file state").stamps.iter().any(|(_, s)| s.is_some()) || self.source.is_dir()
    }
}

impl TokenResolver for TokenFile {
    /// A hit looks at the files at most once per `RECHECK`, and reads them if the watch
    /// saw them change since; a miss looks at once (a few `stat` calls, no read unless
    /// something changed), so that a portal that writes a token and opens the console at
    /// once never gets a 404 (whether or not the watch has seen the write yet).
    /// `ReadOnlyTokenFile` looks only while its source has not appeared yet.
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        if self.watch {
            // Taken before reading, so that a change during the read is read next time.
            let changed = self.notified.dirty.swap(false, Ordering::AcqRel);
            self.refresh(if changed { Refresh::Read } else { Refresh::IfDue });
        }
        let mut found = self.table.load().get(token).cloned();
        if found.is_none() && (self.watch || !self.loaded()) && self.refresh(Refresh::Now) {
            found = self.table.load().get(token).cloned();
        }
        Box::pin(async move { Ok(found) })
    }

    /// Every second while the files are not watched; a watched file's changes are
    /// reported at once ([`changes`](TokenResolver::changes)).
    fn recheck_interval(&self) -> Option<Duration> {
        (self.watch && !self.notified.up.load(Ordering::Acquire)).then_some(RECHECK)
    }

    /// `TokenFile` only: watches the file, or the directory, with inotify. If it cannot
    /// (no inotify instance or watch left), says so once and the files are looked at every
    /// second.
    fn changes(&self, _fallback: Duration) -> Option<Changes> {
        if !self.watch {
            return None;
        }
        let source = self.source.display();
        tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = changes::channel();
        match inotify::watch(&self.source, self.notified.clone(), tx) {
            Ok(()) => {
                tracing::info!("token file {source}: watched (inotify): a removed token's sessions end at once");
                Some(rx)
            }
            Err(e) => {
                tracing::warn!(
                    "token file {source}: cannot watch it for changes ({e}); a removed token's sessions end within \
                     a second (its files are looked at every second)"
                );
                None
            }
        }
    }

    fn reload(&self) -> Result<(), TokenError> {
        let (table, stamps) = load(&self.source)?;
        self.table.store(Arc::new(table));
        self.state.lock().expect("token file state").stamps = stamps;
        Ok(())
    }

    fn describe(&self) -> String {
        let kind = if self.watch { "TokenFile" } else { "ReadOnlyTokenFile" };
        if !self.loaded() {
            return format!("{kind} {} (does not exist yet)", self.source.display());
        }
        format!("{kind} {} ({} tokens)", self.source.display(), self.table.load().len())
    }
}

/// The files a source stands for: itself, or the regular files of a directory (sorted,
/// hidden files skipped).
fn files(source: &Path) -> Result<Vec<PathBuf>, TokenError> {
    if !source.is_dir() {
        return Ok(vec![source.to_owned()]);
    }
    let entries = std::fs::read_dir(source)
        .map_err(|e| TokenError::Config(format!("token directory {}: {e}", source.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    Ok(files)
}

fn stamps(source: &Path) -> Vec<(PathBuf, Option<Stamp>)> {
    use std::os::unix::fs::MetadataExt as _;
    files(source)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let stamp =
                std::fs::metadata(&p).ok().map(|m| Stamp { modified: m.modified().ok(), len: m.len(), inode: m.ino() });
            (p, stamp)
        })
        .collect()
}

type Loaded = (HashMap<String, Target>, Vec<(PathBuf, Option<Stamp>)>);

fn load(source: &Path) -> Result<Loaded, TokenError> {
    let stamps = stamps(source);
    let mut table = HashMap::new();
    for path in files(source)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TokenError::Config(format!("token file {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some((token, target))) => {
                    table.insert(token, target);
                }
                Ok(None) => {}
                // As upstream: a bad line is reported and skipped, the others still serve.
                Err(e) => tracing::error!("{}:{}: {e}", path.display(), n + 1),
            }
        }
    }
    Ok((table, stamps))
}

/// One line: `token: target` where the separator is a colon followed by a space or tab.
/// Blank lines and `#` comments yield nothing. Public for the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn parse_line(line: &str) -> Result<Option<(String, Target)>, String> {
    let trimmed = line.trim_end();
    if trimmed.trim().is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    // The separator is the first ":" followed by white space ("tok: ::1:5900" splits at
    // the first one; IPv6 colons are never followed by a space).
    let sep = trimmed.match_indices(':').map(|(i, _)| i).find(|&i| trimmed[i + 1..].starts_with([' ', '\t']));
    let Some(i) = sep else { return Err(format!("syntax error, expected `token: host:port`: {trimmed:?}")) };
    let (token, target) = (trimmed[..i].trim(), trimmed[i + 1..].trim());
    if token.is_empty() {
        return Err("empty token".into());
    }
    let target = parse_target(target).map_err(|e| e.to_string())?;
    Ok(Some((token.to_owned(), target)))
}

/// Whether a token can safely name a file directly inside a directory: no separators, no
/// `.`/`..`, no NUL, not hidden.
fn safe_file_name(token: &str) -> bool {
    !token.is_empty() && !token.starts_with('.') && !token.contains(['/', '\\', '\0']) && token.len() <= 255
}

/// `TokenFileName`: the directory's file named after the token holds `host:port`.
pub struct TokenFileName {
    dir: TokenDir,
}

impl TokenFileName {
    pub fn new(source: &str) -> Result<Self, TokenError> {
        Ok(Self { dir: TokenDir::new("TokenFileName", source)? })
    }
}

/// A plugin's directory in its canonical form, so that containment checks are exact. One
/// that does not exist yet at start is looked for again at each lookup until it appears
/// (a portal may create it after the proxy starts, as upstream allows).
struct TokenDir {
    given: PathBuf,
    canonical: std::sync::OnceLock<PathBuf>,
}

impl TokenDir {
    fn new(plugin: &str, source: &str) -> Result<Self, TokenError> {
        let needs = |why: String| TokenError::Config(format!("{plugin} needs a directory: {source}{why}"));
        let dir = Self { given: PathBuf::from(source), canonical: std::sync::OnceLock::new() };
        match dir.given.canonicalize() {
            Ok(real) if real.is_dir() => {
                let _ = dir.canonical.set(real);
            }
            Ok(_) => return Err(needs(String::new())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("{plugin}: directory {source} does not exist yet: no token is found until it appears")
            }
            Err(e) => return Err(needs(format!(": {e}"))),
        }
        Ok(dir)
    }

    /// `--revoke-live-sessions`: watches the directory with inotify, so that a file (a
    /// token) removed or changed is reported at once. Lookups read the directory afresh
    /// anyway, so nothing else changes. Without the directory (not there yet) or a watch
    /// (inotify limits), the periodic check (`--revoke-check-interval`) does.
    fn changes(&self, plugin: &str) -> Option<Changes> {
        tokio::runtime::Handle::try_current().ok()?;
        let Some(dir) = self.path() else {
            tracing::warn!(
                "{plugin} {self}: not watched (it does not exist yet); revoked tokens are checked every \
                 --revoke-check-interval"
            );
            return None;
        };
        let (tx, rx) = changes::channel();
        match inotify::watch(dir, Arc::default(), tx) {
            Ok(()) => {
                tracing::info!("{plugin} {self}: watched (inotify): a removed token's sessions end at once");
                Some(rx)
            }
            Err(e) => {
                tracing::warn!(
                    "{plugin} {self}: cannot watch it for changes ({e}); revoked tokens are checked every \
                     --revoke-check-interval"
                );
                None
            }
        }
    }

    /// The canonical directory, once it exists.
    fn path(&self) -> Option<&Path> {
        if let Some(dir) = self.canonical.get() {
            return Some(dir);
        }
        let real = self.given.canonicalize().ok().filter(|d| d.is_dir())?;
        Some(self.canonical.get_or_init(|| real))
    }
}

impl std::fmt::Display for TokenDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.canonical.get() {
            Some(dir) => dir.display().fmt(f),
            None => write!(f, "{} (does not exist yet)", self.given.display()),
        }
    }
}

/// The canonical path a token names inside `dir`, or `None` if the token is not a plain
/// file name, names nothing, or leads (through a symlink) out of the directory. Public for
/// the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn resolve_inside(dir: &Path, token: &str) -> Option<PathBuf> {
    if !safe_file_name(token) {
        return None;
    }
    let real = dir.join(token).canonicalize().ok()?;
    real.starts_with(dir).then_some(real)
}

impl TokenResolver for TokenFileName {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move {
            let Some(dir) = self.dir.path() else { return Ok(None) };
            let Some(real) = resolve_inside(dir, token).filter(|p| p.is_file()) else { return Ok(None) };
            let text = tokio::fs::read_to_string(&real)
                .await
                .map_err(|e| TokenError::Unavailable(format!("{}/[{}]: {e}", dir.display(), super::id(token))))?;
            parse_target(&text).map(Some)
        })
    }

    fn changes(&self, _fallback: Duration) -> Option<Changes> {
        self.dir.changes("TokenFileName")
    }

    fn describe(&self) -> String {
        format!("TokenFileName {}", self.dir)
    }
}

/// `UnixDomainSocketDirectory`: the token names a UNIX socket inside the directory.
pub struct UnixDomainSocketDirectory {
    dir: TokenDir,
}

impl UnixDomainSocketDirectory {
    pub fn new(source: &str) -> Result<Self, TokenError> {
        Ok(Self { dir: TokenDir::new("UnixDomainSocketDirectory", source)? })
    }
}

impl TokenResolver for UnixDomainSocketDirectory {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move {
            use std::os::unix::fs::FileTypeExt;
            let Some(dir) = self.dir.path() else { return Ok(None) };
            let socket =
                resolve_inside(dir, token).filter(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()));
            Ok(socket.map(Target::Unix))
        })
    }

    fn changes(&self, _fallback: Duration) -> Option<Changes> {
        self.dir.changes("UnixDomainSocketDirectory")
    }

    fn describe(&self) -> String {
        format!("UnixDomainSocketDirectory {}", self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        let t = |host: &str, port| Target::Tcp { host: host.into(), port };
        type Want = Result<Option<(&'static str, Target)>, ()>;
        let cases: &[(&str, Want)] = &[
            ("vm1: 10.0.0.1:5900", Ok(Some(("vm1", t("10.0.0.1", 5900))))),
            ("vm2:\tvnc.local:5901", Ok(Some(("vm2", t("vnc.local", 5901))))),
            ("v6: ::1:5900", Ok(Some(("v6", t("::1", 5900))))),
            ("v6b: [::1]:5900  ", Ok(Some(("v6b", t("::1", 5900))))),
            ("sock: unix_socket:/run/vnc.sock", Ok(Some(("sock", Target::Unix("/run/vnc.sock".into()))))),
            ("# comment", Ok(None)),
            ("", Ok(None)),
            ("   ", Ok(None)),
            ("novalue:10.0.0.1:5900", Err(())),
            ("tok: nonsense", Err(())),
            (": h:1", Err(())),
        ];
        for (line, want) in cases {
            let got = parse_line(line);
            match (got, want) {
                (Ok(Some((tok, target))), Ok(Some((wt, wtarget)))) => {
                    assert_eq!((tok.as_str(), &target), (*wt, wtarget), "{line}")
                }
                (Ok(None), Ok(None)) | (Err(_), Err(())) => {}
                (got, want) => panic!("{line:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wsfy-tok-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn token_file_sees_edits_read_only_does_not() {
        let dir = tempdir("edits");
        let file = dir.join("tokens");
        std::fs::write(&file, "a: h:1\nbad line\n").unwrap();
        let live = TokenFile::new(file.to_str().unwrap(), true).unwrap();
        let frozen = TokenFile::new(file.to_str().unwrap(), false).unwrap();
        assert_eq!(live.lookup("a").await.unwrap(), Some(Target::Tcp { host: "h".into(), port: 1 }));
        assert_eq!(live.lookup("b").await.unwrap(), None);
        // A new modification time (file systems keep at least 1 s here).
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(&file, "a: h:2\nb: h:3\n").unwrap();
        assert_eq!(live.lookup("b").await.unwrap(), Some(Target::Tcp { host: "h".into(), port: 3 }));
        assert_eq!(frozen.lookup("b").await.unwrap(), None);
        frozen.reload().unwrap();
        assert_eq!(frozen.lookup("b").await.unwrap(), Some(Target::Tcp { host: "h".into(), port: 3 }));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Watched: a rewrite is read at the next lookup, even a hit within the second, and
    /// even one that keeps the file's length and modification tick.
    #[tokio::test]
    async fn a_watched_token_file_is_read_when_it_changes() {
        let dir = tempdir("watched");
        let file = dir.join("tokens");
        std::fs::write(&file, "a: h:1\n").unwrap();
        let tf = TokenFile::new(file.to_str().unwrap(), true).unwrap();
        assert_eq!(tf.recheck_interval(), Some(RECHECK), "not watched yet");
        let mut changes = tf.changes(Duration::from_secs(60)).expect("watched");
        assert_eq!(tf.recheck_interval(), None);
        assert!(tf.lookup("a").await.unwrap().is_some());
        std::fs::write(&file, "b: h:1\n").unwrap();
        tokio::time::timeout(Duration::from_secs(2), changes.next()).await.expect("a change report");
        assert_eq!(tf.lookup("a").await.unwrap(), None, "a hit re-reads after a report");
        assert!(tf.lookup("b").await.unwrap().is_some());
        assert!(TokenFile::new(file.to_str().unwrap(), false).unwrap().changes(Duration::from_secs(1)).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn token_file_directory() {
        let dir = tempdir("dir");
        std::fs::write(dir.join("one"), "a: h:1\n").unwrap();
        std::fs::write(dir.join("two"), "b: h:2\n").unwrap();
        std::fs::write(dir.join(".hidden"), "c: h:3\n").unwrap();
        let tf = TokenFile::new(dir.to_str().unwrap(), true).unwrap();
        assert!(tf.lookup("a").await.unwrap().is_some() && tf.lookup("b").await.unwrap().is_some());
        assert_eq!(tf.lookup("c").await.unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn token_file_name_never_escapes() {
        let root = tempdir("names");
        let dir = root.join("tokens");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vm1"), "10.0.0.1:5900\n").unwrap();
        std::fs::write(root.join("outside"), "evil:1\n").unwrap();
        std::os::unix::fs::symlink(root.join("outside"), dir.join("link")).unwrap();
        let p = TokenFileName::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(p.lookup("vm1").await.unwrap(), Some(Target::Tcp { host: "10.0.0.1".into(), port: 5900 }));
        for bad in ["../outside", "..", ".", "/etc/passwd", "a/../../outside", "link", "x\0y", "", "missing"] {
            assert_eq!(p.lookup(bad).await.unwrap(), None, "{bad:?}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn unix_socket_directory() {
        let root = tempdir("uds");
        let listener = std::os::unix::net::UnixListener::bind(root.join("vm1.sock")).unwrap();
        std::fs::write(root.join("plain"), "").unwrap();
        let p = UnixDomainSocketDirectory::new(root.to_str().unwrap()).unwrap();
        assert_eq!(
            p.lookup("vm1.sock").await.unwrap(),
            Some(Target::Unix(root.canonicalize().unwrap().join("vm1.sock")))
        );
        for bad in ["plain", "../vm1.sock", "missing", "/tmp"] {
            assert_eq!(p.lookup(bad).await.unwrap(), None, "{bad}");
        }
        drop(listener);
        let _ = std::fs::remove_dir_all(&root);
    }
}
