//! The live sessions, as the operator sees them (`--admin-listen`, token revocation,
//! session time limits): who is connected to what since when, bytes each way, and a way
//! to end a session with a close code and reason its client can show.
//!
//! The relay keeps a session's counters here (relaxed atomics, as the metrics are) and
//! watches its [`Live::ended`] token; everything else reads. Registered only when an
//! operator feature needs it, so a plain proxy pays nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

/// Why the operator side ended a session, for the metrics and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// `DELETE /sessions...` on the admin API.
    Admin,
    /// `--revoke-live-sessions`: the token no longer leads to the session's target.
    Revoked,
    /// `--end-session-at-token-expiry`: the token's `exp` passed.
    Expired,
    /// `--max-session-duration`.
    TimeLimit,
}

impl EndedBy {
    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::TimeLimit => "time-limit",
        }
    }
}

/// One live session.
#[derive(Debug)]
pub struct Live {
    pub id: u64,
    /// The client as the proxy knows it (after a PROXY header or trusted forwarding).
    pub client: Option<SocketAddr>,
    /// The target as logs show it (a token in a socket name replaced by its id).
    pub target: String,
    /// The target as configured or looked up (`host:port`, `unix socket PATH`), which
    /// `DELETE /sessions?target=` matches.
    pub target_key: String,
    /// The token's id as logs show it (never the token).
    pub token_id: Option<String>,
    pub tls: bool,
    pub subprotocol: &'static str,
    pub started: SystemTime,
    started_at: Instant,
    /// Payload bytes client -> target and target -> client so far.
    pub to_target: AtomicU64,
    pub to_client: AtomicU64,
    /// Milliseconds from the start to the last data either way.
    pub last_data_ms: AtomicU64,
    /// Cancelled to end the session; [`Live::end_reason`] says with what.
    pub ended: CancellationToken,
    reason: Mutex<Option<(u16, String, EndedBy)>>,
    /// The token itself, kept only for `--revoke-live-sessions` (looked up again).
    pub token: Option<String>,
}

impl Live {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        client: Option<SocketAddr>,
        target: String,
        target_key: String,
        token_id: Option<String>,
        tls: bool,
        subprotocol: &'static str,
        token: Option<String>,
    ) -> Self {
        Self {
            id,
            client,
            target,
            target_key,
            token_id,
            tls,
            subprotocol,
            started: SystemTime::now(),
            started_at: Instant::now(),
            to_target: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            last_data_ms: AtomicU64::new(0),
            ended: CancellationToken::new(),
            reason: Mutex::new(None),
            token,
        }
    }

    /// Notes data moving now (for the idle seconds the admin API shows).
    pub fn touch(&self) {
        self.last_data_ms.store(self.started_at.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Seconds since data last moved either way (since the start if none did).
    pub fn idle_secs(&self) -> f64 {
        let last = self.last_data_ms.load(Ordering::Relaxed);
        (self.started_at.elapsed().as_millis() as u64).saturating_sub(last) as f64 / 1000.0
    }

    /// Asks the session to end with `code` and `reason` (the first request wins).
    /// Returns whether this request was the one that ended it.
    pub fn end(&self, code: u16, reason: &str, by: EndedBy) -> bool {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some((code, reason.to_owned(), by));
        drop(slot);
        crate::ops::metrics::METRICS.session_ended_by(by.label());
        self.ended.cancel();
        true
    }

    /// The close code, reason and cause of an [`end`](Self::end), once asked.
    pub fn end_reason(&self) -> Option<(u16, String, EndedBy)> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Every live session of a server.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<u64, Arc<Live>>>,
}

/// A session's place in the [`Registry`], given up when dropped (the session ended).
#[derive(Debug)]
pub struct Registered {
    registry: Arc<Registry>,
    pub live: Arc<Live>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.live.id);
    }
}

impl Registry {
    pub fn register(self: &Arc<Self>, live: Live) -> Registered {
        let live = Arc::new(live);
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(live.id, live.clone());
        Registered { registry: self.clone(), live }
    }

    /// The live sessions, oldest first.
    pub fn list(&self) -> Vec<Arc<Live>> {
        let mut all: Vec<Arc<Live>> =
            self.sessions.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        all.sort_by_key(|l| l.id);
        all
    }

    /// Ends every live session `which` selects; returns how many were ended.
    pub fn end_where(&self, which: impl Fn(&Live) -> bool, code: u16, reason: &str, by: EndedBy) -> usize {
        self.list().iter().filter(|l| which(l)).filter(|l| l.end(code, reason, by)).count()
    }
}
