//! The WebSocket side of the test helpers: a Pusher client over tokio-tungstenite, frame
//! assertions and the subscription-failure expectations.

use super::*;

// ---------------------------------------------------------------------------------------------
// WebSocket client

pub type Ws = WebSocketStream<TcpStream>;

/// A Pusher WebSocket test client.
pub struct Client {
    pub ws: Ws,
    /// Set once `pusher:connection_established` was read.
    pub socket_id: String,
    /// The parsed `connection_established` data.
    pub established: Value,
}

/// The URL query pusher-js sends.
pub const PJS_QUERY: &str = "protocol=7&client=js&version=8.6.0&flash=false";

/// Opens a WebSocket to `path_and_query` (e.g. `/app/app-key?protocol=7`), optionally with an
/// Origin header. Does not read anything. Err when the upgrade is refused.
pub async fn ws_open(
    addr: SocketAddr,
    path_and_query: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    ws_open_on(stream, addr, path_and_query, origin).await
}

/// As [`ws_open`] over an already connected stream.
pub async fn ws_open_on(
    stream: TcpStream,
    addr: SocketAddr,
    path_and_query: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}{path_and_query}")
        .into_client_request()
        .expect("valid url");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).expect("header value"));
    }
    let (ws, _resp) =
        tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::client_async(req, stream))
            .await
            .expect("websocket handshake timed out")?;
    Ok(ws)
}

/// Parses `pusher:connection_established`, returning (socket_id, data).
pub fn parse_established(frame: &Value) -> (String, Value) {
    assert_eq!(
        frame["event"], "pusher:connection_established",
        "first frame: {frame}"
    );
    let data_str = frame["data"]
        .as_str()
        .unwrap_or_else(|| panic!("connection_established data must be a JSON string: {frame}"));
    let data: Value = serde_json::from_str(data_str).expect("data string is JSON");
    let socket_id = data["socket_id"]
        .as_str()
        .unwrap_or_else(|| panic!("socket_id string: {data}"))
        .to_string();
    (socket_id, data)
}

