//! The documentation cannot drift from the program:
//!
//! - `docs/options.md` holds every option of `websockify --help`, generated from the same
//!   clap definition (`UPDATE_DOCS=1 cargo test -p websockify --test docs` rewrites it, as
//!   `scripts/options-doc` does); a flag added, renamed or reworded without it fails here;
//! - every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/*.md leads to
//!   a file that exists, and its `#fragment` to a heading of that file;
//! - the newest version in CHANGELOG.md is the package's, and `websockify --version` says it.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory as _;
use common::repo_root;

const BEGIN: &str = "<!-- generated from `websockify --help` by scripts/options-doc: edit the doc comments in websockify/src/cli/options.rs, not below -->";
const END: &str = "<!-- end of generated options -->";

/// The options of the command line as markdown: one section per help heading, one entry
/// per option with its flags, value, help text and default.
fn options_markdown() -> String {
    let mut cmd = websockify::cli::Cli::command();
    cmd.build();
    let mut sections: Vec<(String, String)> = Vec::new();
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() {
            continue;
        }
        let heading = arg.get_help_heading().unwrap_or(if arg.is_positional() { "Arguments" } else { "Options" });
        let mut flags = Vec::new();
        if let Some(short) = arg.get_short() {
            flags.push(format!("-{short}"));
        }
        if let Some(long) = arg.get_long() {
            flags.push(format!("--{long}"));
        }
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values()) && arg.get_action().takes_values();
        let value = match arg.get_value_names() {
            Some(names) if takes_value || arg.is_positional() => {
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" ")
            }
            _ => String::new(),
        };
        let title = if flags.is_empty() {
            format!("`{value}`")
        } else if value.is_empty() {
            flags.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        } else {
            flags.iter().map(|f| format!("`{f} {value}`")).collect::<Vec<_>>().join(", ")
        };
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let mut entry = format!("- {title}: {}", help.split_whitespace().collect::<Vec<_>>().join(" "));
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
            .collect();
        if !defaults.is_empty() && takes_value {
            let _ = write!(entry, " (default: `{}`)", defaults.join(" "));
        }
        entry.push('\n');
        match sections.iter_mut().find(|(h, _)| h == heading) {
            Some((_, body)) => body.push_str(&entry),
            None => sections.push((heading.to_owned(), entry)),
        }
    }
    let mut out = String::new();
    for (heading, body) in sections {
        let _ = write!(out, "\n### {heading}\n\n{body}");
    }
    out
}

#[test]
fn options_page_matches_the_command_line() {
    let path = repo_root().join("docs/options.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = page.split_once(BEGIN).expect("docs/options.md: the generated part's start marker");
    let (_, tail) = rest.split_once(END).expect("docs/options.md: the generated part's end marker");
    let generated = options_markdown();
    let expected = format!("{head}{BEGIN}\n{generated}\n{END}{tail}");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    assert!(
        page == expected,
        "docs/options.md is not what `websockify --help` says: run scripts/options-doc (UPDATE_DOCS=1 cargo test -p \
         websockify --test docs) and commit the result"
    );
    // And every long option of the real binary's --help is on the page.
    let help = Command::new(env!("CARGO_BIN_EXE_websockify")).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for word in help.split_whitespace() {
        let flag = word.trim_end_matches(',').split('=').next().unwrap_or_default();
        let is_option = flag.len() > 2
            && flag.starts_with("--")
            && flag[2..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if is_option && help.contains(&format!("  {flag}")) {
            assert!(page.contains(&format!("`{flag}")), "{flag} of --help is missing from docs/options.md");
        }
    }
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, punctuation other than `-`
/// and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a markdown text outside its code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push(line);
        }
    }
    out
}

fn anchors(text: &str) -> Vec<String> {
    prose_lines(text).into_iter().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

/// The relative links of a markdown text: `[text](target)`, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        // Inline code spans hold examples, not links.
        let line: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") && !target.is_empty() {
                out.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    out
}

fn doc_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"].iter().map(|f| root.join(f)).filter(|p| p.exists()).collect();
    for entry in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            files.push(entry.path());
        }
    }
    files.sort();
    files
}

#[test]
fn relative_links_resolve() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in doc_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for link in links(&text) {
            checked += 1;
            let (path, fragment) = link.split_once('#').map_or((link.as_str(), None), |(p, f)| (p, Some(f)));
            let target = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", file.display()));
                continue;
            }
            if let Some(fragment) = fragment
                && target.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&target).unwrap()).iter().any(|a| a == fragment)
            {
                broken.push(format!("{}: {link}: no such heading", file.display()));
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: is the link parser right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn link_checker_finds_a_broken_link_and_anchor() {
    let text = "see [a](docs/nope.md) and [b](#Real) `[c](ignored)`\n```\n[d](in/code.md)\n```\n# Real heading\n";
    assert_eq!(links(text), ["docs/nope.md", "#Real"]);
    assert_eq!(anchors(text), ["real-heading"]);
    assert_eq!(slug("Migrating from the Python websockify (0.13)"), "migrating-from-the-python-websockify-013");
}

#[test]
fn changelog_names_this_version() {
    let changelog = std::fs::read_to_string(repo_root().join("CHANGELOG.md")).unwrap();
    let newest = changelog
        .lines()
        .find_map(|l| l.strip_prefix("## [").and_then(|r| r.split(']').next()))
        .expect("a `## [VERSION]` section in CHANGELOG.md");
    assert_eq!(newest, env!("CARGO_PKG_VERSION"), "CHANGELOG.md's newest version and Cargo.toml's differ");
    let out = Command::new(env!("CARGO_BIN_EXE_websockify")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("websockify {newest}"));
    // The pip package (pyproject.toml) carries the same version.
    let pyproject = std::fs::read_to_string(repo_root().join("pyproject.toml")).unwrap();
    assert!(pyproject.contains(&format!("\nversion = \"{newest}\"\n")), "pyproject.toml's version is not {newest}");
}

#[test]
fn readme_is_a_front_door() {
    let size = std::fs::metadata(repo_root().join("README.md")).unwrap().len();
    assert!(size <= 12 * 1024, "README.md is {size} bytes: keep it a front door (12 KiB at most), the manual in docs/");
}
