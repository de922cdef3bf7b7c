//! Where formatted log records go, and how: one record is one line, and logging never
//! stops the proxy.
//!
//! - **One record, one line.** [`RecordWriter`] collects what the `fmt` layer writes for
//!   one event and escapes it as a whole ([`escape_record`]): every control character in
//!   the record (CR, LF, NUL, ESC, DEL, the C1 controls, the Unicode line separators)
//!   becomes a visible escape, so that a value from the network (a request target, a
//!   header) can neither start a forged line in a file, nor a second message or a fake
//!   priority in syslog, nor drive the terminal showing the log. The record's own final
//!   newline is the only one written. JSON records get JSON escapes instead
//!   ([`escape_json_record`]), so every line still parses.
//! - **Never blocking.** Each sink (stderr, the `--log-file`, `--syslog`) has a bounded
//!   [`Queue`] drained by a thread of its own. A sink that stops taking lines (a syslog
//!   daemon that does not read, a full disk, a stderr pipe nobody reads) fills its queue;
//!   further lines are dropped, counted (the binary turns that into
//!   `websockify_log_lines_dropped_total{sink}`) and said once on stderr. Lines keep their
//!   order within a sink; the sinks do not wait for each other.
//!
//! `tracing-appender`'s `non_blocking` has a bounded lossy queue too, but it offers no
//! hook to say the first drop at the moment it happens, no per-record control item (the
//! log file reopened in its place among the lines, for SIGHUP), and one queue would tie
//! the sinks together; the queue below is small enough to own.
//!
//! The layers (text, JSON, syslog) are built here ([`text_layer`], [`json_layer`],
//! [`syslog_layer`]) so that the binary and the fuzz target format records the same way.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;

/// Records a sink's queue holds before it drops new ones: about 100 KB of typical lines,
/// the `-v` output of some 130 sessions, far more than a healthy sink ever lags behind.
pub const QUEUE_RECORDS: usize = 512;
/// Bytes a sink's queue holds before it drops new records (long records count more).
pub const QUEUE_BYTES: usize = 512 * 1024;
/// Notices (drops, syslog outages) the stderr queue takes beyond its bound: each is said
/// once per event, so they are few, but a stderr nobody reads must not grow without end.
const EXTRA_NOTICES: usize = 64;

/// The text layer of stderr and `--log-file`: time, level, the connection's span, the
/// message and fields; no colours (an escape sequence is a control character like any
/// other, see [`escape_record`]).
pub fn text_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer().with_ansi(false).with_target(false).with_writer(writer)
}

/// `--log-format json`: one object per line: timestamp, level, the event's fields (message
/// included) at the top level, and the connection's span (`conn`: id, peer, client) under
/// "span".
pub fn json_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
}

/// `--syslog`: text without time and level, which the syslog header carries.
pub fn syslog_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_writer(writer)
}

/// Appends `record` to `out` as exactly one text line: every control character in it is
/// escaped, and one `\n` ends it (the record's own final newline, or an added one).
///
/// `\0`, `\t`, `\n`, `\r` keep their short forms; other C0 controls and DEL become `\xNN`
/// (`\x1b`); the C1 controls and U+2028/U+2029 (line breaks to some readers) become
/// `\u{85}`; bytes that are not UTF-8 become `\xNN` too, so the line is valid UTF-8.
/// Backslashes are left alone: the aim is one record per line, not a reversible encoding,
/// and doubling them would mangle the `\"` the formatter already writes in quoted values.
pub fn escape_record(record: &[u8], out: &mut Vec<u8>) {
    let body = record.strip_suffix(b"\n").unwrap_or(record);
    out.reserve(body.len() + 1);
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\0' => out.extend_from_slice(b"\\0"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\x00'..='\x1f' | '\x7f' => push_hex(out, c as u8),
                c if needs_escape(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => {
                    let mut utf8 = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            push_hex(out, b);
        }
    }
    out.push(b'\n');
}

