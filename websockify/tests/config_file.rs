//! `--config FILE`, `--check-config`, `--completions` and `--man`: every option of the
//! command line round-trips through a TOML file (found by walking the clap definition, so
//! an option added later is covered without touching this test), the command line
//! overrides the file, errors are one line naming the file and line, and a proxy started
//! from a file serves a real WebSocket client.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clap::{ArgAction, CommandFactory as _};
use common::pki::{Ca, TempDir};
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use websockify::cli::file::FileArgs;
use websockify::cli::{self, Cli, Parsed};
use websockify::config::{Listen, ListenAddr, Route, Target};

const BIN: &str = env!("CARGO_BIN_EXE_websockify");

/// The options that only make sense on the command line.
const COMMAND_LINE_ONLY: &[&str] = &["config", "check_config", "completions", "man", "help", "version"];

/// `Cli::command()` without the relations between options (requires, conflicts), so that
/// each option can be parsed alone. Everything else (names, kinds, value parsers) is the
/// real definition.
fn relaxed() -> clap::Command {
    let none = || clap::builder::Resettable::<clap::Id>::Reset;
    Cli::command()
        .mut_args(|a| a.requires(none()).conflicts_with(none()).overrides_with(none()).required(false).exclusive(false))
}

/// A value the option's own parser accepts.
fn sample(cmd: &clap::Command, long: &str) -> String {
    let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long)).unwrap();
    let mut candidates: Vec<String> = arg.get_possible_values().iter().map(|p| p.get_name().to_owned()).collect();
    let more = ["7", "600", "default", "some-value", "127.0.0.1", "127.0.0.1:9100", "10.0.0.0/8", "1.5", "v1"];
    candidates.extend(more.map(String::from));
    candidates
        .into_iter()
        .find(|v| cmd.clone().try_get_matches_from(["websockify", &format!("--{long}"), v]).is_ok())
        .unwrap_or_else(|| panic!("no sample value for --{long}: add one to this test"))
}

fn toml_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() { v.to_owned() } else { format!("{v:?}") }
}

fn file_matches(text: &str, cli_args: &[&str]) -> Result<clap::ArgMatches, String> {
    let file = FileArgs::parse(Path::new("t.toml"), text, &Cli::command()).map_err(|e| e.0)?;
    let argv: Vec<OsString> = std::iter::once("websockify").chain(cli_args.iter().copied()).map(Into::into).collect();
    file.matches(&relaxed(), &argv).map_err(|e| e.to_string())
}

fn raw(m: &clap::ArgMatches, id: &str) -> Vec<OsString> {
    m.get_raw(id).map(|v| v.map(OsString::from).collect()).unwrap_or_default()
}

