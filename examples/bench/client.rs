//! The client side: WebSocket connect and subscribe, signed HTTP triggers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use herald::auth::{md5_hex, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The server under test: address and app credentials.
#[derive(Clone)]
pub struct App {
    pub addr: String,
    pub id: String,
    pub key: String,
    pub secret: String,
}

impl App {
    /// The app the bench configures on the servers it starts itself.
    pub fn bench(port: u16) -> App {
        App {
            addr: format!("127.0.0.1:{port}"),
            id: "bench".into(),
            key: "bench-key".into(),
            secret: "bench-secret".into(),
        }
    }
}

/// Opens a WebSocket to the app and waits for `connection_established`.
pub async fn connect(app: &App) -> Client {
    connect_id(app).await.0
}

/// Opens a WebSocket and returns it with its socket id (a cheap scan, no JSON parse).
pub async fn connect_id(app: &App) -> (Client, String) {
    let cfg = WebSocketConfig::default().read_buffer_size(512);
    let url = format!("ws://{}/app/{}?protocol=7", app.addr, app.key);
    let fut = async {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false)
            .await
            .expect("connect");
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("connection_established") => {
                let id = socket_id(&t);
                (ws, id)
            }
            other => panic!("unexpected first frame: {other:?}"),
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .expect("connect timed out")
}

/// The socket id in a `connection_established` frame (a cheap scan, no JSON parse).
pub fn socket_id(hello: &str) -> String {
    hello
        .split("socket_id\\\":\\\"")
        .nth(1)
        .and_then(|r| r.split('\\').next())
        .unwrap_or_default()
        .to_owned()
}

/// Subscribes to a public channel and waits for `subscription_succeeded`.
pub async fn subscribe(ws: &mut Client, channel: &str) {
    subscribe_auth(ws, channel, None).await
}

/// Subscribes with an `auth` signature (private channels) and waits for the answer.
pub async fn subscribe_auth(ws: &mut Client, channel: &str, auth: Option<String>) {
    let auth = auth
        .map(|a| format!(r#","auth":"{a}""#))
        .unwrap_or_default();
    let msg = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"{auth}}}}}"#);
    ws.send(Message::Text(msg.into()))
        .await
        .expect("send subscribe");
    match tokio::time::timeout(STEP_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.contains("subscription_succeeded") => {}
        other => panic!("subscribe failed: {other:?}"),
    }
}

/// The private-channel signature for `socket_id` on `channel`.
pub fn private_auth(app: &App, socket_id: &str, channel: &str) -> String {
    format!(
        "{}:{}",
        app.key,
        sign(&app.secret, format!("{socket_id}:{channel}").as_bytes())
    )
}

/// A kept-alive HTTP connection for signed `POST /apps/{id}/events`.
pub struct Trigger {
    http: TcpStream,
    app: App,
    buf: Vec<u8>,
}

impl Trigger {
    pub async fn connect(app: &App) -> Trigger {
        let http = TcpStream::connect(app.addr.as_str())
            .await
            .expect("HTTP connect");
        http.set_nodelay(true).expect("nodelay");
        Trigger {
            http,
            app: app.clone(),
            buf: Vec::with_capacity(1024),
        }
    }

    /// Sends one event; `data` is called right before the request is written (so a timestamp
    /// in it is the send time). Waits for the whole response and checks it is a 200.
    pub async fn send(&mut self, channel: &str, event: &str, data: impl FnOnce() -> String) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // The data is plain ASCII with no quotes: no JSON encoder needed.
        let body = format!(
            r#"{{"name":"{event}","channel":"{channel}","data":"{}"}}"#,
            data()
        );
        let path = format!("/apps/{}/events", self.app.id);
        let q = format!(
            "auth_key={}&auth_timestamp={ts}&auth_version=1.0&body_md5={}",
            self.app.key,
            md5_hex(body.as_bytes())
        );
        let sig = sign(&self.app.secret, format!("POST\n{path}\n{q}").as_bytes());
        let req = format!(
            "POST {path}?{q}&auth_signature={sig} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.app.addr,
            body.len()
        );
        self.http
            .write_all(req.as_bytes())
            .await
            .expect("HTTP write");
        tokio::time::timeout(STEP_TIMEOUT, self.read_response())
            .await
            .expect("HTTP response timed out");
    }

    async fn read_response(&mut self) {
        self.buf.clear();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "trigger failed: {head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    assert_eq!(
                        self.buf.len(),
                        end + 4 + len,
                        "unexpected bytes after response"
                    );
                    return;
                }
            }
            let n = self.http.read(&mut chunk).await.expect("HTTP read");
            assert!(n > 0, "HTTP connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