/// Appends a JSON record to `out` as exactly one line. serde_json already writes C0
/// controls as escapes; DEL, the C1 controls and U+2028/U+2029 are legal raw in JSON
/// strings, so they get `\u00XX` escapes here, which still parse to the same string (a
/// JSON record has no such character outside its strings). Bytes that are not UTF-8
/// (never written by serde_json) become U+FFFD, so the line still parses.
pub fn escape_json_record(record: &[u8], out: &mut Vec<u8>) {
    let body = record.strip_suffix(b"\n").unwrap_or(record);
    out.reserve(body.len() + 1);
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || needs_escape(c) {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            } else {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'\n');
}

/// Characters escaped beside the ASCII controls: the C1 controls (`\u{9b}` is CSI to some
/// terminals, `\u{85}` a line break to some readers) and the Unicode line separators.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
}

/// How a [`RecordWriter`] escapes its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// [`escape_record`].
    Text,
    /// [`escape_json_record`].
    Json,
}

/// What takes escaped records: a sink's [`Queue`], or a test's collector.
pub trait Deliver: Send + Sync + 'static {
    /// One record, escaped, ending in its only newline. Must not block.
    fn deliver(&self, level: Level, record: &[u8]);
}

/// A `MakeWriter` for the `fmt` layers: each event's writer collects the record, then
/// escapes it and hands it to every destination, when the formatter drops it.
///
/// tracing-subscriber 0.3 formats an event into a buffer and writes it with one
/// `write_all` on a writer made for that event; the record is taken whole at the drop
/// anyway, so it stays one line even if a formatter wrote it in several pieces (or
/// flushed between them).
#[derive(Clone)]
pub struct RecordWriter {
    format: Format,
    to: Arc<[Arc<dyn Deliver>]>,
}

impl RecordWriter {
    pub fn new(format: Format, to: Vec<Arc<dyn Deliver>>) -> Self {
        Self { format, to: to.into() }
    }
}

impl<'a> MakeWriter<'a> for RecordWriter {
    type Writer = Record<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Record { writer: self, level: Level::INFO, buf: take_buffer() }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Record { writer: self, level: *meta.level(), buf: take_buffer() }
    }
}

thread_local! {
    /// Each thread's buffers for the record being formatted and its escaped line: a log
    /// line costs no allocation once a thread has logged one (and none is freed by
    /// another thread, which would leave the allocator's per-thread arenas fragmented).
    static BUFFERS: std::cell::Cell<(Vec<u8>, Vec<u8>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// Buffers above this are not kept for the next record (a rare huge record must not pin
/// its size in every thread).
const KEEP_BUFFER: usize = 16 * 1024;

/// The thread's record buffer (empty if a record is already being formatted on this
/// thread: a value's `Display` that logs).
fn take_buffer() -> Vec<u8> {
    BUFFERS.with(|b| {
        let (record, line) = b.take();
        b.set((Vec::new(), line));
        record
    })
}

/// One record being formatted; delivered when dropped.
pub struct Record<'a> {
    writer: &'a RecordWriter,
    level: Level,
    buf: Vec<u8>,
}

impl Write for Record<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    /// Nothing: the record goes out whole, at the drop.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let mut record = std::mem::take(&mut self.buf);
        if record.is_empty() {
            return;
        }
        let mut line = BUFFERS.with(|b| {
            let (kept, line) = b.take();
            b.set((kept, Vec::new()));
            line
        });
        line.clear();
        match self.writer.format {
            Format::Text => escape_record(&record, &mut line),
            Format::Json => escape_json_record(&record, &mut line),
        }
        for to in self.writer.to.iter() {
            to.deliver(self.level, &line);
        }
        record.clear();
        line.clear();
        let keep = |v: Vec<u8>| if v.capacity() <= KEEP_BUFFER { v } else { Vec::new() };
        BUFFERS.with(|b| b.set((keep(record), keep(line))));
    }
}

/// A sink, as the metric's `sink` label and the notices name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    File,
    Syslog,
}

impl Sink {
    pub const ALL: [Self; 3] = [Self::Stderr, Self::File, Self::Syslog];

