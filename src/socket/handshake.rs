//! The server side of the WebSocket opening handshake (RFC 6455 §4.2) on a fresh connection,
//! bounded in time and size: the request head must arrive complete before a deadline and fit in
//! `server.max_head_size`, or the connection is answered (431, 400, 426) or simply closed. The
//! head buffer is freed once the handshake is done; bytes the client sent after its head are
//! handed to the WebSocket.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Headers parsed at most; more is answered with 431.
const MAX_HEADERS: usize = 64;
/// Bytes read per call while waiting for the head.
const CHUNK: usize = 2048;
/// How long an error response may take to write before the connection is dropped anyway.
const ERROR_WRITE: std::time::Duration = std::time::Duration::from_secs(1);

/// A valid upgrade request.
#[derive(Debug)]
pub(super) struct Upgrade {
    /// The `Origin` header.
    pub origin: Option<String>,
    /// Bytes received after the head (the client's first frames, if it did not wait).
    pub leftover: Vec<u8>,
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    /// The peer closed or reset the connection, or a read failed.
    #[error("connection closed during the handshake")]
    Closed,
    /// The head was not complete by the deadline (`server.header_timeout`).
    #[error("request head not complete in time")]
    Timeout,
    /// The head is larger than `server.max_head_size` or has too many headers: 431.
    #[error("request head too large")]
    TooLarge,
    /// Not a valid upgrade request: answered with this status and message.
    #[error("bad upgrade request: {1}")]
    Refused(u16, &'static str),
}

/// Reads the request head, validates it as a WebSocket upgrade and writes the 101 response.
/// On failure an HTTP error is written when one applies; the caller then drops the stream.
pub(super) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    max_head: usize,
    deadline: Instant,
) -> Result<Upgrade, HandshakeError> {
    let result = match read_head(stream, max_head, deadline).await {
        Ok((head, leftover)) => validate(&head).map(|(origin, accept)| (origin, accept, leftover)),
        Err(e) => Err(e),
    };
    match result {
        Ok((origin, accept, leftover)) => {
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nX-Powered-By: Herald\r\n\r\n"
            );
            let write = async {
                stream.write_all(resp.as_bytes()).await?;
                stream.flush().await
            };
            match timeout_at(deadline, write).await {
                Ok(Ok(())) => Ok(Upgrade { origin, leftover }),
                Ok(Err(_)) => Err(HandshakeError::Closed),
                Err(_) => Err(HandshakeError::Timeout),
            }
        }
        Err(e) => {
            let status = match &e {
                HandshakeError::TooLarge => Some((431, "Request Header Fields Too Large")),
                HandshakeError::Refused(code, msg) => Some((*code, *msg)),
                HandshakeError::Closed | HandshakeError::Timeout => None,
            };
            if let Some((code, msg)) = status {
                let resp = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nConnection: close\r\n\
                     X-Powered-By: Herald\r\n\r\n{msg}",
                    reason_phrase(code),
                    msg.len()
                );
                let write = async {
                    stream.write_all(resp.as_bytes()).await?;
                    stream.flush().await
                };
                let _ = timeout(ERROR_WRITE, write).await;
            }
            Err(e)
        }
    }
}

/// Reads until the blank line that ends the head; returns the head and whatever followed it.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_head: usize,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), HandshakeError> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK.min(max_head));
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(HandshakeError::Timeout),
            Ok(Err(_)) | Ok(Ok(0)) => return Err(HandshakeError::Closed),
            Ok(Ok(n)) => n,
        };
        let searched = buf.len().saturating_sub(3);
        // Grow by doubling, but never past the head limit (plus this one read).
        let want = buf.len() + n;
        if want > buf.capacity() {
            let target = (buf.capacity() * 2).min(max_head).max(want);
            buf.reserve_exact(target - buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf[searched..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = searched + pos + 4;
            if end > max_head {
                return Err(HandshakeError::TooLarge);
            }
            let leftover = buf.split_off(end);
            return Ok((buf, leftover));
        }
        if buf.len() >= max_head {
            return Err(HandshakeError::TooLarge);
        }
    }
}

/// Checks the head as RFC 6455 asks; returns the Origin and the `Sec-WebSocket-Accept` value.
fn validate(head: &[u8]) -> Result<(Option<String>, String), HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        _ => return Err(HandshakeError::Refused(400, "Malformed request")),
    }
    if req.method != Some("GET") || req.version != Some(1) {
        return Err(HandshakeError::Refused(
            400,
            "WebSocket needs GET over HTTP/1.1",
        ));
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &str, token: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token("Upgrade", "websocket") {
        return Err(HandshakeError::Refused(426, "WebSocket upgrade required"));
    }
    if !has_token("Connection", "upgrade") {
        return Err(HandshakeError::Refused(400, "Missing Connection: Upgrade"));
    }
    if header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Err(HandshakeError::Refused(
            400,
            "Unsupported Sec-WebSocket-Version",
        ));
    }
    let key = header("Sec-WebSocket-Key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(HandshakeError::Refused(400, "Missing Sec-WebSocket-Key"))?;
    let accept = derive_accept_key(key.as_bytes());
    Ok((header("Origin").map(str::to_owned), accept))
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "GET /app/k HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://a.test\r\n\r\n";

    #[test]
    fn a_valid_request_gets_the_rfc_accept_key() {
        let (origin, accept) = validate(OK.as_bytes()).unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(origin.as_deref(), Some("https://a.test"));
    }

    #[test]
    fn invalid_requests_are_refused_with_a_status() {
        let status = |head: &str| match validate(head.as_bytes()) {
            Err(HandshakeError::Refused(code, _)) => code,
            Err(HandshakeError::TooLarge) => 431,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(&OK.replace("Upgrade: websocket\r\n", "")), 426);
        assert_eq!(
            status(&OK.replace("Sec-WebSocket-Version: 13", "X: y")),
            400
        );
        assert_eq!(status(&OK.replace("Sec-WebSocket-Key", "X-Key")), 400);
        assert_eq!(status(&OK.replace("keep-alive, Upgrade", "close")), 400);
        assert_eq!(status(&OK.replace("HTTP/1.1", "HTTP/1.0")), 400);
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(&OK.replace("Host: x\r\n", &many)), 431);
    }
}

#[cfg(test)]
#[path = "handshake_props.rs"]
mod props;
