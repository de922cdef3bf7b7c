//! rebind: an `LD_PRELOAD` interposer for `bind(2)`, used by websockify's wrap mode
//! (`websockify PORT -- PROGRAM ARGS`).
//!
//! When the wrapped program binds an AF_INET or AF_INET6 socket to port `REBIND_OLD_PORT`
//! (the port the proxy listens on), the socket is bound instead to `REBIND_NEW_PORT` on
//! loopback, where the proxy forwards WebSocket sessions. Every other call, and every call
//! when either variable is missing or not a port number (1-65535), goes to the real `bind`
//! unchanged.
//!
//! Which loopback address the socket gets:
//! - AF_INET: 127.0.0.1.
//! - AF_INET6, IPv6-only socket (`IPV6_V6ONLY` set): ::1.
//! - AF_INET6, dual-stack socket (the Linux default; what a program binding `[::]:port`
//!   usually has): ::ffff:127.0.0.1. The proxy connects to 127.0.0.1, and a dual-stack
//!   socket on ::1 would not accept that; on the mapped address it does, just as it would
//!   have on `::`.
//!
//! This code runs inside arbitrary programs: no panics (a panic cannot unwind out of an
//! `extern "C"` function anyway), no allocation, no state but the real `bind` looked up
//! once. Linux only (`errno` through `__errno_location`).

use std::ffi::CStr;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use libc::{c_int, sa_family_t, sockaddr, sockaddr_in, sockaddr_in6, socklen_t};

/// The port the program asks for (the proxy's listen port).
pub const OLD_PORT_VAR: &CStr = c"REBIND_OLD_PORT";
/// The loopback port the program gets instead.
pub const NEW_PORT_VAR: &CStr = c"REBIND_NEW_PORT";

type BindFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;

/// The next `bind` in lookup order (libc's), found on first use.
static REAL_BIND: OnceLock<Option<BindFn>> = OnceLock::new();

/// The interposed `bind(2)`.
///
/// # Safety
///
/// The contract of `bind(2)`: `addr` is null or points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real) = real_bind() else {
        // SAFETY: __errno_location returns this thread's errno, always valid to write.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    };
    // SAFETY: the caller guarantees `addr`/`len` describe readable memory, as bind(2) does.
    let moved = unsafe { moved_address(fd, addr, len) };
    match moved {
        // SAFETY: `real` is libc's bind; the addresses are live locals of the right size.
        Some(Moved::V4(sin)) => unsafe { real(fd, (&raw const sin).cast(), size_of::<sockaddr_in>() as socklen_t) },
        // SAFETY: as above.
        Some(Moved::V6(sin6)) => unsafe { real(fd, (&raw const sin6).cast(), size_of::<sockaddr_in6>() as socklen_t) },
        // SAFETY: the caller's arguments, passed on untouched.
        None => unsafe { real(fd, addr, len) },
    }
}

fn real_bind() -> Option<BindFn> {
    *REAL_BIND.get_or_init(|| {
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
        let sym = unsafe { libc::dlsym(libc::RTLD_NEXT, c"bind".as_ptr()) };
        if sym.is_null() {
            return None;
        }
        // SAFETY: the symbol named "bind" in libc has exactly bind(2)'s signature.
        Some(unsafe { std::mem::transmute::<*mut libc::c_void, BindFn>(sym) })
    })
}

/// The address to bind instead of the caller's, if this call is to be moved.
enum Moved {
    V4(sockaddr_in),
    V6(sockaddr_in6),
}

/// # Safety
///
/// `addr` is null or points to `len` readable bytes.
unsafe fn moved_address(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Option<Moved> {
    let len = len as usize;
    if addr.is_null() || len < size_of::<sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family field is readable (checked above); the caller's
    // pointer may not be aligned for sockaddr, hence read_unaligned.
    let family = c_int::from(unsafe { addr.cast::<sa_family_t>().read_unaligned() });
    match family {
        libc::AF_INET if len >= size_of::<sockaddr_in>() => {
            // SAFETY: `len` covers a whole sockaddr_in (checked by the match guard).
            let sin = unsafe { addr.cast::<sockaddr_in>().read_unaligned() };
            let (old, new) = ports()?;
            move_v4(sin, old, new).map(Moved::V4)
        }
        libc::AF_INET6 if len >= size_of::<sockaddr_in6>() => {
            // SAFETY: `len` covers a whole sockaddr_in6 (checked by the match guard).
            let sin6 = unsafe { addr.cast::<sockaddr_in6>().read_unaligned() };
            let (old, new) = ports()?;
            if u16::from_be(sin6.sin6_port) != old {
                return None;
            }
            move_v6(sin6, old, new, v6only(fd)).map(Moved::V6)
        }
        _ => None,
    }
}

/// `REBIND_OLD_PORT` and `REBIND_NEW_PORT`, when both are valid ports.
fn ports() -> Option<(u16, u16)> {
    Some((env_port(OLD_PORT_VAR)?, env_port(NEW_PORT_VAR)?))
}

fn env_port(name: &CStr) -> Option<u16> {
    // SAFETY: getenv with a NUL-terminated name; like the C original, this assumes the
    // program does not call setenv concurrently.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string that stays valid until the
    // environment changes; it is parsed at once.
    parse_port(unsafe { CStr::from_ptr(value) }.to_bytes())
}

/// A decimal port 1-65535, nothing else (no sign, no spaces).
fn parse_port(text: &[u8]) -> Option<u16> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok().filter(|p| *p != 0)
}

