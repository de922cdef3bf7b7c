//! Operations: what the proxy tells its operator while it runs, and what the operator may
//! do to it: Prometheus [`metrics`], the live [`sessions`] and the [`admin`] API over them.
//!
//! Every stage bumps counters here, so this room imports only value types of the lowest
//! room ([`crate::wire`]): the stages map their own errors and endings to the labels
//! defined here, never the other way round.

pub mod admin;
pub mod metrics;
pub mod sessions;
