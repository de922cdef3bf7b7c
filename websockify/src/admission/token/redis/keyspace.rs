//! Redis keyspace notifications for `--revoke-live-sessions`: a token key deleted,
//! renamed, given a new value or expired is reported at once, so that its sessions end
//! without waiting for the periodic check.
//!
//! One pub/sub connection per resolver, made when revocation starts (with the source's
//! host, port, password and db), subscribed to the token keys' channels only:
//! `PSUBSCRIBE __keyspace@DB__:NAMESPACE:*`. Redis publishes there only if the server's
//! `notify-keyspace-events` has `K` and the classes of the events (`g`: `DEL`, `RENAME`,
//! `EXPIRE`; `$`: `SET`; `x`: a key expired; `A`: all of them). The proxy reads the
//! setting (`CONFIG GET`, which managed services may refuse) to say in the log whether
//! revocation is immediate, and never changes it: without notifications, the periodic
//! check (`--revoke-check-interval`) is all there is.
//!
//! A lost connection (or one that could not be made at start) is made again after 1 s,
//! then 2, 4, ... up to 30 s; once back, every live token is checked (changes in between
//! were not heard). A `PING` every 30 s finds a
//! connection that died silently.

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use redis::aio::PubSubStream;
use tokio::time::{Instant, timeout};

use super::super::changes::ChangeSender;
use super::CONNECT_TIMEOUT;

/// The first wait before subscribing again after a loss; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often a quiet subscription is asked whether it is still there.
const PING_EVERY: Duration = Duration::from_secs(30);

/// The classes of `notify-keyspace-events` whose events change what a token key holds,
/// and what they stand for in the log.
const CLASSES: [(char, &str); 3] =
    [('g', "deletions and renames (g)"), ('$', "new values (\"$\")"), ('x', "expiries (x)")];

/// The subscription of one resolver.
pub(super) struct Keyspace {
    pub client: redis::Client,
    /// `redis://host:port/db`, for the log.
    pub url: String,
    pub db: u32,
    /// What the token keys start with: `namespace:`, or nothing.
    pub key_prefix: String,
    /// The periodic check's interval, for the log.
    pub fallback: Duration,
}

impl Keyspace {
    /// Subscribes, and reports what it hears to `tx`, until `tx` is closed.
    pub async fn run(self, tx: ChangeSender) {
        let mut retry = RETRY_FIRST;
        let mut said = None;
        let mut lost = false;
        loop {
            let (subscribed, why) = tokio::select! {
                () = tx.closed() => return,
                ended = self.subscription(&tx, &mut said, &mut lost) => ended,
            };
            if subscribed {
                retry = RETRY_FIRST;
            }
            if !std::mem::replace(&mut lost, true) {
                tracing::warn!(
                    "TokenRedis: no keyspace notifications from Redis at {} ({why}): a revoked token's sessions end \
                     within {}s (--revoke-check-interval) until they are back; subscribing again",
                    self.url,
                    self.fallback.as_secs()
                );
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    /// One subscription, from connecting until it fails: whether it got as far as
    /// subscribed, and why it ended.
    async fn subscription(
        &self,
        tx: &ChangeSender,
        said: &mut Option<Notifications>,
        lost: &mut bool,
    ) -> (bool, String) {
        let mut pubsub = match timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return (false, e.to_string()),
            Err(_) => return (false, format!("no connection within {CONNECT_TIMEOUT:?}")),
        };
        let pattern = format!("__keyspace@{}__:{}*", self.db, glob_escape(&self.key_prefix));
        match timeout(CONNECT_TIMEOUT, pubsub.psubscribe(&pattern)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return (false, e.to_string()),
            Err(_) => return (false, format!("no answer to PSUBSCRIBE within {CONNECT_TIMEOUT:?}")),
        }
        if std::mem::take(lost) {
            tracing::info!("TokenRedis: subscribed again to keyspace notifications from Redis at {}", self.url);
            // What changed while not subscribed was not heard.
            tx.all();
        }
        let now = self.notifications().await;
        if said.as_ref() != Some(&now) {
            now.log(&self.url, self.fallback);
            *said = Some(now);
        }

        let channel_prefix = format!("__keyspace@{}__:{}", self.db, self.key_prefix);
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                message = next(&mut stream) => {
                    let Some(message) = message else { return (true, "the connection closed".to_owned()) };
                    // A channel that is not valid UTF-8 reads as "?": no token, check all.
                    match message.get_channel_name().strip_prefix(&channel_prefix).filter(|t| !t.is_empty()) {
                        Some(token) => tx.token(token),
                        None => tx.all(),
                    }
                }
                _ = ping.tick() => match timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return (true, e.to_string()),
                    Err(_) => return (true, format!("no answer to PING within {CONNECT_TIMEOUT:?}")),
                },
            }
        }
    }

    /// The server's `notify-keyspace-events`, on a connection of its own (a subscribed
    /// one takes no other command).
    async fn notifications(&self) -> Notifications {
        let ask = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query_async::<Vec<String>>(&mut conn).await
        };
        match timeout(CONNECT_TIMEOUT * 2, ask).await {
            Ok(Ok(reply)) => match reply.get(1) {
                Some(flags) => classify(flags),
                None => Notifications::Unknown("the server has no such setting".to_owned()),
            },
            Ok(Err(e)) => Notifications::Unknown(format!("CONFIG GET refused: {e}")),
            Err(_) => Notifications::Unknown(format!("no answer to CONFIG GET within {:?}", CONNECT_TIMEOUT * 2)),
        }
    }
}

