//! Embedding websockify with your own token resolver: each session's target is looked up
//! by its `?token=` in a table the host program owns (in real life a database, an inventory
//! API, a cache), through the [`TokenResolver`] trait.
//!
//! ```sh
//! cargo run --example token_resolver -- 127.0.0.1:6080 vnc1=127.0.0.1:5901 vnc2=[::1]:5902
//! # then a client connects to ws://127.0.0.1:6080/?token=vnc1; an unknown token gets 404
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;
use websockify::config::Route;
use websockify::token::{BoxFuture, TokenError, TokenResolver, TokenRoute, TokenSource};
use websockify::{Config, ListenAddr, Server, Target};

/// Tokens the host program hands out; it may add and remove them while the server runs.
#[derive(Default)]
struct Consoles {
    targets: RwLock<HashMap<String, Target>>,
}

impl TokenResolver for Consoles {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        // A lookup may await (a query, an HTTP call): the future is boxed for that.
        Box::pin(async move {
            let targets = self.targets.read().map_err(|_| TokenError::Unavailable("table poisoned".into()))?;
            Ok(targets.get(token).cloned())
        })
    }

    fn describe(&self) -> String {
        "the host program's console table".to_owned()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6080".to_owned());
    let consoles = Arc::new(Consoles::default());
    for pair in args {
        let (token, target) = pair.split_once('=').ok_or("expected TOKEN=HOST:PORT")?;
        consoles.targets.write().unwrap().insert(token.to_owned(), Target::parse_tcp(target)?);
    }

    // ?token= (then a `token` cookie); TokenSource { host: true, .. } would use the Host header.
    let route = TokenRoute { resolver: consoles.clone(), source: TokenSource::default() };
    let config = Config::new(ListenAddr::parse(&listen)?, Route::Token(route));
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