#[test]
fn every_option_round_trips_through_the_file() {
    let cmd = relaxed();
    let mut checked = 0;
    for arg in Cli::command().get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_positional() || COMMAND_LINE_ONLY.contains(&id) {
            continue;
        }
        let long = arg.get_long().unwrap_or_else(|| panic!("{id} has no long name: it cannot be in a file"));
        let underscored = long.replace('-', "_");
        match arg.get_action() {
            ArgAction::SetTrue => {
                let direct = cmd.clone().try_get_matches_from(["websockify", &format!("--{long}")]).unwrap();
                for key in [long, underscored.as_str()] {
                    let m = file_matches(&format!("{key} = true"), &[]).unwrap();
                    assert_eq!(raw(&m, id), raw(&direct, id), "{key} = true");
                    assert!(m.get_flag(id), "{key} = true");
                    let m = file_matches(&format!("{key} = false"), &[]).unwrap();
                    assert!(!m.get_flag(id), "{key} = false");
                }
                let err = file_matches(&format!("{long} = 1"), &[]).unwrap_err();
                assert_eq!(err, format!("t.toml:1: {long}: expected true or false, found integer"));
            }
            ArgAction::Set | ArgAction::Append => {
                let v = sample(&cmd, long);
                let direct = cmd.clone().try_get_matches_from(["websockify", &format!("--{long}"), &v]).unwrap();
                for key in [long, underscored.as_str()] {
                    let text = format!("{key} = {}", toml_value(&v));
                    let m = file_matches(&text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!(raw(&m, id), raw(&direct, id), "{text}");
                    assert_eq!(m.value_source(id), Some(clap::parser::ValueSource::CommandLine), "{text}");
                }
                // The command line wins over the file.
                let text = format!("{long} = {}\n", toml_value(&v));
                let m = file_matches(&text, &[&format!("--{long}={v}")]).unwrap();
                assert_eq!(raw(&m, id), raw(&direct, id), "{text} and --{long}={v} on the command line");
                let err = file_matches(&format!("\n{long} = true"), &[]).unwrap_err();
                assert!(err.starts_with(&format!("t.toml:2: {long}: expected a string")), "{err}");
            }
            ArgAction::Count => {
                let direct =
                    cmd.clone().try_get_matches_from(["websockify", &format!("--{long}"), &format!("--{long}")]);
                let m = file_matches(&format!("{underscored} = 2"), &[]).unwrap();
                assert_eq!(m.get_count(id), direct.unwrap().get_count(id), "{long} = 2");
                let m = file_matches(&format!("{long} = 2"), &[&format!("--{long}")]).unwrap();
                assert_eq!(m.get_count(id), 1, "{long} = 2 and --{long} once on the command line");
            }
            other => panic!("--{long}: a {other:?} option: teach config_file.rs (and this test) about it"),
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} options checked");
}

#[test]
fn the_positionals_are_listen_target_and_wrap() {
    let cmd = Cli::command();
    let ids: Vec<&str> = cmd.get_positionals().map(|a| a.get_id().as_str()).collect();
    assert_eq!(ids, ["listen", "target", "command"], "a new positional argument needs a key in config_file.rs");
    let file = FileArgs::parse(
        Path::new("t.toml"),
        "listen = 6080\ntarget = \"h:1\"\nwrap = [\"prog\", \"-x\"]",
        &Cli::command(),
    )
    .unwrap();
    assert_eq!((file.listen.as_deref(), file.target.as_deref()), (Some("6080"), Some("h:1")));
    assert_eq!(file.wrap, ["prog", "-x"]);
}

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    std::fs::write(dir.path(name), text).unwrap();
    dir.str(name)
}

fn parse(args: &[&str]) -> Result<(Box<websockify::Config>, cli::LogOptions), String> {
    match cli::parse(std::iter::once("websockify").chain(args.iter().copied())) {
        Ok(Parsed::Run(config, log)) => Ok((config, log)),
        Ok(Parsed::Print(text)) => Err(format!("printed: {text}")),
        Err(e) => Err(e.0),
    }
}

#[test]
fn a_file_makes_the_same_config_as_the_command_line() {
    let dir = TempDir::new("cfg-same");
    let tokens = write(&dir, "tokens", "vnc1: 127.0.0.1:5901\n");
    let file = write(
        &dir,
        "ws.toml",
        &format!(
            "# a comment\nlisten = \"[::1]:6080\"\nheartbeat = 30\nrun_once = true\nverbose = true\n\
             token-plugin = \"TokenFile\"\ntoken-source = {tokens:?}\nhost-token = true\nmax-sessions = 5\n\
             max_message_size = 1024\nlog-file = \"/tmp/x.log\"\n"
        ),
    );
    let (from_file, log) = parse(&["--config", &file]).unwrap();
    let (direct, direct_log) = parse(&[
        "--heartbeat=30",
        "--run-once",
        "-v",
        "--token-plugin",
        "TokenFile",
        "--token-source",
        &tokens,
        "--host-token",
        "--max-sessions",
        "5",
        "--max-message-size",
        "1024",
        "--log-file",
        "/tmp/x.log",
        "[::1]:6080",
    ])
    .unwrap();
    for c in [&from_file, &direct] {
        assert_eq!(c.listen, Listen::Tcp(ListenAddr { host: Some("::1".into()), port: 6080 }));
        assert_eq!(c.heartbeat, Some(Duration::from_secs(30)));
        assert!(c.run_once);
        assert!(matches!(&c.route, Route::Token(t) if t.source.host));
        assert_eq!(c.limits.sessions.total, 5);
        assert_eq!(c.limits.decoder.max_message, 1024);
    }
    assert_eq!(format!("{:?}", from_file.limits), format!("{:?}", direct.limits));
    assert_eq!(format!("{log:?}"), format!("{direct_log:?}"));
}

