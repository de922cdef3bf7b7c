//! Logging to syslog (`--syslog host:port` over UDP, or a local datagram socket such as
//! `/dev/log`), in RFC 5424 format or, with `--legacy-syslog`, the BSD format upstream's
//! handler writes. One datagram per log record; the record's level gives the severity.
//!
//! [`Syslog`] is the output of the syslog sink's own thread ([`super::logging`]): its sends
//! may block (a syslog daemon that reads slowly, or not at all) without holding up anything
//! but that thread. A local socket whose daemon restarted (a new socket at the same path)
//! is reconnected, at most once a second, and the outage is said on stderr once.

use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::Level;

use super::logging::{Notices, Output};

/// Time between two attempts to reach a syslog socket that went away.
const RETRY: Duration = Duration::from_secs(1);

/// Where and how to send.
pub struct Syslog {
    socket: Socket,
    /// `user` (1), or `daemon` (3) when daemonized, as upstream picks.
    facility: u8,
    legacy: bool,
    hostname: String,
    pid: u32,
}

enum Socket {
    Udp(UdpSocket),
    Unix {
        path: PathBuf,
        /// None while the daemon is unreachable.
        sock: Option<UnixDatagram>,
        /// The last attempt to reconnect, while unreachable.
        tried: Option<Instant>,
    },
}

impl Syslog {
    /// `dest` is `host:port` (UDP) or a path to a datagram socket. A destination that
    /// cannot be reached now is an error (a start-up error: the operator made a typo).
    pub fn connect(dest: &str, daemon: bool, legacy: bool) -> io::Result<Self> {
        let socket = if dest.starts_with('/') || !dest.contains(':') {
            let path = PathBuf::from(dest);
            Socket::Unix { sock: Some(connect_unix(&path)?), path, tried: None }
        } else {
            let sock = UdpSocket::bind(if dest.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })?;
            sock.connect(dest)?;
            Socket::Udp(sock)
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "-".into());
        let facility = if daemon { 3 } else { 1 };
        Ok(Self { socket, facility, legacy, hostname, pid: std::process::id() })
    }

    /// Sends one record (escaped text, one line, without its newline); false if it was
    /// lost. Blocks while the daemon's queue is full: call it from the sink's thread only.
    pub fn send(&mut self, level: Level, text: &[u8], notices: &Notices) -> bool {
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end();
        if text.is_empty() {
            return true;
        }
        let severity = match level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        let pri = u16::from(self.facility) * 8 + severity;
        let line = format_line(pri, self.legacy, &self.hostname, self.pid, text);
        match &mut self.socket {
            // Nothing to reconnect: a lost datagram (or an ICMP error reported on a later
            // send) is a lost line.
            Socket::Udp(s) => s.send(line.as_bytes()).is_ok(),
            Socket::Unix { path, sock, tried } => {
                if let Some(s) = sock {
                    match s.send(line.as_bytes()) {
                        Ok(_) => return true,
                        Err(e) if gone(&e) => {
                            notices
                                .say(&format!("websockify: syslog at {} unreachable: {e}; retrying", path.display()));
                            *sock = None;
                            // The daemon may already be back (a restart): try at once.
                            *tried = None;
                        }
                        Err(_) => return false,
                    }
                }
                if tried.is_some_and(|t| t.elapsed() < RETRY) {
                    return false;
                }
                *tried = Some(Instant::now());
                let Ok(s) = connect_unix(path) else { return false };
                notices.say(&format!("websockify: syslog at {} reconnected", path.display()));
                *tried = None;
                let sent = s.send(line.as_bytes()).is_ok();
                *sock = Some(s);
                sent
            }
        }
    }
}

impl Output for Syslog {
    fn write(&mut self, level: Level, record: &[u8], notices: &Notices) -> bool {
        self.send(level, record.strip_suffix(b"\n").unwrap_or(record), notices)
    }
}

fn connect_unix(path: &std::path::Path) -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    Ok(sock)
}

/// Errors that mean the daemon's socket is gone (closed, or removed and not yet back), so
/// that a new one at the same path needs a new connection.
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotConnected
            | io::ErrorKind::NotFound
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
    )
}

fn format_line(pri: u16, legacy: bool, hostname: &str, pid: u32, text: &str) -> String {
    if legacy {
        format!("<{pri}>websockify[{pid}]: {text}")
    } else {
        let timestamp = httpdate_rfc3339(std::time::SystemTime::now());
        format!("<{pri}>1 {timestamp} {hostname} websockify {pid} - - {text}")
    }
}

/// RFC 3339 UTC time with milliseconds, as RFC 5424 wants.
fn httpdate_rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_516), (2026, 3, 4));
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_772_582_400_123);
        assert_eq!(httpdate_rfc3339(t), "2026-03-04T00:00:00.123Z");
    }

    #[test]
    fn formats() {
        assert_eq!(format_line(30, true, "h", 42, "hello"), "<30>websockify[42]: hello");
        let line = format_line(14, false, "h", 42, "hello");
        assert!(line.starts_with("<14>1 20") && line.ends_with("Z h websockify 42 - - hello"), "{line}");
    }

    #[test]
    fn reconnects_to_a_new_socket_at_the_same_path() {
        let dir = std::env::temp_dir().join(format!("websockify-syslog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let reader = UnixDatagram::bind(&path).unwrap();
        reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut syslog = Syslog::connect(path.to_str().unwrap(), true, true).unwrap();
        let notices = Notices::default();
        let mut buf = [0; 256];
        assert!(syslog.send(Level::WARN, b"one", &notices));
        let n = reader.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], format!("<28>websockify[{}]: one", std::process::id()).as_bytes());

        // The daemon goes away: lines are lost, and no retry before a second has passed.
        drop(reader);
        std::fs::remove_file(&path).unwrap();
        assert!(!syslog.send(Level::INFO, b"lost", &notices));
        let reader = UnixDatagram::bind(&path).unwrap();
        reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(!syslog.send(Level::INFO, b"too soon", &notices));
        if let Socket::Unix { tried, .. } = &mut syslog.socket {
            *tried = Some(Instant::now() - RETRY);
        }
        assert!(syslog.send(Level::INFO, b"two", &notices));
        let n = reader.recv(&mut buf).unwrap();
        assert!(buf[..n].ends_with(b"]: two"), "{:?}", String::from_utf8_lossy(&buf[..n]));

        // A restart seen at the next send (the new socket already there): reconnected at once.
        drop(reader);
        std::fs::remove_file(&path).unwrap();
        let reader = UnixDatagram::bind(&path).unwrap();
        reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(syslog.send(Level::INFO, b"three", &notices));
        let n = reader.recv(&mut buf).unwrap();
        assert!(buf[..n].ends_with(b"]: three"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
