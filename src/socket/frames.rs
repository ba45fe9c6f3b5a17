//! [`FrameReader`]: the RFC 6455 frames a client sends, parsed by hand. An idle connection holds
//! no read buffer: the socket is read into one buffer per worker thread, whole frames are
//! parsed straight from it, and only the bytes of a frame not yet complete are kept with the
//! connection (freed as soon as it completes). tungstenite, which this replaced for reading,
//! kept a read buffer, two waker `Arc`s and its whole state per connection: about 700 bytes of
//! every idle connection's 2.9 KiB (see docs/performance.md).
//!
//! What a server must refuse is refused with the RFC's close code, as tungstenite did: 1002 for
//! an unmasked frame, reserved bits, an unknown opcode, a fragmented or oversized control frame,
//! a continuation with nothing to continue or a new message inside a fragmented one; 1007 for a
//! text message (or close reason) that is not UTF-8; 1009 for a frame or message over the app's
//! `max_message_size`.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use crate::protocol::ViolationCode;

/// Bytes read from a socket per syscall, into the worker thread's buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

thread_local! {
    /// The buffer every connection on this thread reads into.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// One complete thing a client said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping; this is the pong frame to answer it with (same payload).
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client's close frame; this is the close frame to reply with (its code and reason
    /// echoed, or 1002 for a code not allowed on the wire).
    Close(Bytes),
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The peer closed the TCP connection or the transport failed: nothing more to send.
    Gone,
    /// The peer broke the protocol: close with this code.
    Violation(ViolationCode),
}

/// The read side of one connection.
pub(crate) struct FrameReader {
    /// Bytes read but not yet parsed: at most one incomplete frame, or whole frames that came in
    /// the same read as the message returned before them. Unallocated when empty.
    pending: Vec<u8>,
    /// A fragmented message being assembled: whether it is text, and its payload so far.
    message: Option<(bool, Vec<u8>)>,
    /// Largest frame and largest message, in payload bytes.
    max_message: usize,
}

/// A frame header, parsed.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header length in bytes.
    len: usize,
    payload: usize,
}

impl FrameReader {
    /// A reader refusing frames and messages over `max_message` bytes, starting with
    /// `leftover` (bytes the client sent right after its handshake request).
    pub(crate) fn new(max_message: usize, leftover: Vec<u8>) -> Self {
        Self {
            pending: leftover,
            message: None,
            max_message,
        }
    }

