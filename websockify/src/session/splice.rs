//! Zero-copy forwarding of target bytes to the client with splice(2), for the common case
//! of a plain TCP client and a plain TCP target in binary mode.
//!
//! The bytes of a binary frame are the target's bytes unchanged, so only the frame header
//! has to be written by us: the payload moves from the target socket into a pipe and from
//! the pipe into the client socket without being copied through user space. On loopback
//! this is what lets the proxy go faster than a copying relay such as socat (see
//! docs/benchmarks.md). The pipe costs two descriptors, so a session only gets one once it
//! shows bulk traffic; interactive sessions never do.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::{SendFlags, send};
use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Pipe size asked for; Linux caps it at /proc/sys/fs/pipe-max-size (1 MiB by default).
const PIPE_SIZE: usize = 1 << 20;

/// A pipe that carries one chunk at a time from the target to the client.
#[derive(Debug)]
pub struct Splicer {
    read_end: OwnedFd,
    write_end: OwnedFd,
    capacity: usize,
}

impl Splicer {
    pub fn new() -> io::Result<Self> {
        let (read_end, write_end) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let capacity = fcntl_setpipe_size(&write_end, PIPE_SIZE).or_else(|_| fcntl_getpipe_size(&write_end))?;
        Ok(Self { read_end, write_end, capacity })
    }

    /// Waits until `from` has data and moves as much as the (empty) pipe holds into it.
    /// Returns 0 at end of stream. Cancel-safe: data moves only in the poll that returns.
    pub async fn fill(&self, from: &TcpStream) -> io::Result<usize> {
        loop {
            from.readable().await?;
            let moved = from.try_io(Interest::READABLE, || {
                splice(from, None, &self.write_end, None, self.capacity, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)
                    .map_err(io::Error::from)
            });
            match moved {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a frame header that the next [`drain`](Self::drain) completes, with
    /// `MSG_MORE`: the kernel holds it to go out with the payload instead of sending a
    /// segment of its own (on loopback, a wake-up of the client for 10 bytes per chunk).
    pub async fn send_header(&self, to: &TcpStream, mut header: &[u8]) -> io::Result<()> {
        while !header.is_empty() {
            to.writable().await?;
            let sent = to.try_io(Interest::WRITABLE, || {
                send(to, header, SendFlags::MORE | SendFlags::DONTWAIT | SendFlags::NOSIGNAL).map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => header = &header[m..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves exactly `n` bytes (what the last [`fill`](Self::fill) returned) to `to`.
    pub async fn drain(&self, to: &TcpStream, mut n: usize) -> io::Result<()> {
        while n > 0 {
            to.writable().await?;
            let moved = to.try_io(Interest::WRITABLE, || {
                splice(&self.read_end, None, to, None, n, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)
                    .map_err(io::Error::from)
            });
            match moved {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => n -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
