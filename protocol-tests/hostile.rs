//! Hostile clients: connections that never speak, request heads that trickle in or never end,
//! oversized heads, too many handshakes from one IP, a ping flood from a client that never
//! reads, subscription and message floods. Each test checks the bounded outcome (closed in
//! time, refused, capped) and that a canary client keeps receiving its events meanwhile.
//! Framing violations are in `hostile_framing.rs`, fd exhaustion in `hostile_fd.rs`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A config with short pre-upgrade budgets, so the tests run fast.
fn fast() -> Config {
    let mut cfg = config();
    cfg.server.first_byte_timeout = 0.5;
    cfg.server.header_timeout = 1.0;
    cfg
}

/// How long a test waits for a budget of at most 1 s to close a connection.
const CLOSED_WITHIN: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_first_byte_timeout() {
    let srv = start(fast()).await;
    let mut canary = Canary::join(&srv).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    for s in &mut silent {
        assert!(
            closed_within(s, CLOSED_WITHIN).await,
            "silent connection still open"
        );
    }
    canary.check(&srv).await;
}

/// Sends `head` one byte every 100 ms (a slowloris) and expects the server to close it within
/// `header_timeout` plus margin, long before the head is complete.
async fn trickle_is_cut_off(srv: &TestServer, head: &str) {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    for b in head.bytes() {
        if s.write_all(&[b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > CLOSED_WITHIN {
            panic!("still writing the head after {CLOSED_WITHIN:?}");
        }
    }
    assert!(
        closed_within(&mut s, CLOSED_WITHIN).await,
        "slow head not cut off"
    );
    assert!(
        started.elapsed() < CLOSED_WITHIN,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_head_is_cut_off() {
    let srv = start(fast()).await;
    let mut canary = Canary::join(&srv).await;
    let head = format!(
        "GET /app/{KEY} HTTP/1.1\r\n{}\r\n",
        "X-Pad: y\r\n".repeat(20)
    );
    trickle_is_cut_off(&srv, &head).await;
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_api_head_is_cut_off() {
    let srv = start(fast()).await;
    let mut canary = Canary::join(&srv).await;
    let head = format!(
        "POST /apps/{APP_ID}/events HTTP/1.1\r\n{}\r\n",
        "X-Pad: y\r\n".repeat(20)
    );
    trickle_is_cut_off(&srv, &head).await;
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431() {
    let srv = start(fast()).await;
    let mut canary = Canary::join(&srv).await;
    let pad = format!("X-Pad: {}\r\n", "y".repeat(1000)).repeat(20);
    let heads = [
        format!("GET /app/{KEY} HTTP/1.1\r\nUpgrade: websocket\r\n{pad}\r\n"),
        format!("GET /apps/{APP_ID}/connections HTTP/1.1\r\n{pad}\r\n"),
    ];
    for head in heads {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let _ = s.write_all(head.as_bytes()).await;
        let mut resp = Vec::new();
        let _ = tokio::time::timeout(
            CLOSED_WITHIN,
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut resp),
        )
        .await;
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 431"), "{head:.40}: {resp:?}");
    }
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_api_connection_is_closed() {
    let srv = start(fast()).await;
    let mut conn = HttpConn::open(srv.addr).await;
    assert_eq!(conn.request("GET", "/up", b"").await.status, 200);
    let started = tokio::time::Instant::now();
    // The connection is idle now; the next request head never comes.
    let mut s = conn.into_inner();
    assert!(
        closed_within(&mut s, CLOSED_WITHIN).await,
        "idle keep-alive still open"
    );
    assert!(started.elapsed() < CLOSED_WITHIN);
}

/// Opens `n` raw connections that stay pending (they never send a byte), then polls until the
/// server has accepted them all and one more connection is closed at once; returns the held
/// connections and whether that extra one was refused.
async fn hold_pending(srv: &TestServer, n: usize) -> (Vec<TcpStream>, bool) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    let refused = eventually(CLOSED_WITHIN, || async {
        let mut extra = TcpStream::connect(srv.addr).await.unwrap();
        closed_within(&mut extra, Duration::from_millis(200)).await
    })
    .await;
    (held, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_connections_are_capped_per_ip() {
    let mut cfg = fast();
    cfg.server.first_byte_timeout = 30.0;
    cfg.server.max_pending_per_ip = 5;
    let srv = start(cfg).await;
    let mut canary = Canary::join(&srv).await;
    let (held, refused) = hold_pending(&srv, 5).await;
    assert!(
        refused,
        "a sixth pending connection from one IP was not refused"
    );
    // The canary's trigger comes from another IP: it still gets through, and is delivered.
    canary.check(&srv).await;
    drop(held);
    let ok = eventually(CLOSED_WITHIN, || up_ok(srv.addr)).await;
    assert!(ok, "slots were not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_connections_are_capped_server_wide() {
    let mut cfg = fast();
    cfg.server.first_byte_timeout = 30.0;
    cfg.server.max_pending_connections = 5;
    let srv = start(cfg).await;
    let mut canary = Canary::join(&srv).await;
    let (held, refused) = hold_pending(&srv, 5).await;
    assert!(refused, "a sixth pending connection was not refused");
    // The canary stays connected meanwhile (it is a WebSocket, not pending) and gets events
    // once the budget has room for the trigger.
    drop(held);
    let ok = eventually(CLOSED_WITHIN, || up_ok(srv.addr)).await;
    assert!(ok, "slots were not given back");
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_from_a_non_reader_is_closed() {
    let mut cfg = fast();
    cfg.server.max_queued_frames = 64;
    let srv = start(cfg).await;
    let mut canary = Canary::join(&srv).await;
    // A small receive buffer, so the pongs back up into the server quickly.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut flood = raw_ws_on(sock.connect(srv.addr).await.unwrap(), srv.addr).await;
    let ping = frame(0x89, &[b'p'; 125], true);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    let api = srv.api();
    let started = tokio::time::Instant::now();
    // Never read; keep pinging until the server gives up on this socket.
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(20) {
        let write = tokio::time::timeout(Duration::from_millis(200), flood.write_all(&batch)).await;
        if matches!(write, Ok(Err(_))) || api.connections().await == 1 {
            closed = true;
            break;
        }
    }
    assert!(closed, "ping flooder still connected after 20 s");
    assert!(eventually(CLOSED_WITHIN, || async { api.connections().await == 1 }).await);
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_per_connection_are_capped() {
    let mut cfg = config();
    cfg.apps[0].max_channels_per_connection = 3;
    let srv = start(cfg).await;
    let mut canary = Canary::join(&srv).await;
    let mut c = srv.client().await;
    for ch in ["a", "b", "c"] {
        c.subscribe(ch).await;
    }
    c.send_subscribe(json!({"channel":"d"})).await;
    expect_sub_failure(&mut c, "d", "LimitReached", 4301, 4301).await;
    // Re-subscribing to a channel it already has is not a new channel.
    c.subscribe("a").await;
    c.unsubscribe("a").await;
    c.subscribe("d").await;
    canary.check(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_limit_drops_then_terminates() {
    let mut cfg = config();
    cfg.apps[0].rate_limiting.enabled = true;
    cfg.apps[0].rate_limiting.max_attempts = 5;
    let srv = start(cfg.clone()).await;
    let mut canary = Canary::join(&srv).await;
    let mut c = srv.client().await;
    for _ in 0..5 {
        c.sync().await;
    }
    c.send_json(&json!({"event":"pusher:ping","data":{}})).await;
    let v = c.recv().await;
    assert_error(&v, 4301, Some("Rate limit exceeded"));
    canary.check(&srv).await;

    cfg.apps[0].rate_limiting.terminate_on_limit = true;
    let srv = start(cfg).await;
    let mut c = srv.client().await;
    for _ in 0..6 {
        c.send_json(&json!({"event":"pusher:ping","data":{}})).await;
    }
    let (code, reason, pongs) = c.drain_until_close(CLOSED_WITHIN).await;
    assert_eq!((code, reason.as_str()), (4301, "Rate limit exceeded"));
    assert!(pongs >= 5, "{pongs} frames before the close");
}
