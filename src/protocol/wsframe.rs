//! [`Frame`]: one server → client WebSocket text frame, header and payload encoded once per
//! broadcast. Server frames are unmasked, so the same bytes go to every subscriber: the
//! publisher can write them straight into a socket (see `outbox/`) with no per-delivery
//! encoding or copy.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// One encoded text frame (FIN, opcode 1, unmasked); cloning shares the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header followed by the UTF-8 payload.
    wire: Bytes,
    /// Length of the header (2, 4 or 10 bytes).
    header: u8,
}

impl Frame {
    /// Encodes `payload` as a text frame.
    fn encode(payload: &[u8]) -> Self {
        let len = payload.len();
        let mut buf = BytesMut::with_capacity(len + 10);
        buf.put_u8(0x81);
        if len < 126 {
            buf.put_u8(len as u8);
        } else if len <= usize::from(u16::MAX) {
            buf.put_u8(126);
            buf.put_u16(len as u16);
        } else {
            buf.put_u8(127);
            buf.put_u64(len as u64);
        }
        let header = buf.len() as u8;
        buf.put_slice(payload);
        Self {
            wire: buf.freeze(),
            header,
        }
    }

    /// A frame of a static text (kept for symmetry with the former `Utf8Bytes` API).
    pub fn from_static(text: &'static str) -> Self {
        Self::encode(text.as_bytes())
    }

    /// The payload: the JSON text of the Pusher message.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.wire[usize::from(self.header)..])
            .expect("frames are built from strings")
    }

    /// Length of the payload in bytes.
    pub fn len(&self) -> usize {
        self.wire.len() - usize::from(self.header)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole frame as it goes on the wire.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// Raw bytes already framed elsewhere (the connection's control frames), queued on the
    /// same ordered path as broadcast frames.
    pub(crate) fn raw(bytes: Bytes) -> Self {
        Self {
            wire: bytes,
            header: 0,
        }
    }
}

impl From<String> for Frame {
    fn from(s: String) -> Self {
        Self::encode(s.as_bytes())
    }
}

impl From<&str> for Frame {
    fn from(s: &str) -> Self {
        Self::encode(s.as_bytes())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = &self.wire[usize::from(self.header)..];
        write!(f, "Frame({:?})", String::from_utf8_lossy(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_for_each_length_class() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let f = Frame::from("x".repeat(len));
            assert_eq!(f.wire().len(), len + header, "{len}");
            assert_eq!(f.wire()[0], 0x81);
            assert_eq!(f.as_str().len(), len);
        }
        let f = Frame::from("hi");
        assert_eq!(&f.wire()[..], b"\x81\x02hi");
        let f = Frame::from("y".repeat(300));
        assert_eq!(&f.wire()[..4], &[0x81, 126, 1, 44]);
    }
}
