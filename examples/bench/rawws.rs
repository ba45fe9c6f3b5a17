//! The fan-out subscribers' side of a WebSocket, without a WebSocket library: the upgrade
//! request by hand, then whole server frames parsed in place from one buffer per socket. A
//! subscriber reads every delivery of a run, so this is the bench's own hot path: one
//! `try_read` per wake-up, however many frames it brings, no allocation and no copy per
//! frame. (tungstenite, which the other subcommands use, cost about 3 µs of the bench's CPU per
//! delivery here: a message allocated per frame, a waker registered per read.)

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::App;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Spare room kept in a socket's buffer for each read.
const READ_CHUNK: usize = 4096;

/// A client WebSocket read frame by frame from its own buffer.
pub struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Start of the unparsed bytes in `buf`.
    at: usize,
}

/// What [`RawWs::frames`] found.
pub enum Frame<'a> {
    Text(&'a str),
    /// Anything else a server may send (binary, pong): ignored by the bench.
    Other,
}

/// The server closed the socket, or broke the protocol.
#[derive(Debug)]
pub struct Closed;

impl RawWs {
    /// Opens a WebSocket to the app and returns it with its socket id, once
    /// `connection_established` arrived.
    pub async fn connect(app: &App) -> (RawWs, String) {
        let fut = async {
            let mut tcp = TcpStream::connect(app.addr.as_str())
                .await
                .expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let req = format!(
                "GET /app/{}?protocol=7 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n",
                app.key, app.addr
            );
            tcp.write_all(req.as_bytes())
                .await
                .expect("upgrade request");
            let mut ws = RawWs {
                tcp,
                buf: Vec::with_capacity(READ_CHUNK),
                at: 0,
            };
            let head_end = loop {
                if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                ws.read_more().await.expect("upgrade response");
            };
            assert!(
                ws.buf.starts_with(b"HTTP/1.1 101"),
                "upgrade refused: {}",
                String::from_utf8_lossy(&ws.buf[..head_end])
            );
            ws.at = head_end;
            let hello = ws.next_text().await.expect("connection_established");
            assert!(
                hello.contains("connection_established"),
                "unexpected first frame: {hello}"
            );
            let id = crate::client::socket_id(&hello);
            (ws, id)
        };
        tokio::time::timeout(STEP_TIMEOUT, fut)
            .await
            .expect("connect timed out")
    }

