//! One WebSocket session, then the server is done: the embedded form of `--run-once`, for
//! a host program that hands out one console per process (plain HTTP requests, such as
//! the web page itself, do not count).
//!
//! ```sh
//! cargo run --example run_once -- 127.0.0.1:6080 localhost:5900
//! ```

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use websockify::{Config, ListenAddr, Server, Target};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6080".to_owned());
    let target = args.next().unwrap_or_else(|| "localhost:5900".to_owned());

    let mut config = Config::new(ListenAddr::parse(&listen)?, Target::parse_tcp(&target)?);
    config.run_once = true;
    // Nobody came within a minute: give up (the embedded --idle-timeout).
    config.idle_timeout = Some(Duration::from_secs(60));
    let server = Server::bind(config).await?;
    println!("listening on {}", server.local_addr()?);

    // Returns once the first session has ended (or the idle timeout fired).
    server.run(CancellationToken::new()).await;
    println!("session over");
    Ok(())
}
