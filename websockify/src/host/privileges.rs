//! `--user USER[:GROUP]`: a proxy that binds port 443 or reads a root-owned key needs root
//! only for that. Once its listeners are bound and its key, certificates and secret files
//! are read, it becomes USER (with USER's supplementary groups, and GROUP or USER's primary
//! group) for the rest of its life; the wrapped program starts after that, as USER too.
//!
//! The change goes through libc (`setgroups`, `setgid`, `setuid`), which applies it to
//! every thread of the process: the runtime's threads exist by then. It is checked: the
//! ids afterwards are the new ones, and root cannot be taken back.

use nix::unistd::{Gid, Group, Uid, User};

/// Who to become, resolved when the command line is read (so that an unknown user or
/// group fails at start, and `--check-config` says so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// Resolves `USER`, `USER:GROUP`, or numeric ids (`1000`, `1000:1000`).
    pub fn resolve(spec: &str) -> Result<Self, String> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(user),
        }
        .map_err(|e| format!("--user {spec}: cannot look up user {user:?}: {e}"))?
        .ok_or_else(|| format!("--user {spec}: no such user {user:?}"))?;
        let gid = match group {
            None => found.gid,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => Gid::from_raw(gid),
                Err(_) => {
                    Group::from_name(g)
                        .map_err(|e| format!("--user {spec}: cannot look up group {g:?}: {e}"))?
                        .ok_or_else(|| format!("--user {spec}: no such group {g:?}"))?
                        .gid
                }
            },
        };
        Ok(Self { user: found.name, uid: found.uid.as_raw(), gid: gid.as_raw() })
    }

    /// Becomes this user and group for good. Refuses (and the start fails) when the process
    /// is not root and is not already this user, or when the change does not hold.
    pub fn assume(&self) -> Result<(), String> {
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        let who = format!("{} (uid {}, gid {})", self.user, self.uid, self.gid);
        if !Uid::effective().is_root() {
            if Uid::current() == uid && Uid::effective() == uid && Gid::current() == gid {
                return Ok(());
            }
            return Err(format!("--user: cannot become {who}: not running as root"));
        }
        let name = std::ffi::CString::new(self.user.clone()).map_err(|_| format!("--user: bad user name {who}"))?;
        nix::unistd::initgroups(&name, gid).map_err(|e| format!("--user: setting the groups of {who}: {e}"))?;
        nix::unistd::setgid(gid).map_err(|e| format!("--user: setgid {}: {e}", self.gid))?;
        nix::unistd::setuid(uid).map_err(|e| format!("--user: setuid {}: {e}", self.uid))?;
        let held = Uid::current() == uid
            && Uid::effective() == uid
            && Gid::current() == gid
            && Gid::effective() == gid
            && (uid.is_root() || nix::unistd::setuid(Uid::from_raw(0)).is_err());
        if !held {
            return Err(format!("--user: the switch to {who} did not hold"));
        }
        Ok(())
    }
}
