//! Shared helpers for the black-box protocol tests: start a server, a WebSocket client, channel
//! auth signing and a signed HTTP API client. Every test file does `mod common;` and uses a subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub use herald::config::Config;

/// The test app's credentials.
pub const APP_ID: &str = "app-id";
pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";

/// How long a test waits for a frame that should arrive.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Server

/// A config with the test app and defaults elsewhere, bound to 127.0.0.1:0.
pub fn config() -> Config {
    Config::single_app(APP_ID, KEY, SECRET)
}

/// A running in-process server. Dropping it triggers a graceful shutdown.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The metrics listener's address, when `[metrics] enabled`.
    pub metrics: Option<SocketAddr>,
    /// The configured path prefix (`""` or `/ws`), used by the clients below.
    pub prefix: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub handle: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// Triggers graceful shutdown (idempotent).
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// A WebSocket client on the app, handshake done.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr, &self.prefix).await
    }

    /// A signed HTTP API client for the test app.
    pub fn api(&self) -> Api {
        Api::new(self.addr, &self.prefix, KEY, SECRET)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a server from `cfg` on an ephemeral port.
pub async fn start(cfg: Config) -> TestServer {
    let prefix = cfg.server.path.trim_end_matches('/').to_string();
    let server = herald::server::Server::bind(cfg)
        .await
        .expect("server binds");
    run_server(server, prefix)
}

/// Runs an already bound server (for tests that read its state first).
pub fn run_server(server: herald::server::Server, prefix: String) -> TestServer {
    let addr = server.local_addr();
    let metrics = server.metrics_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .run(async move {
                let _ = rx.await;
            })
            .await
            .map_err(|e| format!("{e:?}"))
    });
    TestServer {
        addr,
        metrics,
        prefix,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// Starts a server with the default test config.
pub async fn start_default() -> TestServer {
    start(config()).await
}

// ---------------------------------------------------------------------------------------------
// Signing

/// Lowercase hex HMAC-SHA256.
pub fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `key:hex(hmac(secret, socket_id:channel[:channel_data]))` for the test app.
pub fn channel_auth(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let msg = match channel_data {
        Some(d) => format!("{socket_id}:{channel}:{d}"),
        None => format!("{socket_id}:{channel}"),
    };
    format!("{KEY}:{}", hmac_hex(SECRET, &msg))
}

/// `key:hex(hmac(secret, socket_id::user::user_data))` for the test app.
pub fn signin_auth(socket_id: &str, user_data: &str) -> String {
    format!(
        "{KEY}:{}",
        hmac_hex(SECRET, &format!("{socket_id}::user::{user_data}"))
    )
}

pub fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The Pusher REST string to sign: `METHOD\nPATH\nk=v&...` over sorted, lowercased, decoded params.
pub fn rest_signature(
    secret: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
) -> String {
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    sorted.sort();
    let query = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hmac_hex(secret, &format!("{method}\n{path}\n{query}"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (PHP/Guzzle style).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

mod http;
mod raw;
mod ws;
pub use http::*;
#[allow(unused_imports)]
pub use raw::*;
pub use ws::*;
