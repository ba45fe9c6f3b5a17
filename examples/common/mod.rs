//! Shared by the examples: a signed HTTP API call (as the Pusher server SDKs make it) and a
//! WebSocket client that reads Pusher frames. Deliberately small and dependency-free beyond
//! what Herald itself uses.

// Each example uses a different subset of these helpers.
#![allow(missing_docs, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use herald::auth::{md5_hex, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Where the server is and which app to use.
pub struct Target {
    pub addr: String,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

impl Target {
    /// Reads `HERALD_ADDR`, `HERALD_APP_ID`, `HERALD_KEY`, `HERALD_SECRET`, defaulting to the
    /// embedded config (`herald start` with no arguments).
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        Self {
            addr: var("HERALD_ADDR", "127.0.0.1:8080"),
            app_id: var("HERALD_APP_ID", "app-id"),
            key: var("HERALD_KEY", "app-key"),
            secret: var("HERALD_SECRET", "app-secret"),
        }
    }

    /// Signs and sends one API request on a fresh connection; returns status line and body.
    pub async fn api(&self, method: &str, path: &str, body: &str) -> (String, String) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut q = format!("auth_key={}&auth_timestamp={ts}&auth_version=1.0", self.key);
        if !body.is_empty() {
            q.push_str(&format!("&body_md5={}", md5_hex(body.as_bytes())));
        }
        let sig = sign(&self.secret, format!("{method}\n{path}\n{q}").as_bytes());
        let req = format!(
            "{method} {path}?{q}&auth_signature={sig} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut tcp = TcpStream::connect(&self.addr)
            .await
            .expect("connect to Herald");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        tcp.read_to_string(&mut resp).await.unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        (
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        )
    }

    /// Opens a WebSocket and returns it with its socket id.
    pub async fn connect(&self) -> (Client, String) {
        let url = format!(
            "ws://{}/app/{}?protocol=7&client=rust-example",
            self.addr, self.key
        );
        let cfg = WebSocketConfig::default().read_buffer_size(1024);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false)
            .await
            .expect("WebSocket connect");
        let hello = next_json(&mut ws).await.expect("connection_established");
        let data: serde_json::Value =
            serde_json::from_str(hello["data"].as_str().unwrap_or("{}")).unwrap();
        (ws, data["socket_id"].as_str().unwrap_or("").to_owned())
    }

    /// The `auth` for a private or presence subscription, as an app's auth endpoint signs it.
    pub fn channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        let to_sign = match channel_data {
            Some(d) => format!("{socket_id}:{channel}:{d}"),
            None => format!("{socket_id}:{channel}"),
        };
        format!("{}:{}", self.key, sign(&self.secret, to_sign.as_bytes()))
    }
}

/// The next text frame as JSON (`None` when the socket closed).
pub async fn next_json(ws: &mut Client) -> Option<serde_json::Value> {
    while let Some(msg) = ws.next().await {
        match msg.ok()? {
            Message::Text(t) => return serde_json::from_str(&t).ok(),
            Message::Close(frame) => {
                println!("closed: {frame:?}");
                return None;
            }
            _ => {}
        }
    }
    None
}

/// Resident set size of process `pid`, in KiB (Linux: /proc/PID/status VmRSS; 0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Makes sure the server child `pid` does not outlive the example: a panic, Ctrl-C or SIGTERM
/// (say, from `timeout`) kills it before the example exits. Needs a tokio runtime.
pub fn kill_child_on_exit(pid: u32) {
    fn kill(pid: u32) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        kill(pid);
        std::process::exit(101);
    }));
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: stopping the server child {pid}");
        kill(pid);
        std::process::exit(130);
    });
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `bin start` on a config file of its own (`herald-<name>-<port>.toml` in the temp
/// directory): `[server]` on a free 127.0.0.1 port plus the `server` lines, then `rest` (the
/// apps). Its stderr goes to `log` when given. Returns the child and its port.
pub fn spawn_herald(
    bin: &str,
    name: &str,
    server: &str,
    rest: &str,
    log: Option<&std::path::Path>,
) -> (std::process::Child, u16) {
    use std::process::{Command, Stdio};
    let port = free_port();
    let cfg = format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n{server}\n{rest}");
    let path = std::env::temp_dir().join(format!("herald-{name}-{port}.toml"));
    std::fs::write(&path, cfg).expect("write the config");
    let mut cmd = Command::new(bin);
    cmd.args(["start", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(log) = log {
        cmd.stderr(std::fs::File::create(log).expect("create the log"));
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (run `cargo build --release` first)"));
    (child, port)
}