/// `^\d+\.\d+$`
pub fn is_socket_id(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

impl Client {
    /// Connects to `{prefix}/app/{KEY}` with pusher-js's query and reads `connection_established`.
    pub async fn connect(addr: SocketAddr, prefix: &str) -> Client {
        Self::connect_path(addr, &format!("{prefix}/app/{KEY}?{PJS_QUERY}"), None).await
    }

    /// Connects to a path and reads `connection_established` (panics on anything else).
    pub async fn connect_path(
        addr: SocketAddr,
        path_and_query: &str,
        origin: Option<&str>,
    ) -> Client {
        let ws = ws_open(addr, path_and_query, origin)
            .await
            .unwrap_or_else(|e| panic!("websocket upgrade to {path_and_query} failed: {e}"));
        Self::established(ws).await
    }

    /// Connects like [`Client::connect`] with a 4 KiB receive buffer, so the server's writes to
    /// it fill the kernel buffers after a few frames (slow-reader and write-path tests).
    pub async fn connect_small_buffer(addr: SocketAddr) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let stream = sock.connect(addr).await.unwrap();
        let ws = ws_open_on(stream, addr, &format!("/app/{KEY}?{PJS_QUERY}"), None)
            .await
            .unwrap();
        Self::established(ws).await
    }

    /// Wraps an open socket, reading `connection_established`.
    pub async fn established(ws: Ws) -> Client {
        let mut c = Client::raw(ws);
        let frame = c.recv().await;
        let (socket_id, data) = parse_established(&frame);
        c.socket_id = socket_id;
        c.established = data;
        c
    }

    /// Wraps an open socket without reading anything.
    pub fn raw(ws: Ws) -> Client {
        Client {
            ws,
            socket_id: String::new(),
            established: Value::Null,
        }
    }

    /// The next WebSocket message of any kind within `d`; None on timeout. Panics on a read error.
    pub async fn next_message(&mut self, d: Duration) -> Option<Message> {
        match tokio::time::timeout(d, self.ws.next()).await {
            Err(_) => None,
            Ok(None) => panic!("connection ended without a close frame"),
            Ok(Some(Err(e))) => panic!("websocket read error: {e}"),
            Ok(Some(Ok(m))) => Some(m),
        }
    }

    /// The next text frame as JSON within `d` (ping/pong control frames are skipped); None on
    /// timeout. Panics on a close frame, binary frame or non-JSON text.
    pub async fn recv_within(&mut self, d: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await? {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                        panic!("server sent non-JSON text {:?}: {e}", t.as_str())
                    }))
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(f) => panic!("expected a JSON frame, got close {f:?}"),
                other => panic!("expected a JSON text frame, got {other:?}"),
            }
        }
    }

    /// The next JSON frame (2 s timeout).
    pub async fn recv(&mut self) -> Value {
        match self.recv_within(FRAME_TIMEOUT).await {
            Some(v) => v,
            None => panic!("no frame within {FRAME_TIMEOUT:?}"),
        }
    }

    /// The next JSON frame, which must have event `event`.
    pub async fn recv_event(&mut self, event: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["event"], event, "unexpected frame: {v}");
        v
    }

    /// Asserts no text frame arrives within `ms` milliseconds (control frames are ignored).
    pub async fn expect_nothing(&mut self, ms: u64) {
        if let Some(v) = self.recv_within(Duration::from_millis(ms)).await {
            panic!("expected no frame within {ms} ms, got {v}");
        }
    }

    /// The next message must be a close frame; returns (code, reason).
    pub async fn expect_close(&mut self) -> (u16, String) {
        self.expect_close_within(FRAME_TIMEOUT).await
    }

    /// As [`Client::expect_close`], waiting up to `d`.
    pub async fn expect_close_within(&mut self, d: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                None => panic!("no close frame within {d:?}"),
                Some(Message::Close(Some(f))) => {
                    return (u16::from(f.code), f.reason.as_str().to_string())
                }
                Some(Message::Close(None)) => panic!("close frame without a code"),
                Some(Message::Ping(_)) | Some(Message::Pong(_)) => continue,
                Some(other) => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Reads (and discards) frames until a close frame arrives within `d`; returns its code and
    /// reason and how many text frames came first. Panics on timeout or on EOF without close.
    pub async fn drain_until_close(&mut self, d: Duration) -> (u16, String, usize) {
        let deadline = tokio::time::Instant::now() + d;
        let mut n = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => panic!("no close frame within {d:?} ({n} text frames read)"),
                Ok(None) => panic!("connection ended without a close frame ({n} text frames)"),
                Ok(Some(Err(e))) => {
                    panic!("read error before a close frame ({n} text frames): {e}")
                }
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    return (u16::from(f.code), f.reason.as_str().to_string(), n)
                }
                Ok(Some(Ok(Message::Close(None)))) => panic!("close frame without a code"),
                Ok(Some(Ok(Message::Text(_)))) => n += 1,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Expects `pusher:error` with `code` (and `message`, when given) followed by close `code`.
    pub async fn expect_error_and_close(&mut self, code: u16, message: Option<&str>) {
        let err = self.recv().await;
        assert_error(&err, code, message);
        let (c, _) = self.expect_close().await;
        assert_eq!(c, code, "close code after {err}");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send text");
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_ping_frame(&mut self, payload: &[u8]) {
        self.ws
            .send(Message::Ping(bytes::Bytes::copy_from_slice(payload)))
            .await
            .expect("send ping frame");
    }

    /// Sends `pusher:ping` and waits for the exact `pusher:pong`: a round trip proving every
    /// earlier frame from this client was processed and the connection is alive.
    pub async fn sync(&mut self) {
        self.send_json(&json!({"event":"pusher:ping","data":{}}))
            .await;
        let v = self.recv().await;
        assert_eq!(
            v,
            json!({"event":"pusher:pong","data":"{}"}),
            "pong expected"
        );
    }

    /// Sends a subscribe with the given data object.
    pub async fn send_subscribe(&mut self, data: Value) {
        self.send_json(&json!({"event":"pusher:subscribe","data":data}))
            .await;
    }

    /// Subscribes to a public channel and asserts the exact success frame.
    pub async fn subscribe(&mut self, channel: &str) {
        self.send_subscribe(json!({"channel": channel, "auth": ""}))
            .await;
        self.expect_succeeded(channel).await;
    }

    /// Subscribes to a private(-encrypted/-cache) channel with a valid auth; asserts success.
    pub async fn subscribe_private(&mut self, channel: &str) {
        let auth = channel_auth(&self.socket_id, channel, None);
        self.send_subscribe(json!({"channel": channel, "auth": auth}))
            .await;
        self.expect_succeeded(channel).await;
    }

    /// Sends a correctly signed presence subscribe with this exact `channel_data` string.
    pub async fn send_presence_subscribe(&mut self, channel: &str, channel_data: &str) {
        let auth = channel_auth(&self.socket_id, channel, Some(channel_data));
        self.send_subscribe(
            json!({"channel": channel, "auth": auth, "channel_data": channel_data}),
        )
        .await;
    }

    /// Joins a presence channel and returns the decoded `presence` object of the success frame.
    pub async fn subscribe_presence(&mut self, channel: &str, channel_data: &str) -> Value {
        self.send_presence_subscribe(channel, channel_data).await;
        let v = self.recv().await;
        presence_payload(&v, channel)
    }

    /// Asserts the next frame is exactly the non-presence success frame for `channel`.
    pub async fn expect_succeeded(&mut self, channel: &str) {
        let v = self.recv().await;
        assert_eq!(
            v,
            json!({"event":"pusher_internal:subscription_succeeded","channel":channel,"data":"{}"}),
            "subscribe to {channel}"
        );
    }

    pub async fn unsubscribe(&mut self, channel: &str) {
        self.send_json(&json!({"event":"pusher:unsubscribe","data":{"channel":channel}}))
            .await;
    }

    /// Sends `pusher:signin` for `user_data` with a valid signature and asserts success.
    pub async fn signin(&mut self, user_data: &str) {
        let auth = signin_auth(&self.socket_id, user_data);
        self.send_json(
            &json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}),
        )
        .await;
        let v = self.recv().await;
        assert_eq!(
            v,
            json!({"event":"pusher:signin_success","data":{"user_data":user_data}}),
            "signin"
        );
    }

    /// Sends a client event.
    pub async fn client_event(&mut self, channel: &str, event: &str, data: Value) {
        self.send_json(&json!({"event": event, "channel": channel, "data": data}))
            .await;
    }

    /// Sends a close frame and waits for the server's close (best effort), so the server sees the
    /// disconnect promptly.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(FRAME_TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// Asserts `v` is `{"event":"pusher:error","data":{"code":code,"message":...}}` with object data.
