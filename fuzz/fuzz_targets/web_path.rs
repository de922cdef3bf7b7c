//! The static web server's path resolution (`web::resolve`) and `Range` parsing.
//!
//! Input: byte 0 chooses (even: a request target, as a request line can carry it: no
//! controls or spaces; odd: a `Range` header whose next 8 bytes
//! are the file length). `resolve` runs against a fixed web root holding files, a
//! directory with and one without `index.html`, symlinks leading out of the root (to a
//! file and a directory beside it) and one staying inside.
//!
//! Checked: every file or directory answer is inside the root (canonical, so symlinks
//! followed); nothing beside the root is ever served; a redirect is a path with exactly one
//! leading slash (never `//host`, never a scheme), no ASCII control characters or spaces, and
//! resolves to something that is not another redirect (no loops); errors are 400, 403, 404
//! or 414. A satisfiable range lies within the file (`first <= last < len`).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use websockify::web::{RangeRequest, Resolved, parse_range, resolve};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        check_target(&String::from_utf8_lossy(rest));
    } else if rest.len() >= 8 {
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) >> (mode >> 2);
        check_range(&String::from_utf8_lossy(&rest[8..]), len);
    }
});

fn check_target(target: &str) {
    // What a request line can carry (httparse refuses controls and spaces in the target).
    if target.contains(|c: char| c <= ' ' || c == '\x7f') {
        return;
    }
    let (root, outside) = fixture();
    match resolve(root, target) {
        Resolved::File(path) | Resolved::Directory(path) => {
            assert!(path.starts_with(root), "{target:?} -> {} outside the root", path.display());
            assert!(!path.starts_with(outside), "{target:?} -> {}", path.display());
        }
        Resolved::Redirect(location) => {
            assert!(location.starts_with('/') && !location.starts_with("//"), "{target:?} -> {location:?}");
            assert!(!location.contains(|c: char| c.is_ascii_control() || c == ' '), "{target:?} -> {location:?}");
            assert!(location.ends_with('/') || location.contains("/?"), "{target:?} -> {location:?}");
            let again = resolve(root, &location);
            assert!(!matches!(again, Resolved::Redirect(_)), "{target:?} -> {location:?} -> {again:?}");
        }
        Resolved::Error(status, _) => assert!(matches!(status, 400 | 403 | 404 | 414), "{target:?} -> {status}"),
    }
}

fn check_range(header: &str, len: u64) {
    match parse_range(header, len) {
        RangeRequest::Partial(first, last) => {
            assert!(first <= last && last < len, "{header:?} of {len}: {first}-{last}")
        }
        RangeRequest::Full | RangeRequest::Unsatisfiable => {}
    }
}

/// `<tmp>/websockify-fuzz-web-<pid>/{outside/secret, secret.txt, root/...}`; returns the
/// canonical root and the canonical `outside` directory.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("websockify-fuzz-web-{}", std::process::id()));
        let root = base.join("root");
        for d in ["app", "app/core", "listing", "sp ace", "%41"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret"), "secret").unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        for f in ["index.html", "app/index.html", "app/core/rfb.js", "listing/a.txt", "sp ace/b c.txt", "%41/x"] {
            std::fs::write(root.join(f), f).unwrap();
        }
        let link = |to: &str, at: &str| {
            let _ = std::os::unix::fs::symlink(Path::new(to), root.join(at));
        };
        link("../outside", "out-dir");
        link("../secret.txt", "out-file");
        link("app/core", "in-dir");
        link("/", "abs");
        (root.canonicalize().unwrap(), base.join("outside").canonicalize().unwrap())
    })
}
