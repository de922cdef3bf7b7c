//! The blocking client of the one-session scenarios (throughput, message
//! rate, latency): one connection, plain blocking syscalls, so no event loop
//! sits between the measurement and the socket.

use crate::wire::{self, Deframer, Url};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// A stalled proxy fails the run after this long instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Large reads: loopback rarely hands over more at once.
const READ_BUF: usize = 1 << 20;

enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connected client, past the TLS and WebSocket handshakes if any.
pub struct Conn {
    stream: Stream,
    pub ws: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    deframer: Deframer,
}

impl Conn {
    pub fn connect(url: &Url) -> io::Result<Conn> {
        let tcp = TcpStream::connect(url.addr())?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let stream = if url.tls {
            let name =
                ServerName::try_from(url.host.clone()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let conn = rustls::ClientConnection::new(tls_config(), name).map_err(io::Error::other)?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        } else {
            Stream::Tcp(tcp)
        };
        let mut c =
            Conn { stream, ws: url.ws, buf: vec![0; READ_BUF], start: 0, end: 0, deframer: Deframer::new(url.ws) };
        if url.ws {
            c.handshake(url)?;
        }
        Ok(c)
    }

    fn handshake(&mut self, url: &Url) -> io::Result<()> {
        let (request, accept) = wire::handshake_request(url, std::process::id() as u64);
        self.stream.write_all(&request)?;
        self.stream.flush()?;
        let head = loop {
            if let Some(i) = wire::head_end(&self.buf[..self.end]) {
                break i;
            }
            if self.end > 16384 {
                return Err(io::Error::other("handshake: response head too long"));
            }
            self.fill()?;
        };
        wire::check_handshake_response(&self.buf[..head], &accept)?;
        // Bytes after the head already belong to the frame stream.
        self.start = head;
        Ok(())
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Consumes n payload bytes; they are appended to `keep` if given.
    pub fn read_payload(&mut self, n: u64, mut keep: Option<&mut Vec<u8>>) -> io::Result<()> {
        let mut got = 0;
        while got < n {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                self.fill()?;
            }
            let (used, seen) = self.deframer.feed(&self.buf[self.start..self.end], n - got, keep.as_deref_mut())?;
            self.start += used;
            got += seen;
        }
        Ok(())
    }

    fn fill(&mut self) -> io::Result<()> {
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by peer")),
            Ok(k) => {
                self.end += k;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no data from the proxy for {} s", IO_TIMEOUT.as_secs()),
            )),
            Err(e) => Err(e),
        }
    }

    /// Ends the session politely: a close frame, then FIN.
    pub fn close(mut self) {
        if self.ws {
            let _ = self.send(&wire::close_frame());
        }
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let tcp = match &self.stream {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => &s.sock,
        };
        let _ = tcp.shutdown(std::net::Shutdown::Write);
    }
}

/// TLS client settings shared by every TLS run: the same single suite
/// (TLS 1.3, AES-128-GCM) against every server, so the server's suite
/// preference cannot make one system do cheaper crypto than another. The
/// bench's certificate is self-signed and generated per run: not verified.
fn tls_config() -> Arc<rustls::ClientConfig> {
    use std::sync::OnceLock;
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
            let provider = Arc::new(provider);
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3 with AES-128-GCM is a valid configuration")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts any server certificate but still checks the handshake signature.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
