//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts before
//! a connection's first byte to say who the client is. We read it from trusted sources
//! (`--accept-proxy-protocol`, `--proxy-protocol-from`) and send one to the target
//! (`--target-proxy-protocol`) so that it sees the real client too.
//!
//! Parsing and encoding are the `ppp` crate's; this module adds the streaming read, with
//! a deadline and size bounds, and the choice of what a header says.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12 bytes that start every v2 (binary) header.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// What starts every v1 (text) header.
pub const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The longest v1 header, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;
/// The largest v2 address block (addresses and TLVs) accepted. The specification allows
/// 65535; HAProxy's headers, with the TLVs it can add, stay far below this.
pub const V2_MAX_PAYLOAD: usize = 4096;
/// The fixed part of a v2 header: signature, version and command, family, length.
const V2_FIXED: usize = 16;

/// The header version sent to targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Text: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// Binary.
    V2,
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" | "1" => Ok(Self::V1),
            "v2" | "2" => Ok(Self::V2),
            _ => Err(format!("PROXY protocol version {s:?}: expected v1 or v2")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

/// What a received header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// The client's address, and the address it connected to (on the balancer).
    Proxied { version: Version, source: SocketAddr, destination: SocketAddr },
    /// No client address: v2 `LOCAL` (the balancer's own health check), v1 `UNKNOWN`, or
    /// a v2 family without IP addresses. The connection's own addresses apply.
    Local { version: Version },
}

/// Why no usable header was read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no complete PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before a complete PROXY protocol header ({0} bytes received)")]
    Closed(usize),
    #[error("no PROXY protocol header: the connection starts with {0}")]
    Missing(String),
    #[error("PROXY protocol v1 header longer than {V1_MAX} bytes")]
    V1TooLong,
    #[error("PROXY protocol v2 header announces {0} bytes of addresses, more than the {V2_MAX_PAYLOAD} accepted")]
    V2TooLong(usize),
    #[error("invalid PROXY protocol v1 header {0}: {1}")]
    V1(String, String),
    #[error("invalid PROXY protocol v2 header: {0}")]
    V2(String),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a PROXY header (v1 or v2) from the start of `io` within `timeout`. Returns what
/// it says and the bytes read past it (the connection's own first bytes, for the next
/// stage). A connection that does not start with a header is an error: when the protocol
/// is expected, it is required (as HAProxy's `accept-proxy` requires it).
pub async fn read_header<S: AsyncRead + Unpin>(
    io: &mut S,
    timeout: Duration,
) -> Result<(Header, BytesMut), ProxyError> {
    tokio::time::timeout(timeout, read(io)).await.map_err(|_| ProxyError::Timeout(timeout))?
}

async fn read<S: AsyncRead + Unpin>(io: &mut S) -> Result<(Header, BytesMut), ProxyError> {
    // Big enough for a v1 header, or a v2 header with IPv6 addresses and a few TLVs, plus
    // the start of what follows; reads stop once a header is complete or too long.
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if let Some(len) = header_len(&buf)? {
            let header = buf.split_to(len);
            return Ok((parse(&header)?, buf));
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(ProxyError::Closed(buf.len()));
        }
    }
}

/// Whether `first` (a connection's first bytes) starts like a PROXY header: the full v1
/// prefix or v2 signature, so that a short HTTP request is never mistaken for one.
pub fn starts_with_header(first: &[u8]) -> bool {
    first.starts_with(V1_PREFIX) || first.starts_with(V2_SIGNATURE)
}

/// The header's length once `buf` holds all of it; `None` while more is needed; an error
/// as soon as the bytes cannot be (or grow into) a header.
fn header_len(buf: &[u8]) -> Result<Option<usize>, ProxyError> {
    let n = buf.len();
    if n == 0 {
        return Ok(None);
    }
    if V2_SIGNATURE.starts_with(&buf[..n.min(V2_SIGNATURE.len())]) {
        if n < V2_FIXED {
            return Ok(None);
        }
        let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if payload > V2_MAX_PAYLOAD {
            return Err(ProxyError::V2TooLong(payload));
        }
        return Ok((n >= V2_FIXED + payload).then_some(V2_FIXED + payload));
    }
    if V1_PREFIX.starts_with(&buf[..n.min(V1_PREFIX.len())]) {
        // The header ends at the first CR, which must be followed by LF (checked by the
        // parser once that byte is here).
        return match buf[..n.min(V1_MAX)].iter().position(|&b| b == b'\r') {
            Some(cr) if cr + 1 < n => Ok(Some(cr + 2)),
            Some(_) => Ok(None),
            None if n >= V1_MAX => Err(ProxyError::V1TooLong),
            None => Ok(None),
        };
    }
    Err(ProxyError::Missing(describe(buf)))
}

