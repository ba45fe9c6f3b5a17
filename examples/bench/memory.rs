//! `conns`: resident memory per idle connection (each subscribed to one of C channels), connect
//! rate and failures; then, on a server the bench started, a burst fan-out (M events as fast as
//! one HTTP connection sends them) as deliveries per server CPU-second, and the shutdown time
//! with every socket open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect, subscribe, App, Client, Trigger};
use crate::common::rss_kib;
use crate::procs::{cpu_seconds, start_herald};
use crate::Opts;

/// Opens and subscribes one idle connection (to `c{i % channels}`), `None` on failure.
async fn open(app: App, i: usize, channels: usize) -> Option<Client> {
    let mut ws = tokio::spawn(async move { connect(&app).await })
        .await
        .ok()?;
    if channels > 0 {
        subscribe(&mut ws, &format!("c{}", i % channels)).await;
    }
    Some(ws)
}

pub async fn run(o: &Opts) {
    let subscribers = o.subscribers.unwrap_or(1_000).min(o.connections);
    let mut node = None;
    let (pid, app) = match &o.external {
        Some(app) => (o.pid, app.clone()),
        None => {
            let mut n = start_herald(o, "herald".into(), None);
            n.wait_ready(false);
            let r = (Some(n.pid()), App::bench(n.port));
            node = Some(n);
            r
        }
    };
    let rss = |pid: Option<u32>| pid.map_or(0, rss_kib);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let warm = connect(&app).await;
    let base = rss(pid);

    let t = Instant::now();
    let mut clients = Vec::with_capacity(o.connections);
    let mut failures = 0usize;
    let mut opened = 0usize;
    while opened < o.connections {
        let batch = (o.connections - opened).min(250);
        let futs: Vec<_> = (0..batch)
            .map(|k| tokio::spawn(open(app.clone(), opened + k, o.channels)))
            .collect();
        for f in futs {
            match f.await.ok().flatten() {
                Some(ws) => clients.push(ws),
                None => failures += 1,
            }
        }
        opened += batch;
    }
    let connect_secs = t.elapsed().as_secs_f64();
    // Settle: let allocator caches and the kernel quiet down before reading RSS. Herald returns
    // the handshakes' freed memory every 2 s (and a worker collects thoroughly at most every
    // 5 s): with a 2 s settle, one run in three or four read the RSS before that, 2 MiB higher.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = rss(pid);
    let per_conn = (after.saturating_sub(base)) as f64 / clients.len().max(1) as f64;
    println!(
        "idle connections: {} opened ({failures} failed) on {} channels in {connect_secs:.1}s ({:.0}/s); server RSS {base} KiB -> {after} KiB = {per_conn:.2} KiB per idle connection",
        clients.len(),
        o.channels,
        clients.len() as f64 / connect_secs
    );
    println!(
        "{}",
        serde_json::json!({"bench": "conns", "connections": clients.len(), "failures": failures,
            "channels": o.channels, "connect_per_s": clients.len() as f64 / connect_secs,
            "rss_before_kib": base, "rss_after_kib": after, "kib_per_connection": per_conn})
    );
    let (Some(mut node), Some(pid)) = (node, pid) else {
        return;
    };

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
    let mut http = Trigger::connect(&app).await;
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
