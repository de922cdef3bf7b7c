//! Client and target of the benchmark suite (`bench/run` drives it).
//!
//! ```text
//! loadgen serve [--port P]                       the TCP target; prints "PORT p"
//! loadgen push URL BYTES SIZE                    client -> target, SIZE-byte messages
//! loadgen pull URL BYTES SIZE                    target -> client, SIZE bytes per target write
//! loadgen latency URL --rate R --seconds S --size B
//! loadgen scale URL --sessions N --seconds S [--interval-ms I] [--size B] [--settle S] [--parallel C]
//! loadgen rate URL --seconds S [--parallel C] [--size B]
//! ```
//!
//! URL is `tcp://`, `tls://` (raw bytes, for socat and direct TCP), `ws://`
//! or `wss://` (RFC 6455, binary frames) `HOST:PORT[/path]`. Each client
//! command prints one JSON object on stdout; `client_cpu` is this process's
//! own CPU seconds, so the caller can tell when the client, not the proxy,
//! was the bottleneck.

mod client;
mod swarm;
mod target;
mod wire;

use client::Conn;
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};
use wire::{Url, CHECK_BYTES};

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(Some(json)) => {
            println!("{json}");
            let _ = io::stdout().flush();
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> io::Result<Option<String>> {
    let (cmd, pos, opt) = parse_args(args)?;
    let flag = |name: &str, default: f64| -> io::Result<f64> {
        opt.get(name).map_or(Ok(default), |v| v.parse().map_err(|_| usage(&format!("bad --{name} {v:?}"))))
    };
    let url = || -> io::Result<Url> { Url::parse(pos.first().ok_or_else(|| usage("no URL"))?) };
    let size_arg = |i: usize| -> io::Result<u64> {
        pos.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| usage("BYTES and SIZE needed"))
    };
    let cpu0 = cpu_seconds();
    let json = match cmd.as_str() {
        "serve" => {
            target::serve(flag("port", 0.0)? as u16)?;
            return Ok(None);
        }
        "push" => push(&url()?, size_arg(1)?, size_arg(2)?.max(1))?,
        "pull" => pull(&url()?, size_arg(1)?, size_arg(2)?.max(1))?,
        "latency" => latency(&url()?, flag("rate", 1000.0)?, flag("seconds", 3.0)?, flag("size", 64.0)? as usize)?,
        "scale" => swarm::scale(
            &url()?,
            flag("sessions", 1000.0)? as usize,
            flag("seconds", 60.0)?,
            Duration::from_millis(flag("interval-ms", 1000.0)? as u64),
            flag("size", 64.0)? as usize,
            flag("settle", 3.0)?,
            flag("parallel", 128.0)? as usize,
        )?,
        "rate" => {
            swarm::rate(&url()?, flag("seconds", 3.0)?, flag("parallel", 16.0)? as usize, flag("size", 64.0)? as usize)?
        }
        _ => return Err(usage(&format!("unknown command {cmd:?}"))),
    };
    // Every result is an object: add the client's CPU time to it.
    let body = json.strip_suffix('}').unwrap_or(&json);
    Ok(Some(format!("{body}, \"client_cpu\": {:.4}}}", cpu_seconds() - cpu0)))
}

fn parse_args(args: &[String]) -> io::Result<(String, Vec<String>, HashMap<String, String>)> {
    let mut it = args.iter();
    let cmd = it.next().ok_or_else(|| usage("no command"))?.clone();
    let (mut pos, mut opt) = (Vec::new(), HashMap::new());
    while let Some(a) = it.next() {
        match a.strip_prefix("--") {
            Some(name) => {
                let v = it.next().ok_or_else(|| usage(&format!("--{name} needs a value")))?;
                opt.insert(name.to_string(), v.clone());
            }
            None => pos.push(a.clone()),
        }
    }
    Ok((cmd, pos, opt))
}

fn usage(why: &str) -> io::Error {
    let doc = include_str!("main.rs").lines().skip(3).take(7);
    let lines: Vec<&str> = doc.map(|l| l.trim_start_matches("//! ")).collect();
    io::Error::new(io::ErrorKind::InvalidInput, format!("{why}\nusage:\n{}", lines.join("\n")))
}

/// Pre-built messages of `size` payload bytes, about 256 KiB of them, whose
/// payload is a whole number of pattern periods (so the block can be sent
/// again and again as one continuous stream). Returns (bytes, messages).
fn message_block(ws: bool, size: u64) -> (Vec<u8>, u64) {
    let mut count = ((256 << 10) / size).max(1);
    while !(count * size).is_multiple_of(256) {
        count += 1;
    }
    (messages(ws, size, count), count)
}

