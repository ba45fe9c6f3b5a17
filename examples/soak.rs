//! Soak test: starts a real `herald` process on 127.0.0.1 (its own config, a free port) and
//! keeps it busy for a fixed time with churning connections, subscriptions to public, private
//! and presence channels, client events and signed HTTP triggers. A canary connection that is
//! never churned must receive every triggered event; its loss and latency are reported.
//! Every 10 s it prints the server's resident memory (`VmRSS`) and open file descriptors
//! (`/proc/PID/fd`), then a summary. It is not part of `cargo test`.
//!
//! Run: `cargo build --release && cargo run --release --example soak -- --minutes 10`
//! Options: `--minutes M` (10), `--connections N` (3000, one third of them stay connected for
//! the whole run, the rest reconnect after 10-60 s), `--rate R` (HTTP triggers per second, 20),
//! `--bin PATH` (target/release/herald). Linux only (reads /proc). Exits non-zero if the canary
//! lost an event or the server died.

mod common;

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use herald::auth::{md5_hex, sign};
use parking_lot::Mutex;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

const KEY: &str = "soak-key";
const SECRET: &str = "soak-secret";
const APP: &str = "soak";
/// Channels of each kind the workers spread over.
const PUBLIC_CHANNELS: usize = 50;
const PRIVATE_CHANNELS: usize = 50;
const PRESENCE_CHANNELS: usize = 20;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Workers start spread over this time.
const RAMP_UP: Duration = Duration::from_secs(15);

struct Opts {
    minutes: f64,
    connections: usize,
    rate: u32,
    bin: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        minutes: 10.0,
        connections: 3000,
        rate: 20,
        bin: "target/release/herald".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--minutes" => o.minutes = v.parse().expect("--minutes M"),
            "--connections" => o.connections = v.parse().expect("--connections N"),
            "--rate" => o.rate = v.parse().expect("--rate R"),
            "--bin" => o.bin = v,
            other => panic!("unknown option {other}"),
        }
    }
    // Stay well under the 20,000 open-file limit: each connection is one fd on each side.
    assert!(o.connections <= 8000, "--connections is capped at 8000");
    assert!(
        o.minutes > 0.0 && o.minutes <= 24.0 * 60.0,
        "--minutes out of range"
    );
    assert!((1..=1000).contains(&o.rate), "--rate is 1..=1000");
    o
}

/// Counters shared by every task.
#[derive(Default)]
struct Stats {
    open: AtomicUsize,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    subscribed: AtomicU64,
    errors: AtomicU64,
    frames: AtomicU64,
    client_events_sent: AtomicU64,
    client_events_received: AtomicU64,
    pongs: AtomicU64,
    triggers_ok: AtomicU64,
    triggers_failed: AtomicU64,
    canary_received: AtomicU64,
    canary_out_of_order: AtomicU64,
    canary_reconnects: AtomicU64,
    /// Canary latencies in microseconds (trigger sent -> frame received).
    latencies: Mutex<Vec<u32>>,
}

fn proc_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn start_server(bin: &str) -> (Child, u16, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!("herald-soak-{}.log", std::process::id()));
    let apps = format!(
        "[[apps]]\nid = \"{APP}\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\
         max_presence_members = 1000\n"
    );
    let (child, port) = common::spawn_herald(bin, "soak", "", &apps, Some(&log));
    (child, port, log)
}

async fn wait_up(port: u16) {
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not come up");
}

/// Opens a WebSocket; returns it with its socket id.
async fn connect(port: u16) -> Option<(Client, String)> {
    let cfg = WebSocketConfig::default().read_buffer_size(1024);
    let url = format!("ws://127.0.0.1:{port}/app/{KEY}?protocol=7&client=soak");
    let fut = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false);
    let (mut ws, _) = timeout(Duration::from_secs(10), fut).await.ok()?.ok()?;
    let first = timeout(Duration::from_secs(10), ws.next())
        .await
        .ok()??
        .ok()?;
    let Message::Text(t) = first else { return None };
    let v: serde_json::Value = serde_json::from_str(&t).ok()?;
    if v["event"] != "pusher:connection_established" {
        return None;
    }
    let data: serde_json::Value = serde_json::from_str(v["data"].as_str()?).ok()?;
    Some((ws, data["socket_id"].as_str()?.to_owned()))
}

fn subscribe_frame(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let mut data = serde_json::json!({ "channel": channel });
    if channel.starts_with("private-") || channel.starts_with("presence-") {
        let to_sign = match channel_data {
            Some(d) => format!("{socket_id}:{channel}:{d}"),
            None => format!("{socket_id}:{channel}"),
        };
        data["auth"] = format!("{KEY}:{}", sign(SECRET, to_sign.as_bytes())).into();
    }
    if let Some(d) = channel_data {
        data["channel_data"] = d.into();
    }
    serde_json::json!({ "event": "pusher:subscribe", "data": data }).to_string()
}

