//! `--config FILE`: a TOML file holding command-line options under their long names.
//!
//! ```toml
//! listen = "6080"                # the positional [source_addr:]source_port
//! target = "vnc.internal:5900"   # the positional target_addr:target_port
//! heartbeat = 30
//! ssl-only = true                # or ssl_only
//! cert = "/etc/websockify/cert.pem"
//! wrap = ["vncserver", ":1"]     # -- PROGRAM ARGS
//! ```
//!
//! The file knows nothing of the options itself: it reads the clap [`Command`] to learn
//! each option's long name and kind, and turns the table into command-line tokens put
//! before the real ones. The command is built with `args_override_self`, so an option
//! given again on the command line wins; repeatable options are replaced, not extended.
//! An option added to the command line is thereby accepted in the file with no change here.

use std::ffi::{OsStr, OsString};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Options that only make sense on the command line (by clap id).
const COMMAND_LINE_ONLY: &[&str] = &["config", "check_config", "completions", "man", "help", "version"];

/// The positional arguments, which the file names.
const LISTEN: &str = "listen";
const TARGET: &str = "target";
const WRAP: &str = "wrap";

/// The options of one configuration file, ready to be put before the command line.
#[derive(Debug, Default)]
pub struct FileArgs {
    pub path: PathBuf,
    /// One entry per option, in file order.
    options: Vec<FileOption>,
    /// `listen`: the first positional argument, when the command line gives none.
    pub listen: Option<String>,
    /// `target`: the second positional argument, when the command line gives none.
    pub target: Option<String>,
    /// `wrap`: `-- PROGRAM ARGS`, when the command line gives none.
    pub wrap: Vec<OsString>,
}

#[derive(Debug)]
struct FileOption {
    /// The clap id of the option.
    id: String,
    /// Command-line tokens: `--name=value` once per value, or `--name` for a flag.
    tokens: Vec<OsString>,
    /// For repeatable options: how many values (or counts) the file gave.
    accumulated: Option<usize>,
}

/// What is wrong with a configuration file: one line, naming the file and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// The path given with `--config` (the last one wins, as for other options), found
/// before clap parses anything: the file's options must come first.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut found = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            found = rest.next().map(PathBuf::from);
        } else if let Some(value) = arg.as_bytes().strip_prefix(b"--config=") {
            found = Some(PathBuf::from(OsStr::from_bytes(value)));
        }
    }
    found
}

