//! Who may tell us the client's address, and what they say in HTTP: lists of trusted
//! networks (`--proxy-protocol-from`, `--trusted-proxy`) and the `X-Forwarded-For` and
//! `Forwarded` (RFC 7239) request headers, believed only from trusted proxies.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::wire::http::Request;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`, or one
/// address, `192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32) == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(addr: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 { 0 } else { addr >> (width - prefix) }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr =
            addr.parse().map_err(|_| format!("{s:?} is not an IP address or network (such as 10.0.0.0/8)"))?;
        let addr = addr.to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(|| format!("{s:?}: bad prefix length"))?
            }
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == width { write!(f, "{}", self.addr) } else { write!(f, "{}/{}", self.addr, self.prefix) }
    }
}

/// A list of networks; empty trusts no one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks(Vec<Cidr>);

impl Networks {
    /// Parses a comma-separated list (spaces allowed): `127.0.0.1, 10.0.0.0/8, ::1`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let nets =
            list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<Vec<_>, _>>()?;
        if nets.is_empty() {
            return Err(format!("{list:?} names no network"));
        }
        Ok(Self(nets))
    }

    /// `127.0.0.0/8` and `::1`: this host.
    pub fn loopback() -> Self {
        Self(vec![
            Cidr { addr: [127, 0, 0, 0].into(), prefix: 8 },
            Cidr { addr: std::net::Ipv6Addr::LOCALHOST.into(), prefix: 128 },
        ])
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            n.fmt(f)?;
        }
        Ok(())
    }
}

/// The client's address according to the forwarding headers of `request`, which came from
/// `peer`; `None` when the headers are not to be believed (`peer` is not trusted) or say
/// nothing.
///
/// The addresses are the `X-Forwarded-For` list (every occurrence, in order), or if there
/// is none the `for=` parameters of `Forwarded`, with `peer` appended. Walking from the
/// right, every trusted address is a proxy that passed the request on; the first untrusted
/// one is the client. If the walk reaches an entry that is not an address (`unknown`, an
/// obfuscated name, garbage) or the start of the list, the client is the last address
/// walked: nothing left of it can be believed.
pub fn client_ip(request: &Request, peer: IpAddr, trusted: &Networks) -> Option<IpAddr> {
    if !trusted.contains(peer) {
        return None;
    }
    let mut entries = header_entries(request, "x-forwarded-for", |v| Some(v));
    if entries.is_empty() {
        entries = header_entries(request, "forwarded", forwarded_for);
    }
    if entries.is_empty() {
        return None;
    }
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = entry.as_deref().and_then(parse_node) else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(client)
}

/// Every comma-separated item of every occurrence of header `name`, mapped by `item`
/// (which returns `None` for an item without an address part); `None` entries stand for
/// what cannot be read (a value that is not UTF-8 included), so that the walk stops there.
fn header_entries(request: &Request, name: &str, item: impl Fn(&str) -> Option<&str>) -> Vec<Option<String>> {
    let mut entries = Vec::new();
    for (n, value) in &request.headers {
        if !n.eq_ignore_ascii_case(name) {
            continue;
        }
        match std::str::from_utf8(value) {
            Ok(v) => entries
                .extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| item(s).map(str::to_owned))),
            Err(_) => entries.push(None),
        }
    }
    entries
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http;by=...`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').map(str::trim).find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (ip, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn request(headers: &[(&str, &[u8])]) -> Request {
        Request {
            method: "GET".into(),
            target: "/".into(),
            version: 1,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
        }
    }

    #[test]
    fn networks() {
        let n = Networks::parse("10.0.0.0/8, 192.0.2.7,fd00::/8 , ::1").unwrap();
        assert!(n.contains(ip("10.200.3.4")) && n.contains(ip("192.0.2.7")) && n.contains(ip("fd12::5")));
        assert!(n.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped addresses are IPv4");
        assert!(!n.contains(ip("11.0.0.1")) && !n.contains(ip("192.0.2.8")) && !n.contains(ip("::2")));
        assert_eq!(n.to_string(), "10.0.0.0/8, 192.0.2.7, fd00::/8, ::1");
        assert!(Networks::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.1")));
        assert!(Networks::loopback().contains(ip("127.1.2.3")) && Networks::loopback().contains(ip("::1")));
        for bad in ["", " , ", "10.0.0.0/33", "::/129", "host.example", "10.0.0.0/x"] {
            assert!(Networks::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn right_most_untrusted_is_the_client() {
        let trusted = Networks::parse("10.0.0.0/8").unwrap();
        let proxy = ip("10.0.0.5");
        let r = request(&[("X-Forwarded-For", b"6.6.6.6, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(client_ip(&r, proxy, &trusted), Some(ip("203.0.113.9")));
        // An untrusted peer's headers are ignored.
        assert_eq!(client_ip(&r, ip("198.51.100.1"), &trusted), None);
        assert_eq!(client_ip(&r, proxy, &Networks::default()), None);
        // Several header lines are one list, in order.
        let r = request(&[("x-forwarded-for", b"6.6.6.6"), ("X-Forwarded-For", b"[2001:db8::1]:4711")]);
        assert_eq!(client_ip(&r, proxy, &trusted), Some(ip("2001:db8::1")));
        // All trusted: the left-most.
        let r = request(&[("X-Forwarded-For", b"10.1.1.1, 10.2.2.2")]);
        assert_eq!(client_ip(&r, proxy, &trusted), Some(ip("10.1.1.1")));
        // Unreadable entries stop the walk at the last address believed.
        let r = request(&[("X-Forwarded-For", b"6.6.6.6, unknown, 10.0.0.9")]);
        assert_eq!(client_ip(&r, proxy, &trusted), Some(ip("10.0.0.9")));
        let r = request(&[("X-Forwarded-For", b"6.6.6.6"), ("X-Forwarded-For", b"\xff, 203.0.113.9")]);
        assert_eq!(client_ip(&r, proxy, &trusted), Some(proxy));
        assert_eq!(client_ip(&request(&[]), proxy, &trusted), None);
    }

    #[test]
    fn forwarded_header() {
        let trusted = Networks::parse("10.0.0.0/8").unwrap();
        let r = request(&[(
            "Forwarded",
            br#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=192.0.2.43:47011;by=10.0.0.1, for=10.0.0.3"#,
        )]);
        assert_eq!(client_ip(&r, ip("10.0.0.2"), &trusted), Some(ip("192.0.2.43")));
        let r = request(&[("Forwarded", b"for=6.6.6.6, for=_hidden")]);
        assert_eq!(client_ip(&r, ip("10.0.0.2"), &trusted), Some(ip("10.0.0.2")));
        // X-Forwarded-For wins when both are there.
        let r = request(&[("Forwarded", b"for=6.6.6.6"), ("X-Forwarded-For", b"198.51.100.2")]);
        assert_eq!(client_ip(&r, ip("10.0.0.2"), &trusted), Some(ip("198.51.100.2")));
    }
}
