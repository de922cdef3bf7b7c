//! Streams the relay can split into a read half and a write half: plain TCP and UNIX
//! sockets split for free (borrowed halves, no lock); TLS streams go through
//! `tokio::io::split`, which the relay needs because it reads and writes concurrently.

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UnixStream, tcp, unix};

/// A duplex byte stream that can be used by two concurrent loops, one reading, one
/// writing. Generic code over this trait is monomorphised per stream type, so plain TCP
/// pays nothing for TLS being possible.
pub trait Split: AsyncRead + AsyncWrite + Unpin + Send {
    type Read<'a>: AsyncRead + AsTcp + Unpin + Send
    where
        Self: 'a;
    type Write<'a>: AsyncWrite + AsTcp + Unpin + Send
    where
        Self: 'a;

    fn split_io(&mut self) -> (Self::Read<'_>, Self::Write<'_>);
}

impl Split for TcpStream {
    type Read<'a> = tcp::ReadHalf<'a>;
    type Write<'a> = tcp::WriteHalf<'a>;

    fn split_io(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.split()
    }
}

impl Split for UnixStream {
    type Read<'a> = unix::ReadHalf<'a>;
    type Write<'a> = unix::WriteHalf<'a>;

    fn split_io(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.split()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Split for tokio_rustls::server::TlsStream<S> {
    type Read<'a>
        = ReadHalf<&'a mut Self>
    where
        Self: 'a;
    type Write<'a>
        = WriteHalf<&'a mut Self>
    where
        Self: 'a;

    fn split_io(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        tokio::io::split(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Split for tokio_rustls::client::TlsStream<S> {
    type Read<'a>
        = ReadHalf<&'a mut Self>
    where
        Self: 'a;
    type Write<'a>
        = WriteHalf<&'a mut Self>
    where
        Self: 'a;

    fn split_io(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        tokio::io::split(self)
    }
}

/// A stream that first replays bytes already read from it (hyper's `Rewind`): sniffing
/// reads the first bytes of a connection to tell TLS from HTTP, and the TLS handshake must
/// still see them.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: bytes::Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Access to the TCP socket under a stream half, for the zero-copy path of
/// [`crate::session::splice`]; `None` for anything that is not plain TCP.
pub trait AsTcp {
    fn as_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl AsTcp for tcp::ReadHalf<'_> {
    fn as_tcp(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl AsTcp for tcp::WriteHalf<'_> {
    fn as_tcp(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl AsTcp for unix::ReadHalf<'_> {}
impl AsTcp for unix::WriteHalf<'_> {}
impl<T> AsTcp for ReadHalf<T> {}
impl<T> AsTcp for WriteHalf<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn rewind_replays_then_reads_on() {
        let mut r = Rewind::new(bytes::Bytes::from_static(b"\x16\x03"), &b"\x01rest"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"\x16\x03\x01rest");
    }
}