    /// The bytes held for frames not yet parsed: what the property tests check is freed.
    #[cfg(test)]
    pub(crate) fn pending_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// The next message from `io`.
    pub(crate) async fn next<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
    ) -> Result<Inbound, ReadEnd> {
        std::future::poll_fn(|cx| self.poll_next(io, cx)).await
    }

    /// Polls for the next message: from the bytes already read, else from `io`.
    pub(crate) fn poll_next<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Inbound, ReadEnd>> {
        loop {
            if let Some(msg) = self.next_pending()? {
                return Poll::Ready(Ok(msg));
            }
            let read = READ_BUF.with_borrow_mut(|buf| self.read_into(io, cx, buf));
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(msg))) => return Poll::Ready(Ok(msg)),
                Poll::Ready(Ok(None)) => {}
                Poll::Ready(Err(end)) => return Poll::Ready(Err(end)),
            }
        }
    }

    /// The next message from `pending`, if a whole one is there.
    fn next_pending(&mut self) -> Result<Option<Inbound>, ReadEnd> {
        while !self.pending.is_empty() {
            let mut pending = std::mem::take(&mut self.pending);
            let step = self.step(&mut pending);
            let (used, msg) = match step {
                Ok(s) => s,
                Err(code) => return Err(ReadEnd::Violation(code)),
            };
            if used == 0 {
                self.pending = pending;
                return Ok(None);
            }
            if used < pending.len() {
                pending.drain(..used);
                self.pending = pending;
            }
            if msg.is_some() {
                return Ok(msg);
            }
        }
        Ok(None)
    }

    /// Reads once from `io` into the thread's `buf` and parses what came: frames straight from
    /// `buf` when nothing was pending, the rest (an incomplete frame, or frames after the first
    /// message) kept in `pending`.
    fn read_into<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<Option<Inbound>, ReadEnd>> {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(io).poll_read(cx, &mut rb) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => {
                log_read_error(&e);
                return Poll::Ready(Err(ReadEnd::Gone));
            }
            Poll::Ready(Ok(())) => {}
        }
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Err(ReadEnd::Gone));
        }
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(&buf[..n]);
            return Poll::Ready(Ok(None));
        }
        let mut at = 0;
        while at < n {
            match self.step(&mut buf[at..n]) {
                Err(code) => return Poll::Ready(Err(ReadEnd::Violation(code))),
                Ok((0, _)) => break,
                Ok((used, msg)) => {
                    at += used;
                    if msg.is_some() {
                        self.pending.extend_from_slice(&buf[at..n]);
                        return Poll::Ready(Ok(msg));
                    }
                }
            }
        }
        self.pending.extend_from_slice(&buf[at..n]);
        Poll::Ready(Ok(None))
    }

    /// Parses one frame from the front of `buf` (unmasking it in place): the bytes it took
    /// (0 while the frame is incomplete) and the message it completed, if any.
    fn step(&mut self, buf: &mut [u8]) -> Result<(usize, Option<Inbound>), ViolationCode> {
        let Some(h) = self.header(buf)? else {
            return Ok((0, None));
        };
        let end = h.len + h.payload;
        if buf.len() < end {
            return Ok((0, None));
        }
        let payload = &mut buf[h.len..end];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= h.mask[i & 3];
        }
        let payload = &buf[h.len..end];
        let msg = match h.opcode {
            0x8 => Some(Inbound::Close(close_reply(payload)?)),
            0x9 => Some(Inbound::Ping(control(0xA, payload))),
            0xA => Some(Inbound::Pong),
            0x0 => {
                let (text, mut data) = self.message.take().ok_or(ViolationCode::ProtocolError)?;
                if data.len() + payload.len() > self.max_message {
                    return Err(ViolationCode::TooBig);
                }
                data.extend_from_slice(payload);
                if h.fin {
                    Some(complete(text, data)?)
                } else {
                    self.message = Some((text, data));
                    None
                }
            }
            _ => {
                let text = h.opcode == 0x1;
                if self.message.is_some() {
                    return Err(ViolationCode::ProtocolError);
                }
                if h.fin {
                    Some(if text {
                        Inbound::Text(
                            std::str::from_utf8(payload)
                                .map_err(|_| ViolationCode::InvalidPayload)?
                                .to_owned(),
                        )
                    } else {
                        Inbound::Binary(payload.to_vec())
                    })
                } else {
                    self.message = Some((text, payload.to_vec()));
                    None
                }
            }
        };
        Ok((end, msg))
    }

    /// The header at the front of `buf`, checked; `None` while incomplete.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, ViolationCode> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 || !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
            // Reserved bits (no extension is negotiated), an unmasked client frame, or an
            // opcode RFC 6455 reserves.
            return Err(ViolationCode::ProtocolError);
        }
        let (len, payload) = match b1 & 0x7F {
            126 if buf.len() < 4 => return Ok(None),
            126 => (4, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
            127 if buf.len() < 10 => return Ok(None),
            127 => {
                let n = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if n >> 63 != 0 {
                    return Err(ViolationCode::ProtocolError);
                }
                (10, n)
            }
            n => (2, u64::from(n)),
        };
        if opcode >= 0x8 && (!fin || payload > MAX_CONTROL as u64) {
            return Err(ViolationCode::ProtocolError);
        }
        if payload > self.max_message as u64 {
            return Err(ViolationCode::TooBig);
        }
        if buf.len() < len + 4 {
            return Ok(None);
        }
        let mask = buf[len..len + 4].try_into().expect("4 bytes");
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            len: len + 4,
            payload: payload as usize,
        }))
    }
}

/// A fragmented message, complete.
fn complete(text: bool, data: Vec<u8>) -> Result<Inbound, ViolationCode> {
    if !text {
        return Ok(Inbound::Binary(data));
    }
    String::from_utf8(data)
        .map(Inbound::Text)
        .map_err(|_| ViolationCode::InvalidPayload)
}

/// An unmasked control frame (server to client) with `payload` (at most 125 bytes).
pub(crate) fn control(opcode: u8, payload: &[u8]) -> Bytes {
    debug_assert!(payload.len() <= MAX_CONTROL);
    let mut out = BytesMut::with_capacity(2 + payload.len());
    out.put_u8(0x80 | opcode);
    out.put_u8(payload.len() as u8);
    out.put_slice(payload);
    out.freeze()
}

/// A close frame with `code` and `reason` (cut to fit a control frame).
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    control(0x8, &payload)
}

/// The reply to a client's close frame: its code and reason echoed, an empty close for an
/// empty one, and 1002 for a code that may not be sent (RFC 6455 §7.4). A one-byte payload is
/// a protocol error, a reason that is not UTF-8 an invalid payload.
fn close_reply(payload: &[u8]) -> Result<Bytes, ViolationCode> {
    match payload {
        [] => Ok(control(0x8, &[])),
        [_] => Err(ViolationCode::ProtocolError),
        [hi, lo, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| ViolationCode::InvalidPayload)?;
            let code = u16::from_be_bytes([*hi, *lo]);
            if close_code_allowed(code) {
                Ok(control(0x8, payload))
            } else {
                Ok(close_frame(1002, "Protocol violation"))
            }
        }
    }
}

/// Whether a client may send `code` in a close frame: the codes defined for the wire
/// (1004-1006 and 1015 are reserved or local-only), and 3000-4999 for libraries and apps; the
/// same set tungstenite allowed.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// Kept out of the async code so no connection's future grows for it.
#[inline(never)]
fn log_read_error(err: &io::Error) {
    tracing::debug!("read error: {err}");
}
