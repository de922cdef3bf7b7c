//! The target side: resolve and connect to where a session is forwarded, and the socket
//! options every TCP connection of ours gets.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::ServerName;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

use crate::outbound::Target;

/// A connected target.
#[derive(Debug)]
pub enum TargetStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Why the target could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("connecting to {addr}: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
    #[error("connecting to unix socket {}: {source}", path.display())]
    Unix { path: PathBuf, source: io::Error },
    #[error("no connection to {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("{host} is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS handshake with {host}: {source}")]
    Tls { host: String, source: io::Error },
    #[error("sending the PROXY protocol header: {0}")]
    ProxyHeader(io::Error),
}

/// Connects to `target`, trying each resolved address in turn, then sends `proxy_header`
/// (a PROXY protocol header, before any TLS, as HAProxy's `send-proxy` does), then (with
/// `tls`) does a verified TLS handshake with the host name as SNI; all within `timeout`.
pub async fn connect(
    target: &Target,
    prefer_ipv6: bool,
    tls: Option<&TlsConnector>,
    timeout: Duration,
    proxy_header: Option<&[u8]>,
) -> Result<TargetStream, ConnectError> {
    let connect = async {
        let mut stream = connect_inner(target, prefer_ipv6).await?;
        if let Some(header) = proxy_header {
            let sent = match &mut stream {
                TargetStream::Tcp(s) => s.write_all(header).await,
                TargetStream::Unix(s) => s.write_all(header).await,
                TargetStream::Tls(_) => unreachable!("connect_inner makes plain streams"),
            };
            sent.map_err(ConnectError::ProxyHeader)?;
        }
        match (tls, stream, target) {
            (Some(tls), TargetStream::Tcp(tcp), Target::Tcp { host, .. }) => {
                let name =
                    ServerName::try_from(host.clone()).map_err(|_| ConnectError::ServerName { host: host.clone() })?;
                let tls =
                    tls.connect(name, tcp).await.map_err(|source| ConnectError::Tls { host: host.clone(), source })?;
                Ok(TargetStream::Tls(Box::new(tls)))
            }
            (_, stream, _) => Ok(stream),
        }
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout(target.to_string(), timeout)),
    }
}

async fn connect_inner(target: &Target, prefer_ipv6: bool) -> Result<TargetStream, ConnectError> {
    match target {
        Target::Unix(path) => UnixStream::connect(path)
            .await
            .map(TargetStream::Unix)
            .map_err(|source| ConnectError::Unix { path: path.clone(), source }),
        Target::Tcp { host, port } => {
            let addrs = resolve(host, *port, prefer_ipv6).await?;
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        tune_tcp(&stream);
                        return Ok(TargetStream::Tcp(stream));
                    }
                    Err(source) => last = Some(ConnectError::Tcp { addr, source }),
                }
            }
            Err(last.unwrap_or_else(|| ConnectError::NoAddress { host: host.clone() }))
        }
    }
}

/// Resolves `host` (a name or a literal address), IPv6 addresses first with `prefer_ipv6`,
/// else IPv4 first.
pub async fn resolve(host: &str, port: u16, prefer_ipv6: bool) -> Result<Vec<SocketAddr>, ConnectError> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ConnectError::Resolve { host: host.to_owned(), source })?
        .collect();
    addrs.sort_by_key(|a| a.is_ipv6() != prefer_ipv6);
    if addrs.is_empty() {
        return Err(ConnectError::NoAddress { host: host.to_owned() });
    }
    Ok(addrs)
}

/// TCP_NODELAY (the proxy forwards what it has at once; Nagle would delay interactive
/// traffic like VNC input) and keepalive (find dead peers on idle sessions). Failures are
/// harmless and ignored.
/// The same options on a listening socket, for Linux to give them to every connection it
/// accepts: none of the 4 `setsockopt` calls per accepted connection then.
pub fn tune_listener(listener: &tokio::net::TcpListener) {
    let socket = SockRef::from(listener);
    let _ = socket.set_tcp_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(10));
    let _ = socket.set_tcp_keepalive(&keepalive);
}

pub fn tune_tcp(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(10));
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
