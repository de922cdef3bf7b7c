//! Logging to syslog (`--syslog host:port` over UDP, or a local datagram socket such as
//! `/dev/log`), in RFC 5424 format or, with `--legacy-syslog`, the BSD format upstream's
//! handler writes. One datagram per log event; the event's level gives the severity.

use std::io::{self, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Where and how to send.
#[derive(Clone)]
pub struct Syslog {
    inner: Arc<Inner>,
}

struct Inner {
    socket: Socket,
    /// `user` (1), or `daemon` (3) when daemonized, as upstream picks.
    facility: u8,
    legacy: bool,
    hostname: String,
    pid: u32,
}

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Syslog {
    /// `dest` is `host:port` (UDP) or a path to a datagram socket.
    pub fn connect(dest: &str, daemon: bool, legacy: bool) -> io::Result<Self> {
        let socket = if dest.starts_with('/') || !dest.contains(':') {
            let sock = UnixDatagram::unbound()?;
            sock.connect(dest)?;
            Socket::Unix(sock)
        } else {
            let sock = UdpSocket::bind(if dest.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })?;
            sock.connect(dest)?;
            Socket::Udp(sock)
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "-".into());
        let facility = if daemon { 3 } else { 1 };
        Ok(Self { inner: Arc::new(Inner { socket, facility, legacy, hostname, pid: std::process::id() }) })
    }
}

/// One event's text, sent when the formatter is done with it.
pub struct Message {
    inner: Arc<Inner>,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for Message {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let pri = u16::from(self.inner.facility) * 8 + u16::from(self.severity);
        let line = format_line(pri, &self.inner, text);
        // Logging must never fail the program; a lost datagram is a lost log line.
        let _ = match &self.inner.socket {
            Socket::Udp(s) => s.send(line.as_bytes()),
            Socket::Unix(s) => s.send(line.as_bytes()),
        };
    }
}

fn format_line(pri: u16, inner: &Inner, text: &str) -> String {
    if inner.legacy {
        format!("<{pri}>websockify[{}]: {text}", inner.pid)
    } else {
        let timestamp = httpdate_rfc3339(std::time::SystemTime::now());
        format!("<{pri}>1 {timestamp} {} websockify {} - - {text}", inner.hostname, inner.pid)
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

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Message;

    fn make_writer(&'a self) -> Self::Writer {
        Message { inner: self.inner.clone(), severity: 6, buf: Vec::new() }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let severity = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        Message { inner: self.inner.clone(), severity, buf: Vec::new() }
    }
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
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inner = Inner { socket: Socket::Udp(sock), facility: 3, legacy: true, hostname: "h".into(), pid: 42 };
        assert_eq!(format_line(30, &inner, "hello"), "<30>websockify[42]: hello");
        let inner = Inner { legacy: false, ..inner };
        let line = format_line(14, &inner, "hello");
        assert!(line.starts_with("<14>1 20") && line.ends_with("Z h websockify 42 - - hello"), "{line}");
    }
}