pub fn assert_error(v: &Value, code: u16, message: Option<&str>) {
    assert_eq!(v["event"], "pusher:error", "expected pusher:error, got {v}");
    assert!(
        v["data"].is_object(),
        "pusher:error data must be an object: {v}"
    );
    assert_eq!(v["data"]["code"], json!(code), "error code in {v}");
    assert!(v["data"]["message"].is_string(), "error message in {v}");
    if let Some(m) = message {
        assert_eq!(v["data"]["message"], m, "error message in {v}");
    }
}

/// Asserts `v` is a presence subscription_succeeded for `channel`; returns the `presence` object.
pub fn presence_payload(v: &Value, channel: &str) -> Value {
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    assert_eq!(v["channel"], channel, "{v}");
    let s = v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("presence success data must be a string: {v}"));
    let data: Value = serde_json::from_str(s).expect("data is JSON");
    assert!(
        data["presence"].is_object(),
        "presence object missing: {data}"
    );
    data["presence"].clone()
}

/// Decodes a frame's string `data` as JSON.
pub fn data_json(v: &Value) -> Value {
    let s = v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("data must be a JSON string: {v}"));
    serde_json::from_str(s).unwrap_or_else(|e| panic!("data is not JSON ({e}): {v}"))
}

/// Expects the two subscription-failure frames: subscription_error (type, status) then
/// pusher:error (code).
pub async fn expect_sub_failure(c: &mut Client, channel: &str, typ: &str, status: u16, code: u16) {
    let v = c.recv().await;
    assert_eq!(
        v["event"], "pusher:subscription_error",
        "first failure frame: {v}"
    );
    assert_eq!(v["channel"], channel, "{v}");
    assert!(
        v["data"].is_object(),
        "subscription_error data is an object: {v}"
    );
    assert_eq!(v["data"]["type"], typ, "{v}");
    assert_eq!(v["data"]["status"], json!(status), "{v}");
    assert!(v["data"]["error"].is_string(), "{v}");
    let e = c.recv().await;
    assert_error(&e, code, None);
}

/// The standard auth failure: AuthError/401 then pusher:error 4009 "Connection is unauthorized".
pub async fn expect_auth_failure(c: &mut Client, channel: &str) {
    let v = c.recv().await;
    assert_eq!(
        v["event"], "pusher:subscription_error",
        "first failure frame: {v}"
    );
    assert_eq!(
        v,
        json!({"event":"pusher:subscription_error","channel":channel,
               "data":{"type":"AuthError","error":v["data"]["error"],"status":401}}),
        "auth failure frame"
    );
    assert!(v["data"]["error"].is_string(), "{v}");
    let e = c.recv().await;
    assert_eq!(
        e,
        json!({"event":"pusher:error","data":{"code":4009,"message":"Connection is unauthorized"}})
    );
}

/// Polls `f` every 20 ms until it returns true or `d` elapses; returns the last result.
pub async fn eventually<F, Fut>(d: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + d;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sorted `ids` of a presence snapshot (numbers rendered as text).
pub fn presence_ids(p: &Value) -> Vec<String> {
    let mut ids: Vec<String> = p["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("ids array: {p}"))
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    ids.sort();
    ids
}