#[test]
fn the_command_line_overrides_the_file() {
    let dir = TempDir::new("cfg-override");
    let file = write(&dir, "ws.toml", "listen = 6080\ntarget = \"a:1\"\nheartbeat = 30\ntimeout = 5\n");
    let (c, _) = parse(&["--config", &file, "--heartbeat", "10", "7000"]).unwrap();
    assert_eq!(c.listen, Listen::Tcp(ListenAddr { host: None, port: 7000 }));
    assert!(matches!(&c.route, Route::Fixed(Target::Tcp { host, port: 1 }) if host == "a"));
    assert_eq!(c.heartbeat, Some(Duration::from_secs(10)));
    assert_eq!(c.timeout, Some(Duration::from_secs(5)));
    let (c, _) = parse(&["--config", &file, "7000", "b:2"]).unwrap();
    assert!(matches!(&c.route, Route::Fixed(Target::Tcp { host, port: 2 }) if host == "b"));
    // Without a TCP listen address a lone positional argument is the target, file or not.
    let file = write(&dir, "unix.toml", "unix-listen = \"/tmp/ws.sock\"\ntarget = \"a:1\"\n");
    let (c, _) = parse(&["--config", &file]).unwrap();
    assert!(matches!(&c.route, Route::Fixed(Target::Tcp { host, .. }) if host == "a"));
    let (c, _) = parse(&["--config", &file, "b:2"]).unwrap();
    assert!(matches!(&c.route, Route::Fixed(Target::Tcp { host, .. }) if host == "b"));
    let file = write(&dir, "unix2.toml", "unix-listen = \"/tmp/ws.sock\"\nlisten = 6080\ntarget = \"a:1\"\n");
    let err = parse(&["--config", &file]).unwrap_err();
    assert!(err.ends_with("unix2.toml: listen: no listen address is taken with --inetd or --unix-listen"), "{err}");
    // The wrapped program.
    let file = write(&dir, "wrap.toml", "listen = 6080\nwrap = [\"sleep\", \"1\"]\nwrap-mode = \"ignore\"\n");
    let (c, _) = parse(&["--config", &file]).unwrap();
    let wrap = c.wrap.as_ref().expect("a wrapped program");
    assert_eq!(wrap.display_command(), "sleep 1");
}

#[test]
fn errors_are_one_line_with_file_and_line() {
    let dir = TempDir::new("cfg-errors");
    for (text, expected) in [
        ("heartbeat = 30\nhartbeat = 30\n", "bad.toml:2: unknown option \"hartbeat\""),
        ("\nssl-only = \"yes\"\n", "bad.toml:2: ssl-only: expected true or false, found string"),
        ("ssl-only = true\nssl_only = true\n", "bad.toml:2: ssl_only: given twice (also as ssl-only on line 1)"),
        ("heartbeat = 1\nheartbeat = 2\n", "bad.toml:2: duplicate key: heartbeat"),
        ("heartbeat = \"soon\"\n", "bad.toml:1: heartbeat: invalid value 'soon' for '--heartbeat <INTERVAL>'"),
        ("cert = [\"a\", \"b\"]\n", "bad.toml:1: cert: expected a string or a number, found array"),
        ("wrap-mode = \"later\"\n", "bad.toml:1: wrap-mode: invalid value 'later'"),
        ("config = \"other.toml\"\n", "bad.toml:1: config: only allowed on the command line"),
        ("heartbeat = \n", "bad.toml:1: "),
        ("token-source = \"x\"\n", "--token-plugin"),
    ] {
        let file = write(&dir, "bad.toml", text);
        let (status, out) = run_proxy(&["--config", &file, "6080", "h:1"]);
        assert_eq!(status.code(), Some(2), "{text:?}: {out}");
        let line = out.trim_end();
        assert!(!line.contains('\n'), "{text:?}: {out}");
        let want = format!("websockify: {}", expected.replace("bad.toml", &file));
        if expected.starts_with("bad.toml") {
            assert!(line.starts_with(&want), "{text:?}: {line}\nwanted: {want}");
        } else {
            assert!(line.contains(expected) && line.contains(&file), "{text:?}: {line}");
        }
    }
    let (status, out) = run_proxy(&["--config", "/nonexistent/ws.toml", "6080", "h:1"]);
    assert_eq!(status.code(), Some(2));
    assert!(out.starts_with("websockify: --config /nonexistent/ws.toml: No such file"), "{out}");
}

fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).arg("--check-config").args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn check_config_validates_without_binding() {
    let dir = TempDir::new("cfg-check");
    // A port in use: --check-config does not bind, so it does not notice.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let file = write(&dir, "ok.toml", &format!("listen = \"127.0.0.1:{port}\"\ntarget = \"localhost:5900\"\n"));
    assert_eq!(check(&["--config", &file]), (Some(0), "configuration OK\n".into(), String::new()));

    let ca = Ca::new("check CA");
    let (cert, key) = ca.issue(&dir.0, "server", "localhost", false);
    let tls = write(
        &dir,
        "tls.toml",
        &format!("listen = 6080\ntarget = \"h:1\"\nssl-only = true\ncert = {cert:?}\nkey = {key:?}\n"),
    );
    assert_eq!(check(&["--config", &tls]).0, Some(0));
    // The certificate is loaded: a key that does not match it is found now, not at start.
    let (_, other_key) = ca.issue(&dir.0, "other", "localhost", false);
    let (code, out, err) = check(&["--config", &tls, "--key", other_key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.starts_with("websockify: TLS is required (--ssl-only) but the certificate cannot be used"), "{err}");
    // Without --ssl-only an unusable certificate only disables TLS, as at start: a warning.
    let (code, out, _) = check(&["6080", "h:1", "--cert", "/nonexistent.pem"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("warning: TLS disabled: ") && out.ends_with("configuration OK\n"), "{out}");
    // Token sources and auth sources are read.
    // A token file that does not exist yet: the proxy starts (as upstream), so the check
    // passes with a warning; a bad line in one that exists fails it (tests/dropin.rs).
    let (code, out, err) = check(&["6080", "--token-plugin", "TokenFile", "--token-source", "/nonexistent/tokens"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("warning: token source /nonexistent/tokens does not exist yet"), "{out}");
    assert!(out.ends_with("configuration OK\n"), "{out}");
    let (code, _, err) = check(&["6080", "h:1", "--ssl-target", "--target-cafile", "/nonexistent/ca.pem"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--ssl-target"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_started_from_a_file_serves_a_session() {
    let dir = TempDir::new("cfg-serve");
    let target = echo_target("127.0.0.1:0").await;
    let file = write(
        &dir,
        "ws.toml",
        &format!("listen = \"127.0.0.1:0\"\ntarget = \"{target}\"\nheartbeat = 30\nmax-sessions = 1\n"),
    );
    let proxy = Proxy::start(&["--config", &file]);
    let (mut ws, _) = tokio_tungstenite::connect_async(proxy.url()).await.unwrap();
    ws.send(Message::binary(b"from a config file".to_vec())).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(reply.into_data().as_ref(), b"from a config file");
    ws.close(None).await.unwrap();
}

#[test]
fn completions_load_in_bash_and_every_shell_gets_a_script() {
    let script = format!("source <({BIN} --completions bash) && complete -p websockify");
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("websockify"));
    // The generated function completes option names.
    let script = format!(
        "source <({BIN} --completions bash); COMP_WORDS=(websockify --check-c); COMP_CWORD=1; \
         _websockify websockify --check-c websockify; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "--check-config");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(BIN).args(["--completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("heartbeat") && text.contains("check-config"), "{shell}: {text}");
    }
    let (status, out) = run_proxy(&["--completions", "tcsh"]);
    assert_eq!(status.code(), Some(2));
    assert!(out.contains("possible values: bash"), "{out}");
}

#[test]
fn the_man_page_renders() {
    let page = Command::new(BIN).arg("--man").output().unwrap();
    assert!(page.status.success());
    assert!(page.stdout.starts_with(b".ie"), "roff");
    // groff-base (scripts/peers.sh installs it): -ww reports every warning on stderr.
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-b", "-P-u"]) // -b -u: plain text, no overstrike
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff (apt-get install groff-base, or scripts/peers.sh)");
    use std::io::Write as _;
    groff.stdin.take().unwrap().write_all(&page.stdout).unwrap();
    let out = groff.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["NAME", "SYNOPSIS", "OPTIONS", "--heartbeat", "CONFIGURATION FILE", "EXIT STATUS", "EXAMPLES"] {
        assert!(text.contains(needle), "no {needle:?} in the rendered page:\n{text}");
    }
}
