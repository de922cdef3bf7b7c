//! A message-level WebSocket echo server built only from this crate's handshake and codec
//! modules, so that Autobahn|Testsuite can judge them without a byte-stream target in the
//! way (the proxy cannot echo message boundaries or text opcodes).
//!
//! Usage: `cargo run --example echo_server -- 127.0.0.1:9001`

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use websockify::handshake;
use websockify::http::{self, HeadLimits};
use websockify::ws::{ControlFrame, Decoder, DecoderConfig, Event, MAX_SERVER_HEADER, OpCode, encode_header_before};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo server on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn serve(mut io: TcpStream) -> std::io::Result<()> {
    io.set_nodelay(true)?;
    let mut buf = BytesMut::new();
    let Ok(request) = http::read_head(&mut io, &mut buf, HeadLimits::default()).await else { return Ok(()) };
    let accepted = match handshake::accept(&request, &buf, false) {
        Ok(a) if a.framing == handshake::Framing::Rfc6455 => a,
        Ok(_) => return Ok(()), // Hixie: not what Autobahn tests
        Err(response) => return response.write_to(&mut io).await,
    };
    io.write_all(&accepted.response).await?;

    let mut decoder = Decoder::new(DecoderConfig { max_message: 64 << 20 });
    let mut buf = buf.to_vec();
    let mut message = Vec::new();
    loop {
        let mut pos = 0;
        loop {
            let (event, used) = match decoder.decode(&mut buf[pos..]) {
                Ok(ok) => ok,
                Err(e) => {
                    io.write_all(ControlFrame::close(Some(e.close_code()), &e.to_string()).as_bytes()).await?;
                    return io.shutdown().await;
                }
            };
            let at = pos;
            pos += used;
            match event {
                Event::NeedMore => break,
                Event::Data { payload, text, last } => {
                    message.extend_from_slice(&buf[at + payload.start..at + payload.end]);
                    if last {
                        let mut header = [0u8; MAX_SERVER_HEADER];
                        let op = if text { OpCode::Text } else { OpCode::Binary };
                        let n = encode_header_before(&mut header, true, op, message.len());
                        io.write_all(&header[MAX_SERVER_HEADER - n..]).await?;
                        io.write_all(&message).await?;
                        message.clear();
                    }
                }
                Event::Ping(p) => {
                    io.write_all(ControlFrame::new(OpCode::Pong, &buf[at + p.start..at + p.end]).as_bytes()).await?;
                }
                Event::Pong(_) => {}
                Event::Close { code, reason } => {
                    let reason = String::from_utf8_lossy(&buf[at + reason.start..at + reason.end]).into_owned();
                    io.write_all(ControlFrame::close(code, &reason).as_bytes()).await?;
                    return io.shutdown().await;
                }
            }
        }
        buf.drain(..pos);
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}