impl FileArgs {
    /// Reads and checks `path` against the options of `cmd`.
    /// A warning when the file holds a secret (`auth-source`, `key-password`, a TokenRedis
    /// source, which may carry the password) and other users may read it.
    pub fn secrets_readable_by_others(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&self.path).ok()?.permissions().mode();
        if mode & 0o004 == 0 {
            return None;
        }
        // A TokenRedis source holds a password in its fourth field, if any.
        let redis =
            self.options.iter().any(|o| {
                o.id == "token_plugin" && o.tokens.iter().any(|t| t.to_string_lossy().ends_with("TokenRedis"))
            }) && self.options.iter().any(|o| {
                o.id == "token_source"
                    && o.tokens.iter().any(|t| t.to_string_lossy().split(':').nth(3).is_some_and(|pw| !pw.is_empty()))
            });
        let secret = self
            .options
            .iter()
            .map(|o| o.id.as_str())
            .find(|id| matches!(*id, "auth_source" | "key_password") || (redis && *id == "token_source"))?;
        Some(format!(
            "{} holds a secret ({}) and is readable by every user (mode {:04o}): chmod o-r it",
            self.path.display(),
            secret.replace('_', "-"),
            mode & 0o7777
        ))
    }

    pub fn read(path: &Path, cmd: &Command) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError(format!("--config {}: {e}", path.display())))?;
        Self::parse(path, &text, cmd)
    }

    /// Checks `text` (the contents of `path`) against the options of `cmd`: unknown keys,
    /// wrong types, values the option's parser refuses, and options given twice.
    pub fn parse(path: &Path, text: &str, cmd: &Command) -> Result<Self, FileError> {
        let at = |span: Range<usize>| format!("{}:{}", path.display(), line_of(text, span.start));
        let table = DeTable::parse(text).map_err(|e| {
            let message = e.message().trim_end();
            match e.span() {
                Some(span) => {
                    // Name what is wrong (toml says "duplicate key", not which).
                    let what = text.get(span.clone()).unwrap_or_default().trim();
                    if what.is_empty() || what.contains('\n') || what.len() > 40 {
                        FileError(format!("{}: {message}", at(span)))
                    } else {
                        FileError(format!("{}: {message}: {what}", at(span)))
                    }
                }
                None => FileError(format!("{}: {message}", path.display())),
            }
        })?;
        let mut entries: Vec<(&Spanned<_>, &Spanned<DeValue>)> = table.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);

        let mut file = FileArgs { path: path.to_owned(), ..Default::default() };
        // Each option's key and line, to report the second of two spellings.
        let mut seen: Vec<(String, String, usize)> = Vec::new();
        for (key, value) in entries {
            let name = key.get_ref().as_ref();
            let place = at(key.span());
            let long = name.replace('_', "-");
            let Some(arg) = find_arg(cmd, &long) else {
                return Err(FileError(format!(
                    "{place}: unknown option {name:?} (keys are the long options of {} --help)",
                    cmd.get_name()
                )));
            };
            let id = arg.get_id().as_str().to_owned();
            if let Some((first, _, line)) = seen.iter().find(|(_, i, _)| *i == id) {
                return Err(FileError(format!("{place}: {name}: given twice (also as {first} on line {line})")));
            }
            seen.push((name.to_owned(), id.clone(), line_of(text, key.span().start)));
            if COMMAND_LINE_ONLY.contains(&id.as_str()) {
                return Err(FileError(format!("{place}: {name}: only allowed on the command line")));
            }
            let value_place = at(value.span());
            let err = |msg: String| FileError(format!("{value_place}: {name}: {msg}"));
            if arg.is_positional() {
                match long.as_str() {
                    LISTEN => file.listen = Some(scalar(value.get_ref(), arg).map_err(err)?),
                    TARGET => file.target = Some(scalar(value.get_ref(), arg).map_err(err)?),
                    _ => {
                        file.wrap = list(value.get_ref(), arg).map_err(err)?.into_iter().map(OsString::from).collect();
                        if file.wrap.is_empty() {
                            return Err(err("expected [\"PROGRAM\", \"ARG\", ...], found an empty array".into()));
                        }
                    }
                }
                continue;
            }
            let flag = format!("--{}", arg.get_long().unwrap_or(&long));
            let option = match arg.get_action() {
                ArgAction::SetTrue | ArgAction::SetFalse => {
                    let on = value.get_ref().as_bool().ok_or_else(|| err(expected("true or false", value)))?;
                    // false is the default: nothing to pass.
                    FileOption { id, tokens: if on { vec![flag.into()] } else { vec![] }, accumulated: None }
                }
                ArgAction::Count => {
                    let n = match value.get_ref() {
                        DeValue::Boolean(b) => usize::from(*b),
                        DeValue::Integer(i) => i
                            .as_str()
                            .parse::<u8>()
                            .ok()
                            .filter(|_| i.radix() == 10)
                            .map(usize::from)
                            .ok_or_else(|| err("expected a count from 0 to 255".into()))?,
                        _ => return Err(err(expected("a count or true/false", value))),
                    };
                    FileOption { id, tokens: vec![flag.into(); n], accumulated: Some(n) }
                }
                ArgAction::Append => {
                    let values = list(value.get_ref(), arg).map_err(err)?;
                    for v in &values {
                        check_value(cmd, arg, v).map_err(err)?;
                    }
                    let n = values.len();
                    let tokens = values.into_iter().map(|v| OsString::from(format!("{flag}={v}"))).collect();
                    FileOption { id, tokens, accumulated: Some(n) }
                }
                ArgAction::Set => {
                    let v = scalar(value.get_ref(), arg).map_err(err)?;
                    check_value(cmd, arg, &v).map_err(err)?;
                    // One token: a value that starts with '-' stays a value.
                    FileOption { id, tokens: vec![format!("{flag}={v}").into()], accumulated: None }
                }
                _ => return Err(FileError(format!("{place}: {name}: only allowed on the command line"))),
            };
            file.options.push(option);
        }
        Ok(file)
    }

    /// Parses the file's options followed by the real command line (`args`, program name
    /// first) with `cmd`. The command line wins: a single-valued option or flag given
    /// again overrides (`args_override_self`), and a repeatable one given on the command
    /// line replaces the file's values instead of adding to them.
    pub fn matches(&self, cmd: &Command, args: &[OsString]) -> Result<ArgMatches, clap::Error> {
        let cmd = cmd.clone().args_override_self(true);
        let mut skip: Vec<&str> = Vec::new();
        loop {
            let mut argv: Vec<OsString> = args.iter().take(1).cloned().collect();
            for option in self.options.iter().filter(|o| !skip.contains(&o.id.as_str())) {
                argv.extend(option.tokens.iter().cloned());
            }
            argv.extend(args.iter().skip(1).cloned());
            let matches = cmd.clone().try_get_matches_from(argv)?;
            let also_on_command_line: Vec<&str> = self
                .options
                .iter()
                .filter(|o| !skip.contains(&o.id.as_str()))
                .filter_map(|o| Some((o, o.accumulated?)))
                .filter(|(o, n)| given(&matches, &o.id) > *n)
                .map(|(o, _)| o.id.as_str())
                .collect();
            if also_on_command_line.is_empty() {
                return Ok(matches);
            }
            skip.extend(also_on_command_line);
        }
    }
}