    /// Subscribes (with `auth` for a private channel) and waits for `subscription_succeeded`.
    pub async fn subscribe(&mut self, channel: &str, auth: Option<String>) {
        let auth = auth
            .map(|a| format!(r#","auth":"{a}""#))
            .unwrap_or_default();
        let msg =
            format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"{auth}}}}}"#);
        self.send(0x1, msg.as_bytes()).await.expect("subscribe");
        let answer = tokio::time::timeout(STEP_TIMEOUT, self.next_text())
            .await
            .expect("subscribe timed out")
            .expect("subscribe answer");
        assert!(
            answer.contains("subscription_succeeded"),
            "subscribe failed: {answer}"
        );
    }

    /// Sends one client frame. A client frame must be masked; the all-zero key is a valid key
    /// that leaves the payload as it is, so nothing is rewritten.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).await
    }

    /// Reads once into the buffer (awaiting data); `Ok(0)` is the end of the stream.
    async fn read_more(&mut self) -> io::Result<usize> {
        self.compact();
        let n = self.tcp.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(n)
    }

    /// Drops parsed bytes and keeps [`READ_CHUNK`] bytes of room.
    fn compact(&mut self) {
        compact(&mut self.buf, &mut self.at);
    }

    /// The next text frame, reading as needed (set-up only: it allocates).
    async fn next_text(&mut self) -> Result<String, Closed> {
        loop {
            let mut text = None;
            self.frames(|f| match f {
                Frame::Text(t) if text.is_none() => {
                    text = Some(t.to_owned());
                    false
                }
                _ => true,
            })?;
            if let Some(t) = text {
                return Ok(t);
            }
            self.read_more().await.map_err(|_| Closed)?;
        }
    }

    /// Waits until the socket is readable and reads what is there without waiting further:
    /// `Ok(false)` for a spurious wake-up.
    pub async fn read_ready(&mut self) -> Result<bool, Closed> {
        self.tcp.readable().await.map_err(|_| Closed)?;
        self.compact();
        match self.tcp.try_read_buf(&mut self.buf) {
            Ok(0) => Err(Closed),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(_) => Err(Closed),
        }
    }

    /// Hands each whole frame in the buffer to `f`, in order, until `f` returns false; answers
    /// pings (a server may ping a quiet client) and reports a close frame as [`Closed`].
    pub fn frames(&mut self, f: impl FnMut(Frame<'_>) -> bool) -> Result<(), Closed> {
        let pings = parse(&self.buf, &mut self.at, f)?;
        for p in pings {
            self.tcp.try_write(&pong(&p)).map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// The same socket read by polling: taken out of the runtime's epoll set (so data arriving
    /// wakes nobody) into `poll`'s, under `token`, with whatever was already buffered.
    pub fn into_polled(self, poll: &mio::Poll, token: mio::Token) -> Polled {
        let std = self.tcp.into_std().expect("socket out of the runtime");
        let mut tcp = mio::net::TcpStream::from_std(std);
        poll.registry()
            .register(&mut tcp, token, mio::Interest::READABLE)
            .expect("register with the poller");
        Polled {
            tcp,
            buf: self.buf,
            at: self.at,
        }
    }
}

/// A subscriber read by polling ([`RawWs::into_polled`]): nobody waits for its data, as with the
/// floor's polled readers, so the server never pays this client's wake-ups.
pub struct Polled {
    tcp: mio::net::TcpStream,
    buf: Vec<u8>,
    at: usize,
}

impl Polled {
    /// Reads what the socket holds (it was reported readable): until a short read, which on a
    /// TCP socket means it is drained (edge-triggered: new data raises a new event).
    pub fn read_all(&mut self) -> Result<(), Closed> {
        use std::io::Read;
        loop {
            compact(&mut self.buf, &mut self.at);
            let len = self.buf.len();
            self.buf.resize(len + READ_CHUNK, 0);
            let n = match self.tcp.read(&mut self.buf[len..]) {
                Ok(0) => return Err(Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.buf.truncate(len);
                    continue;
                }
                Err(_) => return Err(Closed),
            };
            self.buf.truncate(len + n);
            if n < READ_CHUNK {
                return Ok(());
            }
        }
    }

    /// As [`RawWs::frames`].
    pub fn frames(&mut self, f: impl FnMut(Frame<'_>) -> bool) -> Result<(), Closed> {
        use std::io::Write;
        let pings = parse(&self.buf, &mut self.at, f)?;
        for p in pings {
            self.tcp.write(&pong(&p)).map_err(|_| Closed)?;
        }
        Ok(())
    }
}

/// Drops the parsed bytes before `at` and keeps [`READ_CHUNK`] bytes of room.
fn compact(buf: &mut Vec<u8>, at: &mut usize) {
    if *at > 0 {
        buf.drain(..*at);
        *at = 0;
    }
    buf.reserve(READ_CHUNK);
}

/// A client pong for a ping's payload, masked with the all-zero key. At most 131 bytes: it fits
/// the socket's buffer without waiting.
fn pong(payload: &[u8]) -> Vec<u8> {
    let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    pong.extend_from_slice(payload);
    pong
}

/// Hands each whole server frame in `buf[*at..]` to `f`, in order, until `f` returns false,
/// moving `at` past what it parsed; returns the payloads of the pings to answer, or [`Closed`]
/// for a close frame or invalid text.
fn parse(
    buf: &[u8],
    at: &mut usize,
    mut f: impl FnMut(Frame<'_>) -> bool,
) -> Result<Vec<Vec<u8>>, Closed> {
    let mut pings = Vec::new();
    loop {
        let rest = &buf[*at..];
        if rest.len() < 2 {
            break;
        }
        let (b0, b1) = (rest[0], rest[1]);
        assert!(b1 & 0x80 == 0, "server frames are never masked");
        let (len, head) = match b1 & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => {
                let mut n = [0; 8];
                n.copy_from_slice(&rest[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if rest.len() < head + len {
            break;
        }
        let payload = &rest[head..head + len];
        *at += head + len;
        assert!(
            b0 & 0x80 != 0 && b0 & 0x0f != 0,
            "fragmented server messages are not supported by the bench"
        );
        let go_on = match b0 & 0x0f {
            0x1 => f(Frame::Text(
                std::str::from_utf8(payload).map_err(|_| Closed)?,
            )),
            0x8 => return Err(Closed),
            0x9 => {
                pings.push(payload.to_vec());
                true
            }
            _ => f(Frame::Other),
        };
        if !go_on {
            break;
        }
    }
    Ok(pings)
}
