//! The original measurements on one node: resident memory per idle connection, then a burst
//! fan-out (M events as fast as one HTTP connection sends them) as deliveries per server
//! CPU-second, then the shutdown time with every socket open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect, subscribe, Trigger};
use crate::common::rss_kib;
use crate::procs::{cpu_seconds, start_herald};
use crate::Opts;

pub async fn run(o: &Opts) {
    let subscribers = o.subscribers.unwrap_or(1_000).min(o.connections);
    let mut node = start_herald(&o.bin, "herald".into(), None);
    let (pid, port) = (node.pid(), node.port);
    node.wait_ready(false);
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
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for mut ws in clients.drain(..subscribers) {
        subscribe(&mut ws, "bench").await;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if matches!(msg, Message::Text(ref t) if t.contains("\"bench\"")) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let payload = "x".repeat(o.payload);
    let mut http = Trigger::connect(port).await;
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    for _ in 0..o.messages {
        http.send("bench", "bench", || payload.clone()).await;
    }
    let want = o.messages * subscribers;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let got = received.load(Ordering::Relaxed);
    println!(
        "fan-out: {} events x {subscribers} subscribers: {got}/{want} delivered in {wall:.2}s wall; server CPU {cpu:.2}s = {:.0} deliveries per server CPU-second ({:.0} per wall second)",
        o.messages,
        got as f64 / cpu.max(0.01),
        got as f64 / wall
    );
    drop(warm);
    for r in readers {
        r.abort();
    }
    drop(http);
    let (took, status) = node.stop(Duration::from_secs(30));
    println!(
        "shutdown with {} sockets open: {:.2}s, {status}",
        clients.len(),
        took.as_secs_f64()
    );
    assert_eq!(got, want, "every event must reach every subscriber");
}
