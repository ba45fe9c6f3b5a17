//! Memory after a spike: starts a real `herald` process and prints its resident memory
//! (VmRSS) at the baseline, at the peak and then every 5 s for a minute after each of two
//! spikes has gone away:
//! 1. `--connections N` (5000) WebSocket connections open, get `connection_established`, close;
//! 2. one socket subscribes to `--channels C` (100000) public channels, then disconnects.
//!
//! Run: `cargo build --release && cargo run --release --example spike`
//! Options: `--connections N`, `--channels C`, `--bin PATH` (target/release/herald),
//! `--idle true` (no requests at all while watching; see [`watch`]). Extra
//! environment (e.g. `MIMALLOC_PURGE_DELAY=0`) is passed to the server. Linux only (/proc).

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn start_server(bin: &str, channels: usize) -> (Child, u16) {
    let apps = format!(
        "[[apps]]\nid = \"spike\"\nkey = \"spike-key\"\nsecret = \"spike-secret\"\n\
         max_channels_per_connection = {channels}\n"
    );
    common::spawn_herald(bin, "spike", "max_pending_per_ip = 0", &apps, None)
}

async fn connect(port: u16) -> Client {
    let url = format!("ws://127.0.0.1:{port}/app/spike-key?protocol=7");
    for _ in 0..200 {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("connection_established") => return ws,
                other => panic!("unexpected first frame: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot connect");
}

/// Prints RSS every 5 s for 60 s after a spike ended. Unless `idle`, the server gets one
/// `GET /up` per second meanwhile, as a live server always has some traffic (mimalloc returns
/// freed memory to the OS from within later allocator calls, not from a timer of its own).
async fn watch(pid: u32, port: u16, label: &str, idle: bool) {
    let start = Instant::now();
    for i in 0..=60 {
        if i % 5 == 0 {
            let secs = start.elapsed().as_secs();
            println!("  {label} +{secs:>2}s: {:>7} KiB", common::rss_kib(pid));
        }
        if !idle {
            poke(port).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One `GET /up` on a fresh connection.
async fn poke(port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        let req = b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if s.write_all(req).await.is_ok() {
            let _ = s.read_to_end(&mut Vec::new()).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let (mut connections, mut channels) = (5000usize, 100_000usize);
    let (mut bin, mut idle) = ("target/release/herald".to_string(), false);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--connections" => connections = v.parse().expect("--connections N"),
            "--channels" => channels = v.parse().expect("--channels N"),
            "--bin" => bin = v,
            "--idle" => idle = v == "true",
            other => panic!("unknown option {other}"),
        }
    }
    let (mut child, port) = start_server(&bin, channels);
    let pid = child.id();
    common::kill_child_on_exit(pid);
    drop(connect(port).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("baseline: {} KiB", common::rss_kib(pid));

    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(connect(port).await);
    }
    println!(
        "{connections} connections open: {} KiB",
        common::rss_kib(pid)
    );
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    watch(pid, port, "after the connections closed", idle).await;

    let mut ws = connect(port).await;
    for i in 0..channels {
        let sub = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"spike-{i}"}}}}"#);
        ws.feed(Message::text(sub)).await.unwrap();
    }
    ws.flush().await.unwrap();
    let mut ok = 0;
    while ok < channels {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("subscription_succeeded") => ok += 1,
            Some(Ok(_)) => {}
            other => panic!("subscribing: {other:?}"),
        }
    }
    println!(
        "one socket on {channels} channels: {} KiB",
        common::rss_kib(pid)
    );
    let _ = ws.close(None).await;
    drop(ws);
    watch(pid, port, "after the subscriber left", idle).await;
    let _ = child.kill();
    let _ = child.wait();
}
