//! What ties the proxy to its operating system rather than to its clients: running a
//! wrapped program ([`wrap`]), becoming a daemon ([`daemon`]), the log sinks ([`logging`]) and
//! writing to syslog ([`syslog`]).
//!
//! Imports only [`crate::outbound`] (the wrapped program's port is a target).

pub mod daemon;
pub mod logging;
pub mod privileges;
pub mod syslog;
pub mod wrap;
