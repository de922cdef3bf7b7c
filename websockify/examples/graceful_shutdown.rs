//! Stopping an embedded server from the host program: cancelling the token passed to
//! [`Server::run`] stops accepting, closes every live session with 1001 (going away),
//! waits up to `limits.shutdown_grace` for the close handshakes, and returns. Here the
//! host program stops when a line saying `stop` (or end of file) arrives on its stdin.
//!
//! ```sh
//! cargo run --example graceful_shutdown -- 127.0.0.1:6080 localhost:5900
//! ```

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;
use websockify::{Config, ListenAddr, Server, Target};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6080".to_owned());
    let target = args.next().unwrap_or_else(|| "localhost:5900".to_owned());

    let mut config = Config::new(ListenAddr::parse(&listen)?, Target::parse_tcp(&target)?);
    config.limits.shutdown_grace = Duration::from_secs(3);
    let server = Server::bind(config).await?;
    println!("listening on {}", server.local_addr()?);

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(server.run(shutdown.clone()));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "stop" {
            break;
        }
    }
    println!("stopping");
    shutdown.cancel();
    running.await?;
    println!("stopped");
    Ok(())
}
