//! How a token source tells `--revoke-live-sessions` that tokens may have changed (a token
//! file was rewritten, a Redis key deleted), so that a revoked token's sessions end at once
//! rather than at the next periodic check.
//!
//! The source keeps a [`ChangeSender`] in the task that watches it; the revocation task
//! holds the [`Changes`]. Reports coalesce while nobody reads them (a burst of events is
//! one wake-up), naming the tokens that changed when the source knows them (a Redis key
//! is one token) and everything otherwise (a file rewritten). Dropping the [`Changes`]
//! tells the source's task to end ([`ChangeSender::closed`]), so the revocation task
//! owns what the source started for it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The most tokens named in one pending report; past that it becomes [`Changed::All`]
/// (a source changing thousands of keys at once costs one full check, not a big set).
const MAX_NAMED: usize = 1024;

/// A new channel: the source keeps the sender, the revocation task the receiver.
pub fn channel() -> (ChangeSender, Changes) {
    let shared = Arc::new(Shared::default());
    (ChangeSender(shared.clone()), Changes(shared))
}

/// What may have changed since the last report was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Any token (a file rewritten, a subscription restored after an outage).
    All,
    /// These tokens only.
    Tokens(HashSet<String>),
}

impl Changed {
    /// Both reports in one.
    pub fn merge(self, other: Changed) -> Changed {
        match (self, other) {
            (Changed::Tokens(mut a), Changed::Tokens(b)) if a.len() + b.len() <= MAX_NAMED => {
                a.extend(b);
                Changed::Tokens(a)
            }
            _ => Changed::All,
        }
    }

    /// Whether `token` may have changed.
    pub fn covers(&self, token: &str) -> bool {
        match self {
            Changed::All => true,
            Changed::Tokens(tokens) => tokens.contains(token),
        }
    }
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Option<Changed>>,
    /// Holds one permit while a report waits, so no wake-up is lost.
    wake: Notify,
    /// Cancelled when the [`Changes`] is dropped.
    closed: CancellationToken,
}

impl Shared {
    fn report(&self, change: Changed) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        *pending = Some(match pending.take() {
            Some(before) => before.merge(change),
            None => change,
        });
        drop(pending);
        self.wake.notify_one();
    }
}

/// The source's end: reports changes.
#[derive(Clone)]
pub struct ChangeSender(Arc<Shared>);

impl ChangeSender {
    /// Any token may have changed.
    pub fn all(&self) {
        self.0.report(Changed::All);
    }

    /// `token` may have changed.
    pub fn token(&self, token: &str) {
        self.0.report(Changed::Tokens(HashSet::from([token.to_owned()])));
    }

    /// Resolves when nobody listens any more: the source's task should end.
    pub async fn closed(&self) {
        self.0.closed.cancelled().await;
    }
}

/// The revocation task's end: waits for reports.
pub struct Changes(Arc<Shared>);

impl Changes {
    /// Waits for a report and takes everything reported since the last one.
    pub async fn next(&mut self) -> Changed {
        loop {
            if let Some(change) = self.try_next() {
                return change;
            }
            self.0.wake.notified().await;
        }
    }

    /// Everything reported since the last one, without waiting.
    pub fn try_next(&mut self) -> Option<Changed> {
        self.0.pending.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.0.closed.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_coalesce_until_taken() {
        let (tx, mut rx) = channel();
        assert_eq!(rx.try_next(), None);
        tx.token("a");
        tx.token("b");
        tx.token("a");
        let Changed::Tokens(got) = rx.next().await else { panic!("named tokens") };
        assert_eq!(got, HashSet::from(["a".to_owned(), "b".to_owned()]));
        tx.token("a");
        tx.all();
        tx.token("c");
        assert_eq!(rx.next().await, Changed::All);
        assert_eq!(rx.try_next(), None);
        for i in 0..=MAX_NAMED {
            tx.token(&i.to_string());
        }
        assert_eq!(rx.next().await, Changed::All, "too many named: all");
        assert!(Changed::All.covers("x") && !Changed::Tokens(HashSet::new()).covers("x"));
        // A report made before the reader waits still wakes it.
        tx.token("late");
        assert!(tokio::time::timeout(std::time::Duration::from_secs(1), rx.next()).await.is_ok());
        let closed = tokio::spawn(async move { tx.closed().await });
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(1), closed).await.unwrap().unwrap();
    }
}
