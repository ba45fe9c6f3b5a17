//! Load benchmark: starts a real `herald` process, then measures
//! 1. resident memory per idle connection (N sockets that got `connection_established`),
//! 2. fan-out cost: HTTP-triggered events delivered to S subscribers, as deliveries per
//!    server CPU-second (CPU time from /proc, so the figure holds on a shared, noisy machine).
//!
//! Run: `cargo build --release && cargo run --release --example bench -- --connections 10000`
//! Options: `--connections N` (10000), `--subscribers S` (1000), `--messages M` (500),
//! `--bin PATH` (target/release/herald). Linux only (reads /proc).

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use herald::auth::{md5_hex, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Opts {
    connections: usize,
    subscribers: usize,
    messages: usize,
    bin: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        connections: 10_000,
        subscribers: 1_000,
        messages: 500,
        bin: "target/release/herald".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--connections" => o.connections = v.parse().expect("--connections N"),
            "--subscribers" => o.subscribers = v.parse().expect("--subscribers N"),
            "--messages" => o.messages = v.parse().expect("--messages N"),
            "--bin" => o.bin = v,
            other => panic!("unknown option {other}"),
        }
    }
    o.subscribers = o.subscribers.min(o.connections);
    o
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident set size in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status", "VmRSS:")
}

/// User + system CPU time of the process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn start_server(bin: &str) -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = {port}\nmax_request_size = 1000000\nmax_queued_frames = 100000\n\n\
         [[apps]]\nid = \"bench\"\nkey = \"bench-key\"\nsecret = \"bench-secret\"\nping_interval = 3600\nactivity_timeout = 120\n"
    );
    let path = std::env::temp_dir().join(format!("herald-bench-{port}.toml"));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(cfg.as_bytes()))
        .unwrap();
    let child = Command::new(bin)
        .args(["start", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (run `cargo build --release` first)"));
    (child, port)
}

async fn wait_up(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not come up");
}

async fn connect(port: u16) -> Client {
    let cfg = WebSocketConfig::default().read_buffer_size(512);
    let url = format!("ws://127.0.0.1:{port}/app/bench-key?protocol=7");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false)
        .await
        .expect("connect");
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains("connection_established") => ws,
        other => panic!("unexpected first frame: {other:?}"),
    }
}

/// POSTs one signed event over a kept-alive connection and reads the response.
async fn trigger(http: &mut TcpStream, port: u16, channel: &str, data: &str) {
    let body = serde_json::json!({"name": "bench", "channel": channel, "data": data}).to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = "/apps/bench/events";
    let q = format!(
        "auth_key=bench-key&auth_timestamp={ts}&auth_version=1.0&body_md5={}",
        md5_hex(body.as_bytes())
    );
    let sig = sign("bench-secret", format!("POST\n{path}\n{q}").as_bytes());
    let req = format!(
        "POST {path}?{q}&auth_signature={sig} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = http.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "trigger failed: {head}");
}

#[tokio::main]
async fn main() {
    let o = opts();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (mut child, port) = start_server(&o.bin);
    let pid = child.id();
    wait_up(port).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warm = connect(port).await;
    let base = rss_kib(pid);

    let t = Instant::now();
    let mut clients = Vec::with_capacity(o.connections);
    while clients.len() < o.connections {
        let batch = (o.connections - clients.len()).min(250);
        let futs: Vec<_> = (0..batch).map(|_| tokio::spawn(connect(port))).collect();
        for f in futs {
            clients.push(f.await.unwrap());
        }
    }
    let connect_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(base)) as f64 * 1024.0 / o.connections as f64;
    println!(
        "idle connections: {} opened in {connect_secs:.1}s; server RSS {base} KiB -> {after} KiB = {per_conn:.0} bytes per idle connection",
        o.connections
    );

    // Fan-out: S subscribers of one channel, M events, all delivered.
    let subscribe = r#"{"event":"pusher:subscribe","data":{"channel":"bench"}}"#;
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for mut ws in clients.drain(..o.subscribers) {
        ws.send(Message::Text(subscribe.into())).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("subscription_succeeded") => {}
            other => panic!("subscribe failed: {other:?}"),
        }
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if matches!(msg, Message::Text(ref t) if t.contains("\"bench\"")) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let payload = "x".repeat(100);
    let mut http = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    for _ in 0..o.messages {
        trigger(&mut http, port, "bench", &payload).await;
    }
    let want = o.messages * o.subscribers;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let got = received.load(Ordering::Relaxed);
    println!(
        "fan-out: {} events x {} subscribers: {got}/{want} delivered in {wall:.2}s wall; server CPU {cpu:.2}s = {:.0} deliveries per server CPU-second ({:.0} per wall second)",
        o.messages,
        o.subscribers,
        got as f64 / cpu.max(0.01),
        got as f64 / wall
    );
    drop(warm);
    for r in readers {
        r.abort();
    }
    let t = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().unwrap();
    println!(
        "shutdown with {} sockets open: {:.2}s, {status}",
        clients.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(got, want, "every event must reach every subscriber");
}