fn messages(ws: bool, size: u64, count: u64) -> Vec<u8> {
    let payload = wire::pattern(0, (size * count) as usize);
    if !ws {
        return payload;
    }
    let mut out = Vec::with_capacity(payload.len() + count as usize * 14);
    for chunk in payload.chunks(size as usize) {
        wire::push_frame(&mut out, 0x2, chunk);
    }
    out
}

/// Client -> target: `bytes` (rounded down to whole messages) in messages of
/// `size` bytes, written back to back; the time runs until the target has
/// confirmed it got them all.
fn push(url: &Url, bytes: u64, size: u64) -> io::Result<String> {
    let count = (bytes / size).max(1);
    let bytes = count * size;
    let mut c = Conn::connect(url)?;
    let (block, per_block) = message_block(c.ws, size);
    let tail = messages(c.ws, size, count % per_block);
    let t0 = Instant::now();
    c.send(&wire::message(c.ws, format!("PUSH {bytes}\n").as_bytes()))?;
    for _ in 0..count / per_block {
        c.send(&block)?;
    }
    c.send(&tail)?;
    let mut ack = Vec::new();
    c.read_payload(3, Some(&mut ack))?;
    let secs = t0.elapsed().as_secs_f64();
    c.close();
    match &ack[..] {
        b"OK\n" => Ok(format!("{{\"secs\": {secs:.6}, \"bytes\": {bytes}, \"messages\": {count}") + "}"),
        b"NO\n" => Err(io::Error::other("push: the target received corrupted payload")),
        _ => Err(io::Error::other(format!("push: unexpected acknowledgement {ack:?}"))),
    }
}

/// Target -> client: the target writes `bytes` in writes of `size` bytes;
/// the time runs until the client has counted them all.
fn pull(url: &Url, bytes: u64, size: u64) -> io::Result<String> {
    let mut c = Conn::connect(url)?;
    let t0 = Instant::now();
    c.send(&wire::message(c.ws, format!("PULL {bytes} {size}\n").as_bytes()))?;
    let want = bytes.min(CHECK_BYTES);
    let mut head = Vec::with_capacity(want as usize);
    c.read_payload(want, Some(&mut head))?;
    c.read_payload(bytes - want, None)?;
    let secs = t0.elapsed().as_secs_f64();
    c.close();
    if head != wire::pattern(0, want as usize) {
        return Err(io::Error::other("pull: the client received corrupted payload"));
    }
    Ok(format!("{{\"secs\": {secs:.6}, \"bytes\": {bytes}, \"messages\": {}}}", bytes / size))
}

/// Echo round trips of `size` bytes at a fixed rate on one session; each
/// sample is the time from just before the write to the last byte back.
fn latency(url: &Url, rate: f64, seconds: f64, size: usize) -> io::Result<String> {
    let mut c = Conn::connect(url)?;
    let payload = wire::pattern(0, size);
    let msg = wire::message(c.ws, &payload);
    c.send(&wire::message(c.ws, b"ECHO\n"))?;
    let mut back = Vec::with_capacity(size);
    let mut round_trip = |c: &mut Conn| -> io::Result<Duration> {
        back.clear();
        let t = Instant::now();
        c.send(&msg)?;
        c.read_payload(size as u64, Some(&mut back))?;
        let d = t.elapsed();
        if back != payload {
            return Err(io::Error::other("echo came back different"));
        }
        Ok(d)
    };
    for _ in 0..20 {
        round_trip(&mut c)?; // warm-up: not sampled
    }
    let n = (rate * seconds).round().max(1.0) as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        let due = start + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        samples.push(round_trip(&mut c)?.as_nanos().min(u32::MAX as u128) as u32);
    }
    c.close();
    Ok(format!("{{\"samples_ns\": {}}}", json_list(&samples)))
}

pub fn json_list(v: &[u32]) -> String {
    let items: Vec<String> = v.iter().map(u32::to_string).collect();
    format!("[{}]", items.join(","))
}

pub fn json_str(s: Option<&str>) -> String {
    match s {
        None => "null".into(),
        Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// User + system CPU seconds of this process (all threads).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// 9,000 sessions need more descriptors than the usual soft limit: raise it
/// to the hard limit (20,000 on the bench machine).
fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
