//! The TCP target every system forwards to. Each connection starts with one
//! request line, which travels through the proxy like any other bytes:
//!
//! * `PUSH n`   sink: read n bytes, answer `OK` (or `NO` if the first 64 KiB
//!   are not the expected pattern), then wait for the client to close;
//! * `PULL n s` source: write n pattern bytes, s bytes per write call (one
//!   "message" per write, as a chatty server would), then wait for close;
//! * `ECHO`     echo everything back until the client closes.
//!
//! One thread (a current-thread runtime): the target never takes both cores
//! from the proxy, and 9,000 mostly idle echo sessions need no more.

use crate::wire::{self, CHECK_BYTES};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub fn serve(port: u16) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(([127, 0, 0, 1], port).into())?;
        // A deep backlog: the scale scenario connects thousands at once.
        let listener = socket.listen(4096)?;
        println!("PORT {}", listener.local_addr()?.port());
        loop {
            let (conn, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(e) = handle(conn).await {
                    // Probes and aborted runs end here; the client reports
                    // failures, the target carries on.
                    eprintln!("target: {e}");
                }
            });
        }
    })
}

async fn handle(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let (line, rest) = request_line(&mut conn).await?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> io::Result<u64> {
        words.get(i).and_then(|w| w.parse().ok()).ok_or_else(|| io::Error::other(format!("bad request {line:?}")))
    };
    match words.first().copied() {
        Some("PUSH") => sink(&mut conn, num(1)?, rest).await?,
        Some("PULL") => source(&mut conn, num(1)?, num(2)?.max(1)).await?,
        Some("ECHO") => return echo(conn, rest).await,
        _ => return Err(io::Error::other(format!("bad request {line:?}"))),
    }
    drain(&mut conn).await
}

/// Reads up to the first newline; returns the line and the bytes past it.
async fn request_line(conn: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = data.iter().position(|&b| b == b'\n') {
            let rest = data.split_off(i + 1);
            return Ok((String::from_utf8_lossy(&data).trim().to_string(), rest));
        }
        if data.len() > 1024 {
            return Err(io::Error::other("request line too long"));
        }
        let k = conn.read(&mut chunk).await?;
        if k == 0 {
            return Err(io::Error::other("closed before the request line"));
        }
        data.extend_from_slice(&chunk[..k]);
    }
}

async fn sink(conn: &mut TcpStream, n: u64, already: Vec<u8>) -> io::Result<()> {
    let want = n.min(CHECK_BYTES) as usize;
    let mut head = already;
    let mut got = head.len() as u64;
    let mut buf = vec![0u8; 1 << 20];
    while got < n {
        let k = conn.read(&mut buf).await?;
        if k == 0 {
            return Err(io::Error::other(format!("sink: EOF after {got} of {n} bytes")));
        }
        if head.len() < want {
            head.extend_from_slice(&buf[..k.min(want - head.len())]);
        }
        got += k as u64;
    }
    head.truncate(want);
    let ok = head == wire::pattern(0, want);
    conn.write_all(if ok { b"OK\n" } else { b"NO\n" }).await
}

async fn source(conn: &mut TcpStream, n: u64, size: u64) -> io::Result<()> {
    // Larger writes are split to 1 MiB; the pattern has one extra period so
    // a write may start anywhere in it.
    let size = size.min(1 << 20) as usize;
    let block = wire::pattern(0, size + 256);
    let mut sent = 0u64;
    while sent < n {
        let off = (sent % 256) as usize;
        let k = ((n - sent) as usize).min(size);
        conn.write_all(&block[off..off + k]).await?;
        sent += k as u64;
    }
    Ok(())
}

async fn echo(mut conn: TcpStream, rest: Vec<u8>) -> io::Result<()> {
    conn.write_all(&rest).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let k = conn.read(&mut buf).await?;
        if k == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..k]).await?;
    }
}

async fn drain(conn: &mut TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 65536];
    while conn.read(&mut buf).await? > 0 {}
    Ok(())
}
