//! The token sources' text parsers: `TokenFile` lines (`token: host:port`), and the token
//! used as a file name inside a `TokenFileName` / `UnixDomainSocketDirectory` directory.
//!
//! Checked, for every line of the input (split as `TokenFile` splits a file): blank lines
//! and `#` comments yield nothing; a parsed line has a non-empty token without surrounding
//! white space that occurs in the line before the separator, and a target that reads back
//! the same from its display form (so what the log prints is what is used); a line written
//! back as `token: target` parses to the same pair. For every line used as a token,
//! `resolve_inside` on a fixed directory (with a file, a subdirectory, and symlinks
//! leading out of it and back in) yields nothing or a path inside the directory; a token
//! that is not a plain file name (a separator, `.`/`..`, NUL, a leading dot) yields nothing.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use websockify::Target;
use websockify::admission::token::parse_target;
use websockify::admission::token::parsers::{resolve_inside, token_file_line};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        check_line(line);
        check_token(line);
    }
});

fn check_line(line: &str) {
    let parsed = match token_file_line(line) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    let blank_or_comment = line.trim().is_empty() || line.trim_end().starts_with('#');
    let Some((token, target)) = parsed else {
        assert!(blank_or_comment, "{line:?} yields nothing");
        return;
    };
    assert!(!blank_or_comment, "{line:?} is blank or a comment but yields {token:?}");
    assert!(!token.is_empty() && token.trim() == token, "token {token:?}");
    assert!(line.contains(&token), "token {token:?} not in {line:?}");
    if let Target::Tcp { .. } = &target {
        let shown = target.to_string();
        assert_eq!(parse_target(&shown).ok().as_ref(), Some(&target), "{shown:?} reads back differently");
    }
    // Tokens with ": " inside cannot be written back unambiguously; the rest must.
    if !token.contains(": ") && !token.contains(":\t") && !token.starts_with('#') {
        let again = match &target {
            Target::Tcp { .. } => format!("{token}: {target}"),
            Target::Unix(path) => format!("{token}: unix_socket:{}", path.display()),
        };
        if !matches!(&target, Target::Unix(p) if p.as_os_str().is_empty() || p.to_string_lossy().trim() != p.to_string_lossy())
        {
            assert_eq!(token_file_line(&again), Ok(Some((token.clone(), target.clone()))), "{again:?}");
        }
    }
}

fn check_token(token: &str) {
    let dir = fixture();
    let Some(real) = resolve_inside(dir, token) else { return };
    assert!(real.starts_with(dir), "{token:?} leads to {} outside {}", real.display(), dir.display());
    assert!(real != *dir, "{token:?} names the directory itself");
    let plain = !token.is_empty() && !token.starts_with('.') && !token.contains(['/', '\\', '\0']);
    assert!(plain, "{token:?} is not a plain file name but resolved to {}", real.display());
}

/// `<tmp>/websockify-fuzz-token-<pid>/{outside, dir/{vnc1, sub/, out -> ../outside, in -> vnc1}}`;
/// returns the canonical `dir`.
fn fixture() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("websockify-fuzz-token-{}", std::process::id()));
        let dir = base.join("dir");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(base.join("outside"), "secret:22\n").unwrap();
        std::fs::write(dir.join("vnc1"), "localhost:5901\n").unwrap();
        let _ = std::os::unix::fs::symlink(Path::new("../outside"), dir.join("out"));
        let _ = std::os::unix::fs::symlink(Path::new("vnc1"), dir.join("in"));
        dir.canonicalize().unwrap()
    })
}
