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

/// Round trips through the proxy, and (the control) through a `socat` relay process to the
/// same echo target at the same moments: a relay process that the attack leaves alone, so
/// what the machine alone adds (a busy scheduler waking a process late) shows in both.
#[derive(Debug, Clone)]
pub struct Sample {
    pub proxy: Latency,
    pub direct: Latency,
}

impl Sample {
    /// The bound the attack and fault tests hold a legitimate session to: its p99 within
    /// twice the baseline's, plus `slack`, plus the p99 the control saw meanwhile (on a
    /// 2-core machine shared with the attacker, a process woken late is not the proxy's doing).
    pub fn within_twice(&self, baseline: &Sample, slack: Duration) -> bool {
        self.proxy.p99 <= baseline.proxy.p99 * 2 + slack + self.direct.p99
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "{} (socat control: p50 {:.2} ms, p99 {:.2} ms)",
            self.proxy,
            ms(self.direct.p50),
            ms(self.direct.p99)
        )
    }
}

/// An echo target and an [`EchoProbe`] on a thread and runtime of their own, so that what
/// the probe measures is the proxy (and the machine), not the test's own runtime busy with
/// thousands of attacking tasks.
pub struct ProbeThread {
    /// Where the probe's echo target listens: give the proxy this as the probe's target.
    pub echo: std::net::SocketAddr,
    commands: std::sync::mpsc::Sender<ProbeCommand>,
    control: std::process::Child,
}

impl Drop for ProbeThread {
    fn drop(&mut self) {
        let _ = self.control.kill();
        let _ = self.control.wait();
    }
}

enum ProbeCommand {
    Connect(String, tokio::sync::oneshot::Sender<()>),
    Sample(usize, tokio::sync::oneshot::Sender<Sample>),
    Until(Arc<AtomicBool>, tokio::sync::oneshot::Sender<Sample>),
}

/// The probe's session and its control connection.
struct Probes {
    ws: EchoProbe,
    direct: TcpStream,
}

impl Probes {
    async fn direct_round_trip(&mut self) -> Duration {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let start = Instant::now();
        let mut buf = [0x5a; 64];
        self.direct.write_all(&buf).await.expect("control sends");
        self.direct.read_exact(&mut buf).await.expect("control echo");
        start.elapsed()
    }

    async fn sample(&mut self, n: Option<usize>, stop: &AtomicBool, gap: Duration) -> Sample {
        let (mut proxy, mut direct) = (Vec::new(), Vec::new());
        while n.map_or(!stop.load(Ordering::Relaxed), |n| proxy.len() < n) {
            proxy.push(self.ws.round_trip().await);
            direct.push(self.direct_round_trip().await);
            tokio::time::sleep(gap).await;
        }
        Sample { proxy: Latency::of(proxy), direct: Latency::of(direct) }
    }
}

/// Connects to the socat control once it listens.
async fn control_connect(port: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => return s,
            Err(e) if start.elapsed() > Duration::from_secs(5) => panic!("socat control on port {port}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl ProbeThread {
    pub fn start() -> Self {
        let (commands, rx) = std::sync::mpsc::channel::<ProbeCommand>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (port_tx, rx_port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("probe runtime");
            let echo = rt.block_on(super::echo_target("127.0.0.1:0"));
            let _ = addr_tx.send(echo);
            let control_port = rx_port.recv().expect("control port");
            let mut probes = None;
            let never = AtomicBool::new(false);
            while let Ok(command) = rx.recv() {
                rt.block_on(async {
                    match command {
                        ProbeCommand::Connect(url, done) => {
                            let ws = EchoProbe::connect(&url).await;
                            let direct = control_connect(control_port).await;
                            direct.set_nodelay(true).expect("nodelay");
                            probes = Some(Probes { ws, direct });
                            let _ = done.send(());
                        }
                        ProbeCommand::Sample(n, done) => {
                            let probes = probes.as_mut().expect("connected");
                            let _ = done.send(probes.sample(Some(n), &never, Duration::from_millis(2)).await);
                        }
                        ProbeCommand::Until(stop, done) => {
                            let probes = probes.as_mut().expect("connected");
                            let _ = done.send(probes.sample(None, &stop, Duration::from_millis(5)).await);
                        }
                    }
                });
            }
        });
        let echo = addr_rx.recv().expect("probe echo target");
        let port = super::closed_port();
        let control = std::process::Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"))
            .arg(format!("TCP:{echo},nodelay"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (the latency control; scripts/peers.sh installs it)");
        port_tx.send(port).expect("probe thread");
        Self { echo, commands, control }
    }

    /// Opens the probe's session (the proxy at `url` must lead to [`ProbeThread::echo`]).
    pub async fn connect(&self, url: &str) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(ProbeCommand::Connect(url.to_owned(), tx)).expect("probe thread");
        rx.await.expect("probe connects");
    }

    /// `n` round trips 2 ms apart.
    pub async fn sample(&self, n: usize) -> Sample {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(ProbeCommand::Sample(n, tx)).expect("probe thread");
        rx.await.expect("probe samples")
    }

    /// Round trips 5 ms apart until `stop` is set; await the result after setting it.
    pub fn sample_until(&self, stop: Arc<AtomicBool>) -> tokio::sync::oneshot::Receiver<Sample> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(ProbeCommand::Until(stop, tx)).expect("probe thread");
        rx
    }
}