    pub fn label(self) -> &'static str {
        match self {
            Self::Stderr => "stderr",
            Self::File => "file",
            Self::Syslog => "syslog",
        }
    }
}

/// Called for every record a sink loses (dropped from a full queue, or failed to write).
pub type OnLost = Arc<dyn Fn(Sink) + Send + Sync>;

/// What a sink's thread writes to. It may block: only its own thread waits.
pub trait Output: Send + 'static {
    /// Writes one record (escaped, ending in its newline), or keeps it for
    /// [`flush`](Self::flush); false if it was lost.
    fn write(&mut self, level: Level, record: &[u8], notices: &Notices) -> bool;

    /// Writes out what [`write`](Self::write) kept back, at the end of each batch; how
    /// many records were lost doing so.
    fn flush(&mut self, _notices: &Notices) -> usize {
        0
    }

    /// SIGHUP: reopen whatever was opened by name. Most outputs have nothing to reopen.
    fn reopen(&mut self) {}
}

impl<O: Output + ?Sized> Output for Box<O> {
    fn write(&mut self, level: Level, record: &[u8], notices: &Notices) -> bool {
        (**self).write(level, record, notices)
    }

    fn flush(&mut self, notices: &Notices) -> usize {
        (**self).flush(notices)
    }

    fn reopen(&mut self) {
        (**self).reopen();
    }
}

/// Records kept for one `write` system call per batch (stderr, the log file).
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    records: usize,
}

impl Pending {
    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.records += 1;
    }

    /// Writes everything out; the records lost (all of them) if that failed.
    fn write_to(&mut self, out: &mut impl Write) -> Result<(), (usize, io::Error)> {
        let result = out.write_all(&self.bytes).map_err(|e| (self.records, e));
        self.bytes.clear();
        self.records = 0;
        if self.bytes.capacity() > 64 * 1024 {
            self.bytes = Vec::new();
        }
        result
    }
}

/// How long a sink's thread waits after a batch before it looks for the next one.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// A bounded queue of records for one sink, drained in order by the sink's own thread.
///
/// The records are appended to one byte buffer (a small header, then the line), and the
/// thread takes the whole buffer at once in exchange for its empty one: no allocation
/// per record, and memory bounded by two buffers per sink. Only a parked thread is woken
/// (a system call): while it writes, what comes meanwhile waits for its next batch.
///
/// After a batch the thread lingers `LINGER` (1 ms) before it looks again, and parks only if
/// nothing came meanwhile: under load it writes a batch per millisecond in one system call
/// and is never woken (a `futex` call on each side); a line then reaches its sink at most
/// a millisecond late. (A 5 ms nap was too late for readers of the log, tests among them.)
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

struct Shared {
    sink: Sink,
    /// How the drop notice names the sink.
    name: String,
    state: Mutex<State>,
    /// The thread waits here for items.
    ready: Condvar,
    /// [`Queue::wait_idle`] waits here for the thread to finish.
    idle: Condvar,
    on_lost: OnLost,
    notices: Notices,
}

#[derive(Default)]
struct State {
    /// Entries: a tag ([`RECORD`], [`NOTICE`], [`REOPEN`]), the level, the length (u32,
    /// little-endian), then the bytes.
    entries: Vec<u8>,
    /// Records in `entries`, and their bytes: what the bounds count.
    records: usize,
    bytes: usize,
    /// Notices in `entries`.
    notices: usize,
    /// The thread holds a batch it has not finished writing.
    writing: bool,
    /// The thread waits for a wake-up: a push must wake it.
    parked: bool,
    /// The first drop has been said.
    told: bool,
}

const RECORD: u8 = 0;
/// A line for stderr itself (a notice), taken beyond the bound.
const NOTICE: u8 = 1;
/// SIGHUP: reopen the log file here among the lines.
const REOPEN: u8 = 2;
const HEADER: usize = 6;

