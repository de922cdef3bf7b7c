//! Caps on concurrent WebSocket sessions: in total, per client IP and per token (0 means
//! unlimited). A session over a cap is refused before its 101: `503` when the server is
//! full, `429` when one client or one token has too many.
//!
//! One client is one IPv4 address, or one IPv6 prefix (a /64 by default): a home or
//! cloud IPv6 line holds 2^64 addresses, each of which would otherwise count apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The configured caps (0 = unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCaps {
    pub total: usize,
    pub per_ip: usize,
    pub per_token: usize,
    /// IPv6 clients count per prefix of this length for `per_ip` (`--ipv6-client-prefix`,
    /// default 64; 128 counts each address).
    pub ipv6_prefix: u8,
}

impl Default for SessionCaps {
    fn default() -> Self {
        Self { total: 0, per_ip: 0, per_token: 0, ipv6_prefix: 64 }
    }
}

/// The client a per-IP cap counts: an IPv4 address, or an IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    network: IpAddr,
    prefix: u8,
}

impl Client {
    /// The client `ip` belongs to, IPv6 addresses cut to `ipv6_prefix` bits (IPv4-mapped
    /// IPv6 addresses are IPv4 clients).
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip {
            IpAddr::V4(v4) => Self { network: IpAddr::V4(v4), prefix: 32 },
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self { network: IpAddr::V4(v4), prefix: 32 },
                None => {
                    let prefix = ipv6_prefix.min(128);
                    let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
                    Self { network: IpAddr::V6((u128::from(v6) & mask).into()), prefix }
                }
            },
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.network {
            IpAddr::V6(_) if self.prefix < 128 => write!(f, "{}/{}", self.network, self.prefix),
            network => network.fmt(f),
        }
    }
}

/// Live session counts.
#[derive(Debug, Default)]
pub struct SessionLimits {
    caps: SessionCaps,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<Client, usize>,
    per_token: HashMap<String, usize>,
}

/// Why a session was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("server full: {0} sessions")]
    Total(usize),
    #[error("too many sessions from {0}: limit {1}")]
    Ip(Client, usize),
    #[error("too many sessions for this token: limit {0}")]
    Token(usize),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::Total(_) => 503,
            Self::Ip(..) | Self::Token(_) => 429,
        }
    }
}

/// A counted session; dropping it releases its place.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<SessionLimits>,
    ip: Option<Client>,
    token: Option<String>,
}

impl SessionLimits {
    pub fn new(caps: SessionCaps) -> Arc<Self> {
        Arc::new(Self { caps, state: Mutex::new(Counts::default()) })
    }

    /// Takes a place for a session from `ip` with `token`, or says which cap is reached.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>, token: Option<&str>) -> Result<Permit, Refusal> {
        let caps = self.caps;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if caps.total > 0 && s.total >= caps.total {
            return Err(Refusal::Total(caps.total));
        }
        let client = ip.map(|ip| Client::of(ip, caps.ipv6_prefix));
        if let Some(client) = client
            && caps.per_ip > 0
            && s.per_ip.get(&client).copied().unwrap_or(0) >= caps.per_ip
        {
            return Err(Refusal::Ip(client, caps.per_ip));
        }
        if let Some(token) = token
            && caps.per_token > 0
            && s.per_token.get(token).copied().unwrap_or(0) >= caps.per_token
        {
            return Err(Refusal::Token(caps.per_token));
        }
        s.total += 1;
        // Only counted where capped, so the maps stay empty without caps.
        let ip = client.filter(|_| caps.per_ip > 0);
        if let Some(ip) = ip {
            *s.per_ip.entry(ip).or_default() += 1;
        }
        let token = token.filter(|_| caps.per_token > 0).map(str::to_owned);
        if let Some(token) = &token {
            *s.per_token.entry(token.clone()).or_default() += 1;
        }
        Ok(Permit { limits: self.clone(), ip, token })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.limits.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = s.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&ip);
            }
        }
        if let Some(token) = &self.token
            && let Some(n) = s.per_token.get_mut(token)
        {
            *n -= 1;
            if *n == 0 {
                s.per_token.remove(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_reached_and_released() {
        let l = SessionLimits::new(SessionCaps { total: 3, per_ip: 2, per_token: 1, ..SessionCaps::default() });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.acquire(Some(a), Some("t1")).unwrap();
        let p2 = l.acquire(Some(a), Some("t2")).unwrap();
        assert_eq!(l.acquire(Some(a), Some("t3")).unwrap_err(), Refusal::Ip(Client::of(a, 64), 2));
        assert_eq!(l.acquire(Some(b), Some("t1")).unwrap_err(), Refusal::Token(1));
        let p3 = l.acquire(Some(b), Some("t3")).unwrap();
        assert_eq!(l.acquire(Some(b), None).unwrap_err().status(), 503);
        drop(p1);
        let p4 = l.acquire(Some(b), Some("t1")).unwrap();
        drop((p2, p3, p4));
        let s = l.state.lock().unwrap();
        assert_eq!((s.total, s.per_ip.len(), s.per_token.len()), (0, 0, 0));
    }

    #[test]
    fn ipv6_clients_count_per_prefix() {
        let l = SessionLimits::new(SessionCaps { per_ip: 2, ..SessionCaps::default() });
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let _a = l.acquire(ip("2001:db8:1:2::1"), None).unwrap();
        let _b = l.acquire(ip("2001:db8:1:2:ffff::9"), None).unwrap();
        let refused = l.acquire(ip("2001:db8:1:2:dead:beef:0:1"), None).unwrap_err();
        assert_eq!(refused.to_string(), "too many sessions from 2001:db8:1:2::/64: limit 2");
        let _other_line = l.acquire(ip("2001:db8:1:3::1"), None).unwrap();
        // IPv4-mapped addresses are IPv4 clients.
        assert_eq!(Client::of("::ffff:10.0.0.1".parse().unwrap(), 64).to_string(), "10.0.0.1");
        assert_eq!(Client::of("2001:db8::1".parse().unwrap(), 128).to_string(), "2001:db8::1");
        assert_eq!(Client::of("2001:db8::1".parse().unwrap(), 0).to_string(), "::/0");
        let single = SessionLimits::new(SessionCaps { per_ip: 1, ipv6_prefix: 128, ..SessionCaps::default() });
        let _c = single.acquire(ip("2001:db8::1"), None).unwrap();
        let _d = single.acquire(ip("2001:db8::2"), None).unwrap();
    }

    #[test]
    fn unlimited_counts_nothing_per_key() {
        let l = SessionLimits::new(SessionCaps::default());
        let permits: Vec<_> = (0..100).map(|_| l.acquire(Some("::1".parse().unwrap()), Some("t")).unwrap()).collect();
        assert!(l.state.lock().unwrap().per_ip.is_empty());
        drop(permits);
    }
}
