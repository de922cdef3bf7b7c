//! Session recording (`--record FILE`): each WebSocket session is written to
//! `FILE.<run>.<connection id>` in the format noVNC's player loads, where `<run>` is the
//! process's start time (Unix seconds) and pid, so that a restart, which numbers
//! connections from 1 again, never writes over an earlier recording:
//!
//! ```text
//! var VNC_frame_data = [
//! '{12{<data sent to the client>',
//! '}15}<data received from the client>',
//! 'EOF'];
//! ```
//!
//! Times are milliseconds since the session started; bytes are written as Latin-1 with
//! `\xNN` escapes for everything that is not printable ASCII, and for quotes and
//! backslashes. Base64 sessions record their base64 text and say so with
//! `var VNC_frame_encoding = 'base64';`.
//!
//! A recording holds every keystroke, passwords included: it is created mode 0600, and
//! only if nothing is at its path (`O_CREAT|O_EXCL`, which POSIX makes fail on any
//! existing name, a symbolic link included: no link is followed, nothing is truncated).
//!
//! The relay never waits for the disk: it hands a copy of each chunk to a bounded queue
//! drained by a writer task. When the queue is full the chunk is dropped, counted, and the
//! log says so; the session goes on at full speed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::wire::encoding::Encoding;

/// Chunks the queue holds before it drops.
const QUEUE: usize = 1024;

/// Which way a chunk went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Target to client: `{`.
    ToClient,
    /// Client to target: `}`.
    FromClient,
}

struct Entry {
    direction: Direction,
    millis: u64,
    data: Vec<u8>,
}

/// A session's recording handle, given to the relay.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Entry>,
    started: Instant,
    dropped: Arc<AtomicU64>,
}

/// This process's part of recording names: its start time (Unix seconds) and pid.
pub fn run_stamp() -> &'static str {
    static STAMP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("{secs}-{}", std::process::id())
    });
    &STAMP
}

/// Where connection `id` is recorded: `base.<run>.<id>`.
pub fn path_for(base: &Path, id: u64) -> PathBuf {
    PathBuf::from(format!("{}.{}.{id}", base.display(), run_stamp()))
}

impl Recorder {
    /// Creates [`path_for`]`(base, id)` (mode 0600, never over an existing name) and
    /// starts its writer task. The file is finished (`'EOF'];`) when the last handle is
    /// dropped.
    pub async fn start(base: &Path, id: u64, encoding: Encoding) -> io::Result<Self> {
        let path = path_for(base, id);
        let created = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await?;
        let mut file = tokio::io::BufWriter::new(created);
        let mut head = String::from("var VNC_frame_data = [\n");
        if encoding == Encoding::Base64 {
            head.insert_str(0, "var VNC_frame_encoding = 'base64';\n");
        }
        file.write_all(head.as_bytes()).await?;
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        tokio::spawn(async move {
            let mut line = Vec::new();
            let mut failed = false;
            while let Some(entry) = rx.recv().await {
                if failed {
                    continue;
                }
                line.clear();
                format_entry(&entry, &mut line);
                if let Err(e) = file.write_all(&line).await {
                    tracing::error!("recording to {} failed, not recording the rest: {e}", path.display());
                    failed = true;
                }
            }
            let end = async {
                file.write_all(b"'EOF'];\n").await?;
                file.flush().await
            };
            if !failed && let Err(e) = end.await {
                tracing::error!("recording to {}: {e}", path.display());
            }
            let lost = lost.load(Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!("recording {}: the disk could not keep up, {lost} chunk(s) left out", path.display());
            }
        });
        tracing::info!("recording to {}", path_for(base, id).display());
        Ok(Self { tx, started: Instant::now(), dropped })
    }

    /// Records a chunk; never waits.
    pub fn record(&self, direction: Direction, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let entry = Entry { direction, millis: self.started.elapsed().as_millis() as u64, data: data.to_vec() };
        if self.tx.try_send(entry).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("recording falls behind the session; dropping chunks rather than slowing it");
        }
    }
}

/// One entry as a JavaScript string literal line.
fn format_entry(entry: &Entry, out: &mut Vec<u8>) {
    let mark = match entry.direction {
        Direction::ToClient => b'{',
        Direction::FromClient => b'}',
    };
    out.push(b'\'');
    out.push(mark);
    out.extend_from_slice(entry.millis.to_string().as_bytes());
    out.push(mark);
    escape(&entry.data, out);
    out.extend_from_slice(b"',\n");
}

/// Latin-1 bytes as the inside of a single-quoted JavaScript string.
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in data {
        if (0x20..0x7f).contains(&b) && b != b'\'' && b != b'\\' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_quotes_backslashes_and_high_bytes() {
        let mut out = Vec::new();
        escape(b"RFB 003.008\n'\\\x00\xff~", &mut out);
        assert_eq!(out, b"RFB 003.008\\x0a\\x27\\x5c\\x00\\xff~");
        let mut line = Vec::new();
        format_entry(&Entry { direction: Direction::FromClient, millis: 42, data: b"ab".to_vec() }, &mut line);
        assert_eq!(line, b"'}42}ab',\n");
    }

    #[tokio::test]
    async fn writes_a_player_file() {
        let base = std::env::temp_dir().join(format!("wsfy-rec-{}", std::process::id()));
        let rec = Recorder::start(&base, 7, Encoding::Base64).await.unwrap();
        rec.record(Direction::ToClient, b"QUJD");
        rec.record(Direction::FromClient, b"RA==");
        drop(rec);
        let path = path_for(&base, 7);
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.ends_with("'EOF'];\n") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "var VNC_frame_encoding = 'base64';");
        assert_eq!(lines[1], "var VNC_frame_data = [");
        assert!(lines[2].starts_with("'{") && lines[2].ends_with("{QUJD',"), "{text}");
        assert!(lines[3].starts_with("'}") && lines[3].ends_with("}RA==',"), "{text}");
        assert_eq!(lines[4], "'EOF'];");
        let _ = std::fs::remove_file(path);
    }
}