fn level_byte(level: Level) -> u8 {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

fn byte_level(b: u8) -> Level {
    [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE][usize::from(b.min(4))]
}

impl State {
    fn push(&mut self, tag: u8, level: Level, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.entries.push(tag);
        self.entries.push(level_byte(level));
        self.entries.extend_from_slice(&len.to_le_bytes());
        self.entries.extend_from_slice(&bytes[..len as usize]);
    }

    fn is_idle(&self) -> bool {
        self.entries.is_empty() && !self.writing
    }
}

/// The entries of a batch, in order.
fn entries(batch: &[u8]) -> impl Iterator<Item = (u8, Level, &[u8])> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let (head, tail) = rest.split_at_checked(HEADER)?;
        let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let (bytes, tail) = tail.split_at_checked(len)?;
        rest = tail;
        Some((head[0], byte_level(head[1]), bytes))
    })
}

impl Queue {
    /// Starts the sink's thread, writing to `output`.
    pub fn start(sink: Sink, name: String, output: impl Output, on_lost: OnLost, notices: Notices) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            sink,
            name,
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            idle: Condvar::new(),
            on_lost,
            notices,
        });
        let drain = shared.clone();
        // Not joined: it lives as long as the process logs; `Logging::flush` waits (a
        // bounded time) for what is queued at exit.
        std::thread::Builder::new().name(format!("log-{}", sink.label())).spawn(move || drain.run(output))?;
        Ok(Self { shared })
    }

    /// Whether nothing is queued or being written.
    pub fn is_idle(&self) -> bool {
        self.shared.lock().is_idle()
    }

    /// Waits until nothing is queued or being written, or until `until`; whether it is.
    pub fn wait_idle(&self, until: Instant) -> bool {
        let mut state = self.shared.lock();
        loop {
            if state.is_idle() {
                return true;
            }
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return false;
            };
            state = self.shared.idle.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn push_notice(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.notices >= EXTRA_NOTICES {
            return;
        }
        state.notices += 1;
        state.push(NOTICE, Level::WARN, line);
        self.shared.wake(state);
    }

    fn push_reopen(&self) {
        let mut state = self.shared.lock();
        state.push(REOPEN, Level::INFO, &[]);
        self.shared.wake(state);
    }
}

