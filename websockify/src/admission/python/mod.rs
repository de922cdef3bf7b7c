//! Upstream's custom Python plugins, unchanged: `--token-plugin mymodule.MyPlugin` and
//! `--auth-plugin mymodule.MyAuth` load the named class and call it as upstream does
//! (`cls(source)`, then `lookup(token)` or `authenticate(headers, target_host,
//! target_port)`, with upstream's return values and `AuthenticationError`).
//!
//! # Why a separate process, not libpython in ours
//!
//! The plugin runs in a Python interpreter of the site's choosing (`--plugin-python`,
//! default `python3` on `PATH`), in a child process that speaks JSON lines with us
//! (`host`):
//!
//! - the binary keeps no Python dependency: no libpython version to match, and a site's
//!   venv with the plugin's own packages (`redis`, `requests`, its ORM) just works;
//! - a plugin that blocks, leaks or crashes cannot stall the runtime or take sessions down:
//!   each call has a deadline (`--plugin-timeout`, a 504 past it), a host that dies is
//!   started again (at most 4 times a second) while the sessions already open, which never
//!   touch it, go on;
//! - lookups of different sessions run at once (a thread per call in the host), where
//!   libpython's global interpreter lock would serialize them in our own threads.
//!
//! The cost is a pipe round trip per lookup (tens of microseconds) and one interpreter.
//!
//! One plugin instance serves every call, from threads of one process: state kept
//! between lookups persists, where upstream's fork per connection gave each connection a
//! copy. A plugin holding a `sqlite3` connection from its constructor needs
//! `check_same_thread=False` for that.

mod host;
mod plugins;

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use crate::outbound::Target;

pub use plugins::{PythonAuth, PythonToken};

/// How plugin hosts are run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOptions {
    /// The interpreter (`--plugin-python`).
    pub python: PathBuf,
    /// The deadline of one call (`--plugin-timeout`).
    pub timeout: Duration,
    /// The fixed target, which upstream passes to `authenticate` as `target_host` and
    /// `target_port` (`None` with token routing: our authenticator runs before the lookup).
    pub target: Option<Target>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self { python: PathBuf::from("python3"), timeout: Duration::from_secs(5), target: None }
    }
}

/// The options [`crate::admission::token::plugin`] and [`crate::admission::auth::plugin`] start hosts with:
/// set once by the command line before it builds the plugins, since those two functions
/// take only upstream's name and source.
static DEFAULTS: RwLock<Option<HostOptions>> = RwLock::new(None);

/// Sets the options of plugin hosts started by name from now on.
pub fn set_defaults(options: HostOptions) {
    *DEFAULTS.write().unwrap_or_else(|e| e.into_inner()) = Some(options);
}

fn defaults() -> HostOptions {
    DEFAULTS.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

/// Whether `name` is one for a Python host: a dotted `module.Class` path.
pub fn is_python_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(m, c)| !m.is_empty() && !c.is_empty())
}

/// A token plugin by class path, with the default [`HostOptions`].
pub fn token_plugin(class: &str, source: &str) -> Result<PythonToken, String> {
    PythonToken::start(class, source, defaults())
}

/// An auth plugin by class path, with the default [`HostOptions`].
pub fn auth_plugin(class: &str, source: Option<&str>) -> Result<PythonAuth, String> {
    PythonAuth::start(class, source, defaults())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names() {
        assert!(is_python_name("mymodule.MyPlugin") && is_python_name("a.b.C"));
        assert!(!is_python_name("TokenFile") && !is_python_name(".X") && !is_python_name("x."));
    }
}