/// Counts one received frame; answers `pusher:ping`. Returns false if the socket must go.
async fn handle(ws: &mut Client, msg: Message, stats: &Stats) -> bool {
    match msg {
        Message::Text(t) => {
            stats.frames.fetch_add(1, Ordering::Relaxed);
            if t.contains("\"pusher:ping\"") {
                stats.pongs.fetch_add(1, Ordering::Relaxed);
                let pong = r#"{"event":"pusher:pong","data":{}}"#;
                return ws.send(Message::Text(pong.into())).await.is_ok();
            }
            if t.contains("subscription_succeeded") {
                stats.subscribed.fetch_add(1, Ordering::Relaxed);
            } else if t.contains("\"client-soak\"") {
                stats.client_events_received.fetch_add(1, Ordering::Relaxed);
            } else if t.contains("pusher:error") || t.contains("subscription_error") {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("error frame: {t}");
            }
            true
        }
        Message::Close(_) => false,
        _ => true,
    }
}

/// One simulated client: connect, subscribe, live (answering pings, sending client events on
/// its private channel), close, reconnect; until `end`.
async fn worker(i: usize, port: u16, sticky: bool, end: tokio::time::Instant, stats: Arc<Stats>) {
    let mut round = 0u64;
    while tokio::time::Instant::now() < end {
        round += 1;
        let Some((mut ws, socket_id)) = connect(port).await else {
            stats.connect_failures.fetch_add(1, Ordering::Relaxed);
            sleep(Duration::from_secs(1)).await;
            continue;
        };
        stats.connects.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let life = if sticky {
            end
        } else {
            let secs = rand::rng().random_range(10.0..60.0);
            (tokio::time::Instant::now() + Duration::from_secs_f64(secs)).min(end)
        };
        let mut frames = vec![subscribe_frame(
            &socket_id,
            &format!("soak-public-{}", i % PUBLIC_CHANNELS),
            None,
        )];
        let private = (i % 2 == 0).then(|| format!("private-soak-{}", i % PRIVATE_CHANNELS));
        if let Some(p) = &private {
            frames.push(subscribe_frame(&socket_id, p, None));
        }
        if i % 3 == 0 {
            let data = format!(r#"{{"user_id":"user-{i}","user_info":{{"round":{round}}}}}"#);
            let channel = format!("presence-soak-{}", i % PRESENCE_CHANNELS);
            frames.push(subscribe_frame(&socket_id, &channel, Some(&data)));
        }
        let mut ok = true;
        for f in frames {
            ok &= ws.send(Message::Text(f.into())).await.is_ok();
        }
        // One client event every 20 s (first one at a random offset), on the private channel.
        let mut next_event = tokio::time::Instant::now()
            + Duration::from_secs_f64(rand::rng().random_range(1.0..20.0));
        while ok {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(m)) => ok = handle(&mut ws, m, &stats).await,
                    _ => ok = false,
                },
                _ = sleep_until(next_event), if private.is_some() => {
                    next_event += Duration::from_secs(20);
                    let ev = serde_json::json!({
                        "event": "client-soak",
                        "channel": private.as_deref().unwrap(),
                        "data": {"from": i, "round": round},
                    });
                    ok = ws.send(Message::Text(ev.to_string().into())).await.is_ok();
                    stats.client_events_sent.fetch_add(1, Ordering::Relaxed);
                },
                _ = sleep_until(life) => break,
            }
        }
        if !ok && tokio::time::Instant::now() < life {
            // The server closed us before our time: count it, it should not happen.
            stats.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("worker {i}: connection lost early");
        }
        let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
        stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn micros_since(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// The canary: subscribed to `soak-canary` for the whole run, it must see every trigger, in
/// order. Reconnects (and counts it) if the server closes it.
async fn canary(port: u16, start: Instant, stop: tokio::time::Instant, stats: Arc<Stats>) {
    let mut expected = 1u64;
    let mut first = true;
    while tokio::time::Instant::now() < stop {
        let Some((mut ws, sid)) = connect(port).await else {
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        if !first {
            stats.canary_reconnects.fetch_add(1, Ordering::Relaxed);
            eprintln!("canary reconnected");
        }
        first = false;
        let sub = subscribe_frame(&sid, "soak-canary", None);
        if ws.send(Message::Text(sub.into())).await.is_err() {
            continue;
        }
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                _ = sleep_until(stop) => return,
            };
            let Some(Ok(msg)) = msg else { break };
            let Message::Text(t) = &msg else { continue };
            let v: serde_json::Value = match serde_json::from_str(t) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if v["event"] == "pusher:ping" {
                let pong = r#"{"event":"pusher:pong","data":{}}"#;
                let _ = ws.send(Message::Text(pong.into())).await;
                continue;
            }
            if v["event"] != "tick" {
                continue;
            }
            let now = micros_since(start);
            let data: serde_json::Value =
                serde_json::from_str(v["data"].as_str().unwrap_or("{}")).unwrap_or_default();
            let seq = data["seq"].as_u64().unwrap_or(0);
            let sent = data["t"].as_u64().unwrap_or(now);
            if seq != expected {
                stats.canary_out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            expected = seq + 1;
            stats.canary_received.fetch_add(1, Ordering::Relaxed);
            let lat = now.saturating_sub(sent).min(u32::MAX as u64) as u32;
            stats.latencies.lock().push(lat);
        }
    }
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body); returns the status code.
async fn read_response(http: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = http.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if buf.len() > 65536 {
                return None;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = http.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return head.get(9..12)?.parse().ok();
    }
}

/// POSTs one signed event to `channels` over a kept-alive connection.
async fn trigger(http: &mut TcpStream, channels: &[String], name: &str, data: &str) -> bool {
    let body = serde_json::json!({"name": name, "channels": channels, "data": data}).to_string();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = format!("/apps/{APP}/events");
    let q = format!(
        "auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&body_md5={}",
        md5_hex(body.as_bytes())
    );
    let sig = sign(SECRET, format!("POST\n{path}\n{q}").as_bytes());
    let req = format!(
        "POST {path}?{q}&auth_signature={sig} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if http.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    matches!(
        timeout(Duration::from_secs(10), read_response(http)).await,
        Ok(Some(200))
    )
}

/// Triggers `rate` events per second until `end`: each one goes to the canary channel and to
/// one of the public channels (in turn), and every fifth one to a presence channel too.
async fn triggers(
    port: u16,
    rate: u32,
    start: Instant,
    end: tokio::time::Instant,
    stats: Arc<Stats>,
) -> u64 {
    let mut http: Option<TcpStream> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        seq += 1;
        let mut channels = vec![
            "soak-canary".to_owned(),
            format!("soak-public-{}", seq as usize % PUBLIC_CHANNELS),
        ];
        if seq % 5 == 0 {
            channels.push(format!(
                "presence-soak-{}",
                seq as usize % PRESENCE_CHANNELS
            ));
        }
        let data = format!(
            r#"{{"seq":{seq},"t":{},"pad":"{}"}}"#,
            micros_since(start),
            "x".repeat(64)
        );
        let mut sent = false;
        for _ in 0..3 {
            if http.is_none() {
                http = TcpStream::connect(("127.0.0.1", port)).await.ok();
            }
            let Some(conn) = http.as_mut() else { continue };
            if trigger(conn, &channels, "tick", &data).await {
                sent = true;
                break;
            }
            http = None;
        }
        if sent {
            stats.triggers_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            // The canary will see a gap: that is loss the server is not to blame for, so it
            // is reported separately.
            stats.triggers_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    seq
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// One sampled figure: before any client, at the first sample after the ramp-up, last, max.
struct Series {
    start: u64,
    loaded: Option<u64>,
    last: u64,
    max: u64,
}

impl Series {
    fn new(v: u64) -> Self {
        Self {
            start: v,
            loaded: None,
            last: v,
            max: v,
        }
    }
    fn push(&mut self, v: u64, ramped: bool) {
        if ramped && self.loaded.is_none() {
            self.loaded = Some(v);
        }
        self.last = v;
        self.max = self.max.max(v);
    }
    fn show(&self, after: u64) -> String {
        format!(
            "before clients {}, after ramp-up {}, last {}, max {}; after all clients left {after}",
            self.start,
            self.loaded.unwrap_or(self.last),
            self.last,
            self.max
        )
    }
}

#[tokio::main]
async fn main() {
    let o = opts();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (mut child, port, log) = start_server(&o.bin);
    let pid = child.id();
    common::kill_child_on_exit(pid);
    println!(
        "soak: herald pid {pid} on 127.0.0.1:{port}, {} connections, {} triggers/s, {} min; server log {}",
        o.connections,
        o.rate,
        o.minutes,
        log.display()
    );
    wait_up(port).await;

    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let t0 = tokio::time::Instant::now();
    let end = t0 + Duration::from_secs_f64(o.minutes * 60.0);
    // Everything must be over by then, whatever happens.
    let hard_limit = end + Duration::from_secs(120);

    let canary_stop = end + Duration::from_secs(5);
    let canary_task = tokio::spawn(canary(port, start, canary_stop, stats.clone()));
    sleep(Duration::from_millis(500)).await;

    // Ramp up over ~15 s, then each worker churns (two thirds) or stays (one third).
    let mut workers = Vec::with_capacity(o.connections);
    for i in 0..o.connections {
        let delay = RAMP_UP.mul_f64(i as f64 / o.connections as f64);
        let stats = stats.clone();
        workers.push(tokio::spawn(async move {
            sleep(delay).await;
            worker(i, port, i % 3 == 1, end, stats).await;
        }));
    }
    let trigger_task = tokio::spawn(triggers(port, o.rate, start, end, stats.clone()));

    let mut rss = Series::new(common::rss_kib(pid));
    let mut fds = Series::new(proc_fds(pid));
    let mut seen_latencies = 0usize;
    println!(
        "{:>6} {:>9} {:>6} {:>6} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8}",
        "t(s)",
        "rss(KiB)",
        "fds",
        "open",
        "connects",
        "frames",
        "triggers",
        "canary",
        "p99(ms)",
        "errors"
    );
    let mut server_died = false;
    let mut next = t0 + SAMPLE_EVERY;
    while next <= end + SAMPLE_EVERY / 2 && tokio::time::Instant::now() < hard_limit {
        sleep_until(next).await;
        next += SAMPLE_EVERY;
        if let Ok(Some(status)) = child.try_wait() {
            println!("server exited: {status}");
            server_died = true;
            break;
        }
        let (r, f) = (common::rss_kib(pid), proc_fds(pid));
        let ramped = t0.elapsed() >= RAMP_UP + Duration::from_secs(2);
        rss.push(r, ramped);
        fds.push(f, ramped);
        let p99 = {
            let lat = stats.latencies.lock();
            let mut window: Vec<u32> = lat[seen_latencies..].to_vec();
            seen_latencies = lat.len();
            window.sort_unstable();
            percentile(&window, 0.99)
        };
        println!(
            "{:>6.0} {:>9} {:>6} {:>6} {:>8} {:>9} {:>8} {:>9} {:>8.2} {:>8}",
            t0.elapsed().as_secs_f64(),
            r,
            f,
            stats.open.load(Ordering::Relaxed),
            stats.connects.load(Ordering::Relaxed),
            stats.frames.load(Ordering::Relaxed),
            stats.triggers_ok.load(Ordering::Relaxed),
            stats.canary_received.load(Ordering::Relaxed),
            p99,
            stats.errors.load(Ordering::Relaxed),
        );
    }

    // Wind down: the trigger task and workers stop at `end`, the canary 5 s later.
    let sent = timeout(
        hard_limit.saturating_duration_since(tokio::time::Instant::now()),
        trigger_task,
    )
    .await
    .ok()
    .and_then(|r| r.ok())
    .unwrap_or(0);
    for w in workers {
        let left = hard_limit.saturating_duration_since(tokio::time::Instant::now());
        if timeout(left, w).await.is_err() {
            break;
        }
    }
    let left = hard_limit.saturating_duration_since(tokio::time::Instant::now());
    let _ = timeout(left, canary_task).await;
    // Every client is gone: the server should be back to its listener and a few fds.
    sleep(Duration::from_secs(5)).await;
    let (rss_idle, fds_idle) = (common::rss_kib(pid), proc_fds(pid));

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let mut exited = false;
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }

    let ok = stats.triggers_ok.load(Ordering::Relaxed);
    let failed = stats.triggers_failed.load(Ordering::Relaxed);
    let received = stats.canary_received.load(Ordering::Relaxed);
    let lost = ok.saturating_sub(received);
    let mut lat = std::mem::take(&mut *stats.latencies.lock());
    lat.sort_unstable();
    let log_lines = std::fs::read_to_string(&log)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    println!(
        "\nsummary after {:.1} min:",
        t0.elapsed().as_secs_f64() / 60.0
    );
    println!("  server RSS KiB: {}", rss.show(rss_idle));
    println!("  server fds: {}", fds.show(fds_idle));
    println!(
        "  connections opened {} (failed {}), subscriptions confirmed {}, frames received {}, pongs sent {}",
        stats.connects.load(Ordering::Relaxed),
        stats.connect_failures.load(Ordering::Relaxed),
        stats.subscribed.load(Ordering::Relaxed),
        stats.frames.load(Ordering::Relaxed),
        stats.pongs.load(Ordering::Relaxed),
    );
    println!(
        "  client events sent {}, deliveries received {}; error frames or early closes {}",
        stats.client_events_sent.load(Ordering::Relaxed),
        stats.client_events_received.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
    );
    println!(
        "  triggers: {sent} attempted, {ok} accepted, {failed} failed; canary received {received}, lost {lost}, out of order {}, reconnects {}",
        stats.canary_out_of_order.load(Ordering::Relaxed),
        stats.canary_reconnects.load(Ordering::Relaxed),
    );
    println!(
        "  canary latency ms: p50 {:.2} p99 {:.2} max {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!("  server log lines (RUST_LOG=warn): {log_lines}");
    if server_died || lost > 0 || failed > 0 {
        std::process::exit(1);
    }
}