impl Deliver for Queue {
    fn deliver(&self, level: Level, record: &[u8]) {
        let mut state = self.shared.lock();
        if state.records >= QUEUE_RECORDS || state.bytes + record.len() > QUEUE_BYTES {
            let first = !std::mem::replace(&mut state.told, true);
            drop(state);
            (self.shared.on_lost)(self.shared.sink);
            if first {
                let line = format!(
                    "websockify: {} is not keeping up; dropping log lines (counted in websockify_log_lines_dropped_total)",
                    self.shared.name
                );
                match self.shared.sink {
                    // Stderr says its own drops: the notice waits in line behind the
                    // records (beyond the bound), as it cannot go anywhere else.
                    Sink::Stderr => self.push_notice(&escaped(&line)),
                    _ => self.shared.notices.say(&line),
                }
            }
            return;
        }
        state.records += 1;
        state.bytes += record.len();
        state.push(RECORD, level, record);
        self.shared.wake(state);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the queue consistent (every change to it
        // is one push or one exchange of buffers): go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the thread after a push if it is parked: a busy thread looks again by
    /// itself, so the wake-up (a system call) is skipped while it writes.
    fn wake(&self, mut state: MutexGuard<'_, State>) {
        let parked = std::mem::replace(&mut state.parked, false);
        drop(state);
        if parked {
            self.ready.notify_one();
        }
    }

    fn run(self: Arc<Self>, mut output: impl Output) {
        let mut batch = Vec::new();
        loop {
            {
                let mut state = self.lock();
                state.writing = false;
                while state.entries.is_empty() {
                    self.idle.notify_all();
                    state.parked = true;
                    while state.parked {
                        state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                }
                batch.clear();
                std::mem::swap(&mut batch, &mut state.entries);
                (state.records, state.bytes, state.notices) = (0, 0, 0);
                state.writing = true;
            }
            let mut lost = 0;
            for (tag, level, bytes) in entries(&batch) {
                match tag {
                    RECORD => lost += usize::from(!output.write(level, bytes, &self.notices)),
                    NOTICE => {
                        output.write(Level::WARN, bytes, &self.notices);
                    }
                    _ => {
                        // The lines before the reopen go to the old file.
                        lost += output.flush(&self.notices);
                        output.reopen();
                    }
                }
            }
            lost += output.flush(&self.notices);
            for _ in 0..lost {
                (self.on_lost)(self.sink);
            }
            // A burst's buffer is not kept for ever: two of them bound the sink's memory,
            // but a quiet sink needs little.
            if batch.capacity() > 64 * 1024 {
                batch = Vec::new();
            }
            std::thread::sleep(LINGER);
        }
    }
}

/// Lines about logging itself (drops, a syslog outage), for stderr: queued on the stderr
/// sink when there is one, so that saying them never blocks either.
#[derive(Clone, Default)]
pub struct Notices {
    stderr: Option<Queue>,
}

impl Notices {
    /// Says `line` (no newline needed) on stderr, never blocking.
    pub fn say(&self, line: &str) {
        let record = escaped(line);
        match &self.stderr {
            Some(queue) => queue.push_notice(&record),
            // No stderr sink: a daemon's stderr, /dev/null, which never blocks.
            None => {
                let _ = io::stderr().write_all(&record);
            }
        }
    }
}

fn escaped(line: &str) -> Vec<u8> {
    let mut record = Vec::with_capacity(line.len() + 1);
    escape_record(line.as_bytes(), &mut record);
    record
}

/// Writes to the process's stderr, a batch at a time.
#[derive(Default)]
struct Stderr(Pending);

impl Output for Stderr {
    fn write(&mut self, _: Level, record: &[u8], _: &Notices) -> bool {
        self.0.push(record);
        true
    }

    fn flush(&mut self, _: &Notices) -> usize {
        // A failing stderr (closed) has nobody to tell.
        self.0.write_to(&mut io::stderr().lock()).err().map_or(0, |(lost, _)| lost)
    }
}

/// The `--log-file`, appended to, reopened by name on SIGHUP so that logrotate can move it
/// away.
struct LogFile {
    path: PathBuf,
    file: std::fs::File,
    /// A write failed (a full disk, a file size limit) and that was said.
    failing: bool,
    pending: Pending,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new().create(true).append(true).open(path)
    }
}

impl Output for LogFile {
    fn write(&mut self, _: Level, record: &[u8], _: &Notices) -> bool {
        self.pending.push(record);
        true
    }

    fn flush(&mut self, notices: &Notices) -> usize {
        match self.pending.write_to(&mut self.file) {
            Ok(()) => {
                self.failing = false;
                0
            }
            Err((lost, e)) => {
                if !std::mem::replace(&mut self.failing, true) {
                    notices.say(&format!(
                        "websockify: cannot write to the log file {}: {e}; log lines are lost until it works again",
                        self.path.display()
                    ));
                }
                lost
            }
        }
    }

    fn reopen(&mut self) {
        // Logged through tracing: queued behind this very item, so the line lands in the
        // new file (and on the other sinks).
        match Self::open(&self.path) {
            Ok(file) => {
                self.file = file;
                self.failing = false;
                tracing::info!("log file {} reopened", self.path.display());
            }
            Err(e) => tracing::error!("cannot reopen the log file {}: {e}", self.path.display()),
        }
    }
}

/// Where the log goes: the sinks of the command line.
pub struct Sinks {
    /// Text or JSON, for stderr and the file (syslog is always text).
    pub format: Format,
    pub stderr: bool,
    pub file: Option<PathBuf>,
    /// `--syslog`: [`super::syslog::Syslog`].
    pub syslog: Option<Box<dyn Output>>,
}

/// The process's log sinks, their queues and threads. Cloning shares them.
#[derive(Clone)]
pub struct Logging {
    format: Format,
    stderr: Option<Queue>,
    file: Option<Queue>,
    syslog: Option<Queue>,
    notices: Notices,
}

impl Logging {
    /// Opens the log file and starts a thread per sink. `on_lost` counts lost lines.
    pub fn start(sinks: Sinks, on_lost: OnLost) -> io::Result<Self> {
        // Stderr says its own drops (see `Deliver for Queue`), so it needs no notices.
        let stderr = if sinks.stderr {
            Some(Queue::start(Sink::Stderr, "stderr".into(), Stderr::default(), on_lost.clone(), Notices::default())?)
        } else {
            None
        };
        let notices = Notices { stderr: stderr.clone() };
        let file = match sinks.file {
            Some(path) => {
                let file = LogFile::open(&path)?;
                let name = format!("the log file {}", path.display());
                let output = LogFile { path, file, failing: false, pending: Pending::default() };
                Some(Queue::start(Sink::File, name, output, on_lost.clone(), notices.clone())?)
            }
            None => None,
        };
        let syslog = match sinks.syslog {
            Some(syslog) => Some(Queue::start(Sink::Syslog, "syslog".into(), syslog, on_lost, notices.clone())?),
            None => None,
        };
        Ok(Self { format: sinks.format, stderr, file, syslog, notices })
    }

    /// The layers writing to every sink, to add to the subscriber.
    pub fn layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let mut to: Vec<Arc<dyn Deliver>> = Vec::new();
        if let Some(file) = &self.file {
            to.push(Arc::new(file.clone()));
        }
        if let Some(stderr) = &self.stderr {
            to.push(Arc::new(stderr.clone()));
        }
        let main: Option<Box<dyn Layer<S> + Send + Sync>> = match (to.is_empty(), self.format) {
            (true, _) => None,
            (false, Format::Text) => Some(Box::new(text_layer(RecordWriter::new(Format::Text, to)))),
            (false, Format::Json) => Some(Box::new(json_layer(RecordWriter::new(Format::Json, to)))),
        };
        let syslog = self.syslog.as_ref().map(|q| {
            let to: Vec<Arc<dyn Deliver>> = vec![Arc::new(q.clone())];
            syslog_layer(RecordWriter::new(Format::Text, to))
        });
        Box::new(Layer::and_then(syslog, main))
    }

    /// SIGHUP: the log file is reopened by name, in its place among the queued lines.
    pub fn reopen_file(&self) {
        if let Some(file) = &self.file {
            file.push_reopen();
        }
    }

    /// Says `line` on stderr, after what is queued there, never blocking.
    pub fn say(&self, line: &str) {
        self.notices.say(line);
    }

    /// Waits until every queue is written out, at most `limit` in all (a sink that does
    /// not take lines must not keep the process from exiting).
    pub fn flush(&self, limit: Duration) {
        let until = Instant::now() + limit;
        let queues = [&self.file, &self.syslog, &self.stderr];
        loop {
            // The threads drain in parallel: wait a little on a busy one, then look at all
            // again, so that the wait ends as soon as all are done.
            let Some(busy) = queues.iter().filter_map(|q| q.as_ref()).find(|q| !q.is_idle()) else { return };
            if Instant::now() >= until {
                return;
            }
            busy.wait_idle(until.min(Instant::now() + Duration::from_millis(10)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn escape(record: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        escape_record(record, &mut out);
        out
    }

    #[test]
    fn text_records_are_one_line() {
        assert_eq!(escape(b"plain line\n"), b"plain line\n");
        assert_eq!(escape(b"no newline"), b"no newline\n");
        assert_eq!(escape(b""), b"\n");
        assert_eq!(escape(b"a\n\n"), b"a\\n\n");
        assert_eq!(
            escape(b"GET /x?a=\n2026-12-04T16:00:09.000000Z  INFO FORGED\r\n\0\t\x1b[2J\x07\x7f end\n"),
            b"GET /x?a=\\n2026-12-04T16:00:09.000000Z  INFO FORGED\\r\\n\\0\\t\\x1b[2J\\x07\\x7f end\n"
        );
        // C1 controls and the Unicode line separators; other non-ASCII text is kept.
        assert_eq!(
            escape("x\u{85}y\u{9b}2J\u{2028}\u{2029}\u{80}\u{9f} é ✓\n".as_bytes()),
            "x\\u{85}y\\u{9b}2J\\u{2028}\\u{2029}\\u{80}\\u{9f} é ✓\n".as_bytes()
        );
        // Not UTF-8: each bad byte as \xNN (a C1 control as a lone byte too).
        assert_eq!(escape(b"a\xff\x85b\xc2\n"), b"a\\xff\\x85b\\xc2\n");
        // A fake syslog message after a newline stays inline.
        assert_eq!(escape(b"q=\n<11>1 - forged"), b"q=\\n<11>1 - forged\n");
        // Appends.
        let mut out = b"kept".to_vec();
        escape_record(b"\x1b\n", &mut out);
        assert_eq!(out, b"kept\\x1b\n");
    }

    #[test]
    fn json_records_are_one_line_and_still_parse() {
        let value = "a\nb\r\0\x1b\x7f\u{85}\u{9b}\u{2028}é\"\\";
        let record = format!("{}\n", serde_json::json!({ "message": value }));
        let mut out = Vec::new();
        escape_json_record(record.as_bytes(), &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text, "{\"message\":\"a\\nb\\r\\u0000\\u001b\\u007f\\u0085\\u009b\\u2028é\\\"\\\\\"}\n",
            "serde_json's escapes, and ours for DEL, C1 and U+2028"
        );
        let parsed: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(parsed["message"], value);
    }

    /// Collects what it is given.
    #[derive(Default)]
    struct Collect(Mutex<Vec<(Level, Vec<u8>)>>);

    impl Deliver for Collect {
        fn deliver(&self, level: Level, record: &[u8]) {
            self.0.lock().unwrap().push((level, record.to_vec()));
        }
    }

    #[test]
    fn a_record_written_in_pieces_is_one_record() {
        let collect = Arc::new(Collect::default());
        let writer = RecordWriter::new(Format::Text, vec![collect.clone(), collect.clone()]);
        {
            let mut record = writer.make_writer();
            record.write_all(b"first half\n").unwrap();
            record.flush().unwrap();
            record.write_all(b"second half\n").unwrap();
        }
        // Made but never written to: nothing.
        drop(writer.make_writer());
        let got = collect.0.lock().unwrap();
        assert_eq!(got.len(), 2, "once to each destination");
        assert_eq!(got[0], (Level::INFO, b"first half\\nsecond half\n".to_vec()));
    }

    #[test]
    fn the_text_layer_writes_one_line_per_event() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let collect = Arc::new(Collect::default());
        let subscriber =
            tracing_subscriber::registry().with(text_layer(RecordWriter::new(Format::Text, vec![collect.clone()])));
        tracing::subscriber::with_default(subscriber, || {
            let peer = "10.0.0.1:1\r\nx";
            let span = tracing::info_span!("conn", id = 1, peer = %peer);
            let _entered = span.enter();
            let target = "/x?a=\n2026-12-04T16:00:09.000000Z  INFO conn{id=9}: FORGED";
            tracing::warn!(path = %target, "GET {target}: \u{9b}2J");
        });
        let got = collect.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Level::WARN);
        let line = std::str::from_utf8(&got[0].1).unwrap();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with('\n') && !line.trim_end().chars().any(char::is_control), "{line:?}");
        assert!(line.contains(r"conn{id=1 peer=10.0.0.1:1\r\nx}: GET /x?a=\n2026-12-04T16"), "{line}");
        assert!(line.contains(r"path=/x?a=\n2026-12-04T16:00:09.000000Z  INFO conn{id=9}: FORGED"), "{line}");
    }

    type Written = Arc<Mutex<Vec<Vec<u8>>>>;

    /// Writes in order into a shared list, each write waiting while the gate is held.
    struct Gated {
        gate: Arc<Mutex<()>>,
        written: Written,
    }

    impl Output for Gated {
        fn write(&mut self, _: Level, record: &[u8], _: &Notices) -> bool {
            let _open = self.gate.lock().unwrap();
            self.written.lock().unwrap().push(record.to_vec());
            true
        }
    }

    fn gated() -> (Arc<Mutex<()>>, Written, Gated) {
        let gate = Arc::new(Mutex::new(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        (gate.clone(), written.clone(), Gated { gate, written })
    }

    #[test]
    fn a_stalled_sink_drops_counts_and_says_it_once() {
        let (_, notes, output) = gated();
        let stderr = Queue::start(Sink::Stderr, "stderr".into(), output, Arc::new(|_| {}), Notices::default()).unwrap();
        let notices = Notices { stderr: Some(stderr.clone()) };
        let lost = Arc::new(AtomicUsize::new(0));
        let counted = lost.clone();
        let on_lost: OnLost = Arc::new(move |sink| {
            assert_eq!(sink, Sink::Syslog);
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let (gate, written, output) = gated();
        let queue = Queue::start(Sink::Syslog, "syslog".into(), output, on_lost, notices).unwrap();
        let held = gate.lock().unwrap();
        // The first record is taken by the thread, which then stalls on it.
        queue.deliver(Level::INFO, b"0\n");
        let until = Instant::now() + Duration::from_secs(5);
        while !queue.shared.lock().writing && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        let total = 1 + QUEUE_RECORDS + 100;
        for i in 1..total {
            queue.deliver(Level::INFO, format!("{i}\n").as_bytes());
        }
        // Never waited for the sink; the queue holds its bound, the rest is dropped.
        assert!(started.elapsed() < Duration::from_secs(1));
        let dropped = lost.load(Ordering::Relaxed);
        assert_eq!(dropped, 100);
        assert!(!queue.wait_idle(Instant::now() + Duration::from_millis(20)), "still stalled");
        drop(held);
        assert!(queue.wait_idle(Instant::now() + Duration::from_secs(5)));
        // In order: the one taken, then the ones that found room.
        let written = written.lock().unwrap();
        let numbers: Vec<usize> =
            written.iter().map(|r| std::str::from_utf8(r).unwrap().trim_end().parse().unwrap()).collect();
        assert_eq!(numbers, (0..=QUEUE_RECORDS).collect::<Vec<_>>());
        assert!(stderr.wait_idle(Instant::now() + Duration::from_secs(5)));
        let notes = notes.lock().unwrap();
        assert_eq!(
            notes.as_slice(),
            [b"websockify: syslog is not keeping up; dropping log lines (counted in websockify_log_lines_dropped_total)\n"]
        );
    }

    #[test]
    fn the_log_file_is_reopened_in_its_place_among_the_lines() {
        let dir = std::env::temp_dir().join(format!("websockify-logging-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ws.log");
        let logging = Logging::start(
            Sinks { format: Format::Text, stderr: false, file: Some(path.clone()), syslog: None },
            Arc::new(|_| {}),
        )
        .unwrap();
        let file = logging.file.clone().unwrap();
        file.deliver(Level::INFO, b"before\n");
        std::fs::rename(&path, dir.join("ws.log.1")).unwrap();
        logging.reopen_file();
        file.deliver(Level::INFO, b"after\n");
        logging.flush(Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string(dir.join("ws.log.1")).unwrap(), "before\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flush_is_bounded() {
        let (gate, _, output) = gated();
        let queue = Queue::start(Sink::File, "f".into(), output, Arc::new(|_| {}), Notices::default()).unwrap();
        let logging = Logging {
            format: Format::Text,
            stderr: None,
            file: Some(queue.clone()),
            syslog: None,
            notices: Notices::default(),
        };
        let _held = gate.lock().unwrap();
        queue.deliver(Level::INFO, b"stuck\n");
        let started = Instant::now();
        logging.flush(Duration::from_millis(100));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(2), "{took:?}");
    }
}