/// How many values (or counts) `id` has in `matches`.
fn given(matches: &ArgMatches, id: &str) -> usize {
    if let Ok(Some(n)) = matches.try_get_one::<u8>(id) {
        return usize::from(*n);
    }
    matches.get_raw_occurrences(id).map_or(0, |o| o.flatten().count())
}

/// The argument a file key names: its long name (or a long alias), or a positional.
fn find_arg<'c>(cmd: &'c Command, long: &str) -> Option<&'c Arg> {
    let positional = match long {
        LISTEN => Some(0),
        TARGET => Some(1),
        WRAP => Some(usize::MAX),
        _ => None,
    };
    if let Some(index) = positional {
        let mut positionals = cmd.get_positionals();
        return if index == usize::MAX { positionals.find(|a| a.is_last_set()) } else { positionals.nth(index) };
    }
    cmd.get_arguments().find(|a| {
        !a.is_positional() && (a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long)))
    })
}

/// Runs the option's own value parser, so that a bad value is reported at its line.
/// (A command of that one option, as clap runs value parsers only while parsing.)
fn check_value(cmd: &Command, arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default().to_owned();
    let mut alone = Arg::new(arg.get_id().clone()).long(long.clone()).value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        alone = alone.value_names(names.iter().cloned());
    }
    let one = Command::new(cmd.get_name().to_owned()).arg(alone).no_binary_name(true);
    match one.try_get_matches_from([format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            // The first paragraph: the problem, and the possible values if there are some.
            let text = e.render().to_string();
            let lines: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            Err(lines.join(" ").trim_start_matches("error: ").to_owned())
        }
    }
}

/// A string or a decimal number, as the command line would spell it; a boolean too when
/// the option takes true or false as its value.
fn scalar(value: &DeValue, arg: &Arg) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Boolean(b) if arg.get_possible_values().iter().any(|p| p.get_name() == "true") => Ok(b.to_string()),
        DeValue::Integer(i) if i.radix() == 10 => Ok(i.as_str().to_owned()),
        DeValue::Integer(_) => Err("write the number in decimal, or as a string".into()),
        DeValue::Float(f) => Ok(f.as_str().to_owned()),
        other => Err(format!("expected a string or a number, found {}", other.type_str())),
    }
}

/// An array of strings or numbers; a single one counts as an array of one.
fn list(value: &DeValue, arg: &Arg) -> Result<Vec<String>, String> {
    match value {
        DeValue::Array(items) => items.iter().map(|v| scalar(v.get_ref(), arg)).collect(),
        other => scalar(other, arg)
            .map(|v| vec![v])
            .map_err(|_| format!("expected a string, a number or an array of them, found {}", other.type_str())),
    }
}

