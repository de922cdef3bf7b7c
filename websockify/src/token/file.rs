//! File-based token plugins: `TokenFile` / `ReadOnlyTokenFile` (lines `token: host:port` in
//! a file or a directory of files), `TokenFileName` (a directory; the file named after the
//! token holds the target) and `UnixDomainSocketDirectory` (the token names a socket).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::{BoxFuture, TokenError, TokenResolver, parse_target};
use crate::config::Target;

/// How often `TokenFile` looks at modification times; between checks, lookups cost a
/// hash-map probe.
const RECHECK: Duration = Duration::from_secs(1);

/// `TokenFile` (sees edits) and `ReadOnlyTokenFile` (reads once, and on SIGHUP).
pub struct TokenFile {
    source: PathBuf,
    watch: bool,
    table: ArcSwap<HashMap<String, Target>>,
    state: Mutex<WatchState>,
}

struct WatchState {
    checked: Instant,
    stamps: Vec<(PathBuf, Option<SystemTime>)>,
}

impl TokenFile {
    /// Loads `source` (a file, or a directory whose files are all read). With `watch`,
    /// edits are picked up without a restart.
    pub fn new(source: &str, watch: bool) -> Result<Self, TokenError> {
        let source = PathBuf::from(source);
        let (table, stamps) = load(&source)?;
        Ok(Self {
            source,
            watch,
            table: ArcSwap::from_pointee(table),
            state: Mutex::new(WatchState { checked: Instant::now(), stamps }),
        })
    }

    /// Reloads if the files changed (or files came or went) since the last load.
    fn refresh(&self) {
        let mut state = self.state.lock().expect("token file state");
        if state.checked.elapsed() < RECHECK {
            return;
        }
        state.checked = Instant::now();
        if stamps(&self.source) == state.stamps {
            return;
        }
        match load(&self.source) {
            Ok((table, stamps)) => {
                tracing::info!("token file {} reloaded: {} token(s)", self.source.display(), table.len());
                self.table.store(Arc::new(table));
                state.stamps = stamps;
            }
            // Keep serving the last good table; say why once per change.
            Err(e) => {
                tracing::error!("token file reload failed, keeping the previous tokens: {e}");
                state.stamps = stamps(&self.source);
            }
        }
    }
}

impl TokenResolver for TokenFile {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        if self.watch {
            self.refresh();
        }
        let found = self.table.load().get(token).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn reload(&self) -> Result<(), TokenError> {
        let (table, stamps) = load(&self.source)?;
        self.table.store(Arc::new(table));
        self.state.lock().expect("token file state").stamps = stamps;
        Ok(())
    }

    fn describe(&self) -> String {
        let kind = if self.watch { "TokenFile" } else { "ReadOnlyTokenFile" };
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

fn stamps(source: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    files(source)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
            (p, t)
        })
        .collect()
}

type Loaded = (HashMap<String, Target>, Vec<(PathBuf, Option<SystemTime>)>);

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
    dir: PathBuf,
}

impl TokenFileName {
    pub fn new(source: &str) -> Result<Self, TokenError> {
        Ok(Self { dir: token_dir("TokenFileName", source)? })
    }
}

/// The canonical form of a plugin's directory, so that containment checks are exact.
fn token_dir(plugin: &str, source: &str) -> Result<PathBuf, TokenError> {
    let needs = |why: String| TokenError::Config(format!("{plugin} needs a directory: {source}{why}"));
    let dir = PathBuf::from(source).canonicalize().map_err(|e| needs(format!(": {e}")))?;
    if !dir.is_dir() {
        return Err(needs(String::new()));
    }
    Ok(dir)
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
            let Some(real) = resolve_inside(&self.dir, token).filter(|p| p.is_file()) else { return Ok(None) };
            let text = tokio::fs::read_to_string(&real)
                .await
                .map_err(|e| TokenError::Unavailable(format!("{}/[{}]: {e}", self.dir.display(), super::id(token))))?;
            parse_target(&text).map(Some)
        })
    }

    fn describe(&self) -> String {
        format!("TokenFileName {}", self.dir.display())
    }
}

/// `UnixDomainSocketDirectory`: the token names a UNIX socket inside the directory.
pub struct UnixDomainSocketDirectory {
    dir: PathBuf,
}

impl UnixDomainSocketDirectory {
    pub fn new(source: &str) -> Result<Self, TokenError> {
        Ok(Self { dir: token_dir("UnixDomainSocketDirectory", source)? })
    }
}

impl TokenResolver for UnixDomainSocketDirectory {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move {
            use std::os::unix::fs::FileTypeExt;
            let socket = resolve_inside(&self.dir, token)
                .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()));
            Ok(socket.map(Target::Unix))
        })
    }

    fn describe(&self) -> String {
        format!("UnixDomainSocketDirectory {}", self.dir.display())
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
