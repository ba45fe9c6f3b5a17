//! Memory returned after a spike: the real `herald` binary (with its mimalloc allocator and the
//! purge nudges in `main.rs`) runs as a child; a spike of connections, then of subscriptions,
//! comes and goes while the server gets no other traffic at all; its resident memory must fall
//! back most of the way to the baseline within seconds. Without the nudges it stays near the
//! peak (measured: 29 MiB peak, still 28 MiB a minute after 5,000 connections closed).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// How many connections the first spike opens (well under the 20,000 open-file limit).
const CONNECTIONS: usize = 3000;
/// How many channels one socket subscribes to in the second spike.
const CHANNELS: usize = 30_000;
/// How long memory may take to come back.
const WITHIN: Duration = Duration::from_secs(20);
/// The share of the spike's growth that may still be resident after [`WITHIN`].
const KEPT: f64 = 0.4;

struct Herald {
    child: Child,
    addr: SocketAddr,
    config: std::path::PathBuf,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Herald {
    async fn start() -> Herald {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = std::env::temp_dir().join(format!("herald-mem-{}.toml", std::process::id()));
        std::fs::write(
            &config,
            format!(
                "[server]\nhost = \"127.0.0.1\"\nport = {port}\nmax_pending_per_ip = 0\n\
                 [[apps]]\nid = \"{APP_ID}\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\
                 max_channels_per_connection = {CHANNELS}\n"
            ),
        )
        .expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["start", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env_remove("MIMALLOC_PURGE_DELAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn herald");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let up = eventually(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "herald did not start listening on {addr}");
        Herald {
            child,
            addr,
            config,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/pid/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/pid/status")
    }

    /// Waits (without talking to the server) until RSS is at most `baseline` plus [`KEPT`] of
    /// the growth up to `peak`; returns the last reading and whether it got there.
    async fn settles(&self, baseline: u64, peak: u64) -> (u64, bool) {
        let limit = baseline + ((peak.saturating_sub(baseline)) as f64 * KEPT) as u64;
        let start = Instant::now();
        loop {
            let now = self.rss_kib();
            if now <= limit {
                eprintln!(
                    "RSS {baseline} -> {peak} -> {now} KiB after {:?}",
                    start.elapsed()
                );
                return (now, true);
            }
            if start.elapsed() > WITHIN {
                return (now, false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_after_spikes() {
    let herald = Herald::start().await;
    Client::connect(herald.addr, "").await.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = herald.rss_kib();

    // Spike 1: connections.
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(Client::connect(herald.addr, "").await);
    }
    let peak = herald.rss_kib();
    assert!(
        peak > baseline + 4096,
        "the spike should grow RSS measurably: {baseline} -> {peak} KiB"
    );
    for c in clients {
        c.close().await;
    }
    let (after, ok) = herald.settles(baseline, peak).await;
    assert!(
        ok,
        "after {CONNECTIONS} connections closed, RSS stayed at {after} KiB \
         (baseline {baseline}, peak {peak}, allowed {KEPT} of the growth within {WITHIN:?})"
    );

    // Spike 2: one socket on many channels.
    let baseline = herald.rss_kib();
    let mut c = Client::connect(herald.addr, "").await;
    for i in 0..CHANNELS {
        c.send_json(
            &json!({"event": "pusher:subscribe", "data": {"channel": format!("spike-{i}")}}),
        )
        .await;
    }
    for _ in 0..CHANNELS {
        let v = c.recv().await;
        assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    }
    let peak = herald.rss_kib();
    c.close().await;
    let (after, ok) = herald.settles(baseline, peak).await;
    assert!(
        ok,
        "after a socket on {CHANNELS} channels left, RSS stayed at {after} KiB \
         (baseline {baseline}, peak {peak}, allowed {KEPT} of the growth within {WITHIN:?})"
    );
}
