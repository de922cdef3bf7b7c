//! Measuring the proxy process while a test attacks or starves it: resident memory
//! (`VmRSS`), CPU time and open file descriptors from `/proc/PID`, sampled by a thread; and
//! the round-trip latency of a legitimate echo session, through tokio-tungstenite.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Resident set size of `pid`, in KiB (0 if the process is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time `pid` has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count fields after its closing paren.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the paren.
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    // CLK_TCK is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub rss_start_kib: u64,
    pub rss_max_kib: u64,
    pub rss_end_kib: u64,
    pub fds_max: usize,
    /// CPU time used over the sampling, as a fraction of one core.
    pub cpu_share: f64,
    pub elapsed: Duration,
}

impl Usage {
    pub fn rss_growth_mib(&self) -> f64 {
        self.rss_max_kib.saturating_sub(self.rss_start_kib) as f64 / 1024.0
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {:.1} -> max {:.1} -> {:.1} MiB, max {} fds, CPU {:.0}% of a core over {:.1} s",
            self.rss_start_kib as f64 / 1024.0,
            self.rss_max_kib as f64 / 1024.0,
            self.rss_end_kib as f64 / 1024.0,
            self.fds_max,
            self.cpu_share * 100.0,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Samples a process's RSS and fd count every 20 ms on a thread, until [`Sampler::stop`].
pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, usize)>>,
    rss_start: u64,
    cpu_start: Duration,
    started: Instant,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut rss, mut fds) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                rss = rss.max(rss_kib(pid));
                fds = fds.max(fd_count(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            (rss, fds)
        });
        Self {
            pid,
            stop,
            thread: Some(thread),
            rss_start: rss_kib(pid),
            cpu_start: cpu_time(pid),
            started: Instant::now(),
        }
    }

    pub fn stop(mut self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let (rss_max, fds_max) = self.thread.take().expect("running").join().expect("sampler");
        let elapsed = self.started.elapsed();
        let cpu = cpu_time(self.pid).saturating_sub(self.cpu_start);
        let rss_end = rss_kib(self.pid);
        Usage {
            rss_start_kib: self.rss_start,
            rss_max_kib: rss_max.max(rss_end),
            rss_end_kib: rss_end,
            fds_max,
            cpu_share: cpu.as_secs_f64() / elapsed.as_secs_f64(),
            elapsed,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A legitimate session (the proxy in front of an echo target) that measures round trips.
pub struct EchoProbe {
    ws: Ws,
    payload: Vec<u8>,
}

impl EchoProbe {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = connect_async(url).await.expect("probe session opens");
        Self { ws, payload: vec![0x5a; 64] }
    }

    /// One 64-byte binary message out and back.
    pub async fn round_trip(&mut self) -> Duration {
        let start = Instant::now();
        self.ws.send(Message::binary(self.payload.clone())).await.expect("probe sends");
        let mut got = 0;
        while got < self.payload.len() {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("probe echo within 10 s")
                .expect("probe session open")
                .expect("probe session clean");
            if let Message::Binary(b) = msg {
                got += b.len();
            }
        }
        start.elapsed()
    }

    /// `n` round trips, `gap` apart.
    pub async fn sample(&mut self, n: usize, gap: Duration) -> Latency {
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            all.push(self.round_trip().await);
            tokio::time::sleep(gap).await;
        }
        Latency::of(all)
    }

    /// Round trips `gap` apart until `stop` is set (by the attack, when it ends).
    pub async fn sample_until(&mut self, stop: &AtomicBool, gap: Duration) -> Latency {
        let mut all = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            all.push(self.round_trip().await);
            tokio::time::sleep(gap).await;
        }
        Latency::of(all)
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Round-trip times of a probe.
#[derive(Debug, Clone)]
pub struct Latency {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    fn of(mut all: Vec<Duration>) -> Self {
        all.sort();
        let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        Self { samples: all.len(), p50: at(0.5), p99: at(0.99), max: all.last().copied().unwrap_or_default() }
    }

    /// The bound the attack tests hold a legitimate session to: twice its baseline p99,
    /// plus slack for a 2-core machine that also runs the attacker and other tests.
    pub fn within_twice(&self, baseline: &Latency, slack: Duration) -> bool {
        self.p99 <= baseline.p99 * 2 + slack
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{} round trips: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.samples,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}