/// Decodes a complete header (as delimited by [`header_len`]) with `ppp`.
fn parse(header: &[u8]) -> Result<Header, ProxyError> {
    use ppp::{v1, v2};
    if header.starts_with(V2_SIGNATURE) {
        let h = v2::Header::try_from(header).map_err(|e| ProxyError::V2(e.to_string()))?;
        let version = Version::V2;
        if h.command == v2::Command::Local {
            return Ok(Header::Local { version });
        }
        return Ok(match h.addresses {
            v2::Addresses::IPv4(a) => Header::Proxied {
                version,
                source: SocketAddr::new(a.source_address.into(), a.source_port),
                destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
            },
            v2::Addresses::IPv6(a) => Header::Proxied {
                version,
                source: SocketAddr::new(IpAddr::from(a.source_address).to_canonical(), a.source_port),
                destination: SocketAddr::new(IpAddr::from(a.destination_address).to_canonical(), a.destination_port),
            },
            v2::Addresses::Unspecified | v2::Addresses::Unix(_) => Header::Local { version },
        });
    }
    let h = v1::Header::try_from(header).map_err(|e| ProxyError::V1(describe(header), e.to_string()))?;
    let version = Version::V1;
    Ok(match h.addresses {
        v1::Addresses::Tcp4(a) => Header::Proxied {
            version,
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        v1::Addresses::Tcp6(a) => Header::Proxied {
            version,
            source: SocketAddr::new(IpAddr::from(a.source_address).to_canonical(), a.source_port),
            destination: SocketAddr::new(IpAddr::from(a.destination_address).to_canonical(), a.destination_port),
        },
        v1::Addresses::Unknown => Header::Local { version },
    })
}

/// The header we send to a target: `source` is the client, `destination` the address it
/// connected to. Without both, a header saying so (v1 `UNKNOWN`, v2 family `UNSPEC`),
/// which tells the target to use the connection's own addresses.
pub fn encode(version: Version, source: Option<SocketAddr>, destination: Option<SocketAddr>) -> Vec<u8> {
    let addresses = match (source, destination) {
        (Some(s), Some(d)) => Some(same_family(s, d)),
        _ => None,
    };
    match version {
        Version::V1 => match addresses {
            Some(pair) => ppp::v1::Addresses::from(pair).to_string().into_bytes(),
            None => ppp::v1::Addresses::Unknown.to_string().into_bytes(),
        },
        Version::V2 => {
            use ppp::v2::{Builder, Command, Protocol, Version as V};
            let builder = match addresses {
                Some(pair) => Builder::with_addresses(V::Two | Command::Proxy, Protocol::Stream, pair),
                None => Builder::with_addresses(
                    V::Two | Command::Proxy,
                    Protocol::Unspecified,
                    ppp::v2::Addresses::Unspecified,
                ),
            };
            // Only a payload over 64 KiB fails, and the addresses are at most 36 bytes.
            builder.build().expect("a v2 header with IP addresses fits its length field")
        }
    }
}

/// Both addresses in one family, as the protocol requires: IPv4 as IPv4-mapped IPv6 when
/// the other one is IPv6.
fn same_family(s: SocketAddr, d: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if s.is_ipv4() == d.is_ipv4() { (s, d) } else { (v6(s), v6(d)) }
}

/// Up to 16 bytes, printable ASCII as is and the rest as `\xNN`, for log lines.
fn describe(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(16).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    let more = if bytes.len() > 16 { "..." } else { "" };
    format!("\"{shown}{more}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8]) -> Result<(Header, BytesMut), ProxyError> {
        read_header(&mut &input[..], Duration::from_secs(1)).await
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn v1_tcp4_tcp6_unknown_and_what_follows() {
        let (h, rest) = read_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n").await.unwrap();
        let expected = Header::Proxied {
            version: Version::V1,
            source: addr("192.0.2.7:56324"),
            destination: addr("198.51.100.1:443"),
        };
        assert_eq!(h, expected);
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
        let (h, _) = read_all(b"PROXY TCP6 2001:db8::1 ::1 4000 80\r\n").await.unwrap();
        assert!(matches!(h, Header::Proxied { source, .. } if source == addr("[2001:db8::1]:4000")));
        let (h, rest) = read_all(b"PROXY UNKNOWN\r\n\x16\x03\x01").await.unwrap();
        assert_eq!(h, Header::Local { version: Version::V1 });
        assert_eq!(&rest[..], b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn v2_proxy_and_local() {
        // The specification's layout: signature, 0x21 (v2, PROXY), 0x11 (TCP over IPv4),
        // length 12, then source, destination, source port, destination port.
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend([0x21, 0x11, 0x00, 0x0c, 203, 0, 113, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x17, 0x70]);
        v2.extend(b"rest");
        let (h, rest) = read_all(&v2).await.unwrap();
        let expected = Header::Proxied {
            version: Version::V2,
            source: addr("203.0.113.9:8080"),
            destination: addr("127.0.0.1:6000"),
        };
        assert_eq!(h, expected);
        assert_eq!(&rest[..], b"rest");
        // LOCAL (health checks) with a TLV we do not use.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0x00, 0x04, 0x04, 0x00, 0x01, 0x00]);
        assert_eq!(read_all(&local).await.unwrap().0, Header::Local { version: Version::V2 });
    }

    #[tokio::test]
    async fn refusals() {
        assert!(
            matches!(read_all(b"GET / HTTP/1.1\r\n").await, Err(ProxyError::Missing(s)) if s == r#""GET / HTTP/1.1\r\n""#)
        );
        assert!(matches!(read_all(b"\x16\x03\x01\x02\x00").await, Err(ProxyError::Missing(_))));
        assert!(matches!(read_all(&[b'P'; 200][..1]).await, Err(ProxyError::Closed(1))));
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat();
        assert!(matches!(read_all(&long).await, Err(ProxyError::V1TooLong)));
        assert!(matches!(read_all(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX").await, Err(ProxyError::V1(..))));
        assert!(matches!(read_all(b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n").await, Err(ProxyError::V1(..))));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(read_all(&big).await, Err(ProxyError::V2TooLong(65535))));
        let mut v3 = V2_SIGNATURE.to_vec();
        v3.extend([0x31, 0x11, 0x00, 0x00]);
        assert!(matches!(read_all(&v3).await, Err(ProxyError::V2(_))));
    }

    #[tokio::test]
    async fn in_pieces_and_silence() {
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let task = tokio::spawn(async move { read_header(&mut rx, Duration::from_secs(5)).await.unwrap() });
        for piece in b"PROXY TCP4 10.1.2.3 10.0.0.1 1234 80\r\nG".chunks(3) {
            tokio::io::AsyncWriteExt::write_all(&mut tx, piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        let (h, rest) = task.await.unwrap();
        assert!(matches!(h, Header::Proxied { source, .. } if source == addr("10.1.2.3:1234")));
        assert_eq!(&rest[..], b"G");
        let (_tx, mut rx) = tokio::io::duplex(64);
        let err = read_header(&mut rx, Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, ProxyError::Timeout(_)));
    }

    #[test]
    fn encoded_headers() {
        let (c, l) = (Some(addr("192.0.2.7:56324")), Some(addr("10.0.0.2:6080")));
        assert_eq!(encode(Version::V1, c, l), b"PROXY TCP4 192.0.2.7 10.0.0.2 56324 6080\r\n");
        assert_eq!(encode(Version::V1, None, l), b"PROXY UNKNOWN\r\n");
        assert_eq!(encode(Version::V1, c, Some(addr("[::1]:6080"))), b"PROXY TCP6 ::ffff:192.0.2.7 ::1 56324 6080\r\n");
        let v2 = encode(Version::V2, c, l);
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend([0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 7, 10, 0, 0, 2, 0xdc, 0x04, 0x17, 0xc0]);
        assert_eq!(v2, expected);
        let mut unspec = V2_SIGNATURE.to_vec();
        unspec.extend([0x21, 0x00, 0x00, 0x00]);
        assert_eq!(encode(Version::V2, None, None), unspec);
        assert!(starts_with_header(&v2) && starts_with_header(b"PROXY UNKNOWN\r\n"));
        assert!(!starts_with_header(b"PROXY") && !starts_with_header(b"GET / HTTP/1.1"));
    }
}
