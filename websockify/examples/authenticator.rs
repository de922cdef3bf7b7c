//! Embedding websockify with your own authentication, through the [`Authenticator`] trait:
//! here only requests carrying a `session` cookie the host program issued get through
//! (a browser sends the cookies of the page's site with its WebSocket request). It runs
//! before the 101, so a refused client never reaches the target.
//!
//! ```sh
//! cargo run --example authenticator -- 127.0.0.1:6080 localhost:5900 SESSION-ID...
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use websockify::auth::{AuthError, AuthRequest, Authenticator};
use websockify::{Config, ListenAddr, Server, Target};

/// The session ids of logged-in users.
struct LoggedIn {
    sessions: HashSet<String>,
}

impl Authenticator for LoggedIn {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<(), AuthError> {
        let session = req
            .request
            .header("cookie")
            .into_iter()
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|cookie| cookie.trim().split_once('='))
            .find_map(|(name, value)| (name == "session").then_some(value));
        let refusal = match session {
            Some(id) if self.sessions.contains(id) => return Ok(()),
            // The status and body go to the client; the last field only to the log.
            None => AuthError::new(401, "Log in first", "no session cookie"),
            Some(_) => AuthError::new(403, "Session expired", "unknown session cookie"),
        };
        // The client's address (after a PROXY header or a trusted X-Forwarded-For), for
        // the host program's own records.
        let client = req.client.map_or("a UNIX socket client".to_owned(), |a| a.ip().to_string());
        println!("refused {client}: {}", refusal.log);
        Err(refusal)
    }

    fn describe(&self) -> String {
        format!("session cookie ({} sessions)", self.sessions.len())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6080".to_owned());
    let target = args.next().unwrap_or_else(|| "localhost:5900".to_owned());
    let sessions = args.collect();

    let mut config = Config::new(ListenAddr::parse(&listen)?, Target::parse_tcp(&target)?);
    config.auth = Some(Arc::new(LoggedIn { sessions }));
    let server = Server::bind(config).await?;
    println!("listening on {}", server.local_addr()?);

    let shutdown = CancellationToken::new();
    let on_ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    server.run(shutdown).await;
    Ok(())
}