async fn next(stream: &mut PubSubStream) -> Option<redis::Msg> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// A `PSUBSCRIBE` pattern matching `s` literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What the server's `notify-keyspace-events` means for revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Notifications {
    /// Every change of a token key is published.
    On(String),
    /// Published, but not for these classes of change.
    Partly(String, Vec<&'static str>),
    /// Nothing about token keys is published.
    Off(String),
    /// The setting could not be read, and why.
    Unknown(String),
}

fn classify(flags: &str) -> Notifications {
    let all = flags.contains('A');
    let missing: Vec<&'static str> =
        CLASSES.iter().filter(|(class, _)| !all && !flags.contains(*class)).map(|(_, what)| *what).collect();
    if !flags.contains('K') || missing.len() == CLASSES.len() {
        Notifications::Off(flags.to_owned())
    } else if missing.is_empty() {
        Notifications::On(flags.to_owned())
    } else {
        Notifications::Partly(flags.to_owned(), missing)
    }
}

impl Notifications {
    fn log(&self, url: &str, fallback: Duration) {
        let every = fallback.as_secs();
        match self {
            Self::On(flags) => tracing::info!(
                "TokenRedis: Redis at {url} sends keyspace notifications (notify-keyspace-events {flags:?}): a \
                 revoked token's sessions end at once"
            ),
            Self::Partly(flags, missing) => tracing::info!(
                "TokenRedis: Redis at {url} sends keyspace notifications (notify-keyspace-events {flags:?}) but not \
                 for {}: those revoke within {every}s (--revoke-check-interval), the others at once",
                missing.join(" or ")
            ),
            Self::Off(flags) => tracing::info!(
                "TokenRedis: Redis at {url} sends no keyspace notifications for token keys (notify-keyspace-events \
                 {flags:?}): a revoked token's sessions end within {every}s (--revoke-check-interval); for at once, \
                 enable them on the server (notify-keyspace-events Kg$x, or KA)"
            ),
            Self::Unknown(why) => tracing::info!(
                "TokenRedis: cannot read notify-keyspace-events of Redis at {url} ({why}): listening for keyspace \
                 notifications anyway; without them, a revoked token's sessions end within {every}s \
                 (--revoke-check-interval)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_settings() {
        assert_eq!(classify(""), Notifications::Off(String::new()));
        assert_eq!(classify("Eg$x"), Notifications::Off("Eg$x".into()), "keyevent channels only");
        assert_eq!(classify("Klh"), Notifications::Off("Klh".into()), "no class that touches a string key");
        assert_eq!(classify("AK"), Notifications::On("AK".into()));
        assert_eq!(classify("KEA"), Notifications::On("KEA".into()));
        assert_eq!(classify("Kg$x"), Notifications::On("Kg$x".into()));
        assert_eq!(classify("Kg"), Notifications::Partly("Kg".into(), vec![CLASSES[1].1, CLASSES[2].1]));
        assert_eq!(classify("x$K"), Notifications::Partly("x$K".into(), vec![CLASSES[0].1]));
    }

    #[test]
    fn patterns_match_the_namespace_literally() {
        assert_eq!(glob_escape("app:vnc:"), "app:vnc:");
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }
}