/// Whether `fd` is an IPv6-only socket; if it cannot be told, assume it is (::1 is then
/// at least the right family).
fn v6only(fd: c_int) -> bool {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: value/len are live locals of the sizes given.
    let rc =
        unsafe { libc::getsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, (&raw mut value).cast(), &raw mut len) };
    rc != 0 || value != 0
}

fn move_v4(mut sin: sockaddr_in, old: u16, new: u16) -> Option<sockaddr_in> {
    if u16::from_be(sin.sin_port) != old {
        return None;
    }
    sin.sin_port = new.to_be();
    sin.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
    Some(sin)
}

fn move_v6(mut sin6: sockaddr_in6, old: u16, new: u16, v6only: bool) -> Option<sockaddr_in6> {
    if u16::from_be(sin6.sin6_port) != old {
        return None;
    }
    let loopback = if v6only { Ipv6Addr::LOCALHOST } else { Ipv4Addr::LOCALHOST.to_ipv6_mapped() };
    sin6.sin6_port = new.to_be();
    sin6.sin6_addr.s6_addr = loopback.octets();
    sin6.sin6_scope_id = 0;
    Some(sin6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_strictly() {
        assert_eq!(parse_port(b"6080"), Some(6080));
        assert_eq!(parse_port(b"65535"), Some(65535));
        for bad in [&b""[..], b"0", b"65536", b"+80", b"-1", b" 80", b"80 ", b"8o", b"99999999999999999999"] {
            assert_eq!(parse_port(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn v4(addr: Ipv4Addr, port: u16) -> sockaddr_in {
        // SAFETY: sockaddr_in is plain old data; all zeroes is a valid value.
        let mut sin: sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as sa_family_t;
        sin.sin_port = port.to_be();
        sin.sin_addr.s_addr = u32::from(addr).to_be();
        sin
    }

    fn v6(addr: Ipv6Addr, port: u16) -> sockaddr_in6 {
        // SAFETY: sockaddr_in6 is plain old data; all zeroes is a valid value.
        let mut sin6: sockaddr_in6 = unsafe { std::mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as sa_family_t;
        sin6.sin6_port = port.to_be();
        sin6.sin6_addr.s6_addr = addr.octets();
        sin6.sin6_scope_id = 3;
        sin6
    }

    #[test]
    fn ipv4_old_port_moves_to_loopback() {
        let moved = move_v4(v4(Ipv4Addr::UNSPECIFIED, 5900), 5900, 40000).unwrap();
        assert_eq!(u16::from_be(moved.sin_port), 40000);
        assert_eq!(Ipv4Addr::from(u32::from_be(moved.sin_addr.s_addr)), Ipv4Addr::LOCALHOST);
        assert!(move_v4(v4(Ipv4Addr::UNSPECIFIED, 5901), 5900, 40000).is_none());
    }

    #[test]
    fn ipv6_old_port_moves_to_the_loopback_the_socket_can_take() {
        let only = move_v6(v6(Ipv6Addr::UNSPECIFIED, 5900), 5900, 40000, true).unwrap();
        assert_eq!(u16::from_be(only.sin6_port), 40000);
        assert_eq!(Ipv6Addr::from(only.sin6_addr.s6_addr), Ipv6Addr::LOCALHOST);
        assert_eq!(only.sin6_scope_id, 0);
        let dual = move_v6(v6(Ipv6Addr::UNSPECIFIED, 5900), 5900, 40000, false).unwrap();
        assert_eq!(Ipv6Addr::from(dual.sin6_addr.s6_addr), "::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap());
        assert!(move_v6(v6(Ipv6Addr::UNSPECIFIED, 1), 5900, 40000, true).is_none());
    }
}
