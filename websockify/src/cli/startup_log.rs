//! What the plugins log while the command line is turned into a configuration, before the
//! binary has set up logging: caught here, to be logged once logging is up (and judged by
//! `--check-config`) instead of vanishing.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

type Lines = Arc<Mutex<Vec<(Level, String)>>>;

/// Runs `f` with a subscriber of its own on this thread; returns its result and every
/// event at INFO or above that it logged, in order.
pub(super) fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<(Level, String)>) {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::registry().with(Catch(lines.clone()));
    let out = tracing::subscriber::with_default(subscriber, f);
    let lines = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
    (out, lines)
}

struct Catch(Lines);

impl<S: Subscriber> Layer<S> for Catch {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO {
            return;
        }
        let mut text = Message(String::new());
        event.record(&mut text);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((level, text.0));
    }
}

/// The event's message, then its other fields as `name=value`.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let sep = if self.0.is_empty() { "" } else { " " };
        let _ = match field.name() {
            "message" => write!(self.0, "{sep}{value:?}"),
            name => write!(self.0, "{sep}{name}={value:?}"),
        };
    }
}