fn expected(what: &str, found: &Spanned<DeValue>) -> String {
    format!("expected {what}, found {}", found.get_ref().type_str())
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command with one option of each kind, independent of websockify's own.
    fn toy() -> Command {
        Command::new("toy")
            .arg(Arg::new("listen").value_name("LISTEN"))
            .arg(Arg::new("target").value_name("TARGET"))
            .arg(Arg::new("count").long("count").value_parser(clap::value_parser!(u32)))
            .arg(Arg::new("name").long("name"))
            .arg(Arg::new("on").long("on").action(ArgAction::SetTrue))
            .arg(Arg::new("peer").long("peer").action(ArgAction::Append))
            .arg(Arg::new("verbose").short('v').long("verbose").action(ArgAction::Count))
            .arg(Arg::new("config").long("config"))
            .arg(Arg::new("switch").long("switch").value_parser(clap::value_parser!(bool)))
            .arg(Arg::new("command").last(true).num_args(1..))
    }

    fn parse(text: &str) -> Result<FileArgs, String> {
        FileArgs::parse(Path::new("t.toml"), text, &toy()).map_err(|e| e.0)
    }

    fn matches(text: &str, args: &[&str]) -> ArgMatches {
        let file = parse(text).unwrap();
        let argv: Vec<OsString> = std::iter::once("toy").chain(args.iter().copied()).map(OsString::from).collect();
        file.matches(&toy(), &argv).unwrap()
    }

    fn strings(m: &ArgMatches, id: &str) -> Vec<String> {
        m.get_many::<String>(id).map(|v| v.cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn kinds_and_spellings() {
        let m = matches("count = 3\nname = \"x\"\non = true\npeer = [\"a\", 2]\nverbose = 2", &[]);
        assert_eq!(m.get_one::<u32>("count"), Some(&3));
        assert_eq!(strings(&m, "name"), ["x"]);
        assert!(m.get_flag("on"));
        assert_eq!(strings(&m, "peer"), ["a", "2"]);
        assert_eq!(m.get_count("verbose"), 2);
        let m = matches("peer = \"-solo\"\non = false\nname = \"-x\"", &[]);
        assert_eq!(strings(&m, "peer"), ["-solo"]);
        assert_eq!(strings(&m, "name"), ["-x"]);
        let m = matches("switch = false", &[]);
        assert_eq!(m.get_one::<bool>("switch"), Some(&false));
        assert!(!m.get_flag("on"));
        let f = parse("listen = 6080\ntarget = \"h:1\"\nwrap = [\"prog\", \"-x\"]").unwrap();
        assert_eq!(f.listen.as_deref(), Some("6080"));
        assert_eq!(f.target.as_deref(), Some("h:1"));
        assert_eq!(f.wrap, ["prog", "-x"]);
    }

    #[test]
    fn command_line_wins() {
        let text = "count = 3\nname = \"x\"\npeer = [\"a\", \"b\"]\nverbose = 2";
        let m = matches(text, &["--count", "4", "--name=y", "--peer", "c", "-v"]);
        assert_eq!(m.get_one::<u32>("count"), Some(&4));
        assert_eq!(strings(&m, "name"), ["y"]);
        assert_eq!(strings(&m, "peer"), ["c"]);
        assert_eq!(m.get_count("verbose"), 1);
        // Not given again: the file's values stay.
        let m = matches(text, &["--on"]);
        assert_eq!(strings(&m, "peer"), ["a", "b"]);
        assert_eq!(m.get_count("verbose"), 2);
    }

    #[test]
    fn one_line_errors() {
        for (text, expected) in [
            ("count = 1\nbogus = 2", "t.toml:2: unknown option \"bogus\""),
            ("on = \"yes\"", "t.toml:1: on: expected true or false, found string"),
            ("\n\ncount = \"x\"", "t.toml:3: count: invalid value 'x' for '--count <count>'"),
            ("count = true", "t.toml:1: count: expected a string or a number, found boolean"),
            ("count = 0x10", "t.toml:1: count: write the number in decimal"),
            ("name = [1]", "t.toml:1: name: expected a string or a number, found array"),
            ("[section]\nname = 1", "t.toml:1: unknown option \"section\""),
            ("config = \"x\"", "t.toml:1: config: only allowed on the command line"),
            ("on = true\non = false", "t.toml:2: duplicate key"),
            ("peer = 1\npeer_ = 2", "t.toml:2: unknown option"),
            ("count = 1\n\ncount-ish = 2", "t.toml:3: unknown option \"count-ish\""),
            ("name = \"a\"\nname = \"b\"", "t.toml:2: duplicate key"),
            ("name = \"unterminated", "t.toml:1: "),
            ("wrap = []", "t.toml:1: wrap: expected [\"PROGRAM\""),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{text:?}: {err}");
        }
        let mut cmd = toy();
        cmd = cmd.arg(Arg::new("dash_name").long("dash-name"));
        let err = FileArgs::parse(Path::new("t.toml"), "dash-name = 1\ndash_name = 2", &cmd).unwrap_err().0;
        assert_eq!(err, "t.toml:2: dash_name: given twice (also as dash-name on line 1)");
    }

    #[test]
    fn config_path_is_found_before_parsing() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(config_path(&args(&["w", "--config", "a.toml", "6080"])), Some("a.toml".into()));
        assert_eq!(config_path(&args(&["w", "--config=a", "--config=b"])), Some("b".into()));
        assert_eq!(config_path(&args(&["w", "6080", "--", "prog", "--config", "x"])), None);
        assert_eq!(config_path(&args(&["--config", "6080"])), None);
    }
}
