//! Raw-socket helpers for the hostile-client tests: a hand-made WebSocket handshake, frames built
//! byte by byte (masked or not, any opcode and reserved bits), the close code parsed out of
//! whatever the server sends back, and "the server closed this socket" checks with deadlines.

use super::*;

/// Opens a TCP connection and completes a WebSocket handshake by hand; the 101 head is consumed
/// and nothing else is read.
pub async fn raw_ws(addr: SocketAddr) -> TcpStream {
    raw_ws_on(TcpStream::connect(addr).await.expect("tcp connect"), addr).await
}

/// As [`raw_ws`] over an already connected socket.
pub async fn raw_ws_on(mut s: TcpStream, addr: SocketAddr) -> TcpStream {
    let req = upgrade_request(addr);
    s.write_all(req.as_bytes()).await.expect("write handshake");
    read_101(&mut s).await;
    s
}

/// As [`raw_ws`], but `extra` (frames, say) goes out in the same write as the upgrade request,
/// before the server has answered it.
pub async fn raw_ws_with(addr: SocketAddr, extra: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("tcp connect");
    let mut bytes = upgrade_request(addr).into_bytes();
    bytes.extend_from_slice(extra);
    s.write_all(&bytes).await.expect("write handshake");
    read_101(&mut s).await;
    s
}

/// The upgrade request [`raw_ws`] sends to the test app.
fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET /app/{KEY}?protocol=7 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Reads the response head byte by byte (nothing after it) and asserts it is a 101.
async fn read_101(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(FRAME_TIMEOUT, s.read(&mut byte))
            .await
            .expect("handshake response in time")
            .expect("read handshake response");
        assert_eq!(n, 1, "connection closed during handshake: {head:?}");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Reads one server frame (within [`FRAME_TIMEOUT`]) and returns its first byte (FIN, RSV,
/// opcode) and payload; asserts it is unmasked, as server frames must be.
pub async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await?;
        assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).await?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await?;
        std::io::Result::Ok((head[0], payload))
    };
    tokio::time::timeout(FRAME_TIMEOUT, read)
        .await
        .expect("a server frame in time")
        .expect("read a server frame")
}

/// Reads the next server frame, asserts it is a final text frame with Pusher event `event`,
/// and returns its JSON.
pub async fn expect_event(s: &mut TcpStream, event: &str) -> Value {
    let (first, payload) = read_frame(s).await;
    let text = String::from_utf8_lossy(&payload);
    assert_eq!(
        first, 0x81,
        "expected a text frame with {event}, got {text}"
    );
    let v: Value = serde_json::from_slice(&payload).expect("JSON text frame");
    assert_eq!(v["event"], event, "got {v}");
    v
}

/// One frame: `first` is the first byte (FIN, RSV1-3, opcode); masked with a fixed key when
/// `masked`.
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads everything the server sends until it closes the TCP connection (within `d`) and
/// returns the code of the close frame among it, or `None` when there was none.
pub async fn close_code_until_eof(s: &mut TcpStream, d: Duration) -> Option<u16> {
    close_payload_until_eof(s, d)
        .await
        .filter(|p| p.len() >= 2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
}

/// Reads everything the server sends until it closes the TCP connection (within `d`) and
/// returns the payload of the close frame among it (code and reason), or `None` when there was
/// none.
pub async fn close_payload_until_eof(s: &mut TcpStream, d: Duration) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let read = tokio::time::timeout(d, s.read_to_end(&mut data)).await;
    assert!(
        read.is_ok(),
        "server did not close the connection within {d:?}"
    );
    let mut rest = &data[..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, start) = match rest[1] & 0x7f {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let payload = &rest[start..start + len];
        if opcode == 0x8 {
            return Some(payload.to_vec());
        }
        rest = &rest[start + len..];
    }
    None
}

/// Waits up to `d` for the server to close `s` (EOF or reset), discarding what it sends.
/// Returns whether it did.
pub async fn closed_within(s: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Whether `GET /up` on a fresh connection gets `200` within 2 s (false, not a panic, when the
/// connection is refused or closed).
pub async fn up_ok(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.ok()?;
        Some(resp.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(FRAME_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}

/// A client subscribed to `canary` that must keep receiving events while others misbehave.
pub struct Canary {
    client: Client,
    seq: u32,
}

impl Canary {
    /// Connects and subscribes.
    pub async fn join(srv: &TestServer) -> Canary {
        let mut client = srv.client().await;
        client.subscribe("canary").await;
        Canary { client, seq: 0 }
    }

    /// Triggers an event over the API (from 127.0.0.2, outside the per-IP budget of the
    /// attackers on 127.0.0.1) and asserts the canary receives it within 2 s.
    pub async fn check(&mut self, srv: &TestServer) {
        self.seq += 1;
        let data = format!("tick-{}", self.seq);
        let api = srv.api();
        let body = json!({"name": "tick", "channels": ["canary"], "data": data}).to_string();
        let path = api.app_path("/events");
        let params = api.signed_params("POST", &path, &[], body.as_bytes());
        let from = "127.0.0.2".parse().expect("an IP");
        let resp = HttpConn::open_from(srv.addr, from)
            .await
            .request("POST", &api.target(&path, &params, false), body.as_bytes())
            .await;
        assert_eq!(resp.status, 200, "canary trigger refused");
        loop {
            let v = self.client.recv().await;
            if v["event"] == "tick" {
                assert_eq!(v["data"], data.as_str(), "canary got {v}");
                return;
            }
        }
    }
}
