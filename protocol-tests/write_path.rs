//! The direct write path: publishers write pre-encoded frames straight into idle sockets and
//! fall back to the socket's queue when the kernel buffer is full. These tests force that
//! fallback (tiny receive buffers), mix publishers, and race writes against closes; every frame
//! must arrive whole (the client's WebSocket parser would fail otherwise) and in order.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A server with room for long queues, and a client whose receive buffer is tiny, so the
/// kernel takes only part of a frame now and then.
async fn tight_client(queue: usize) -> (TestServer, Client) {
    let mut cfg = config();
    cfg.server.max_queued_frames = queue;
    cfg.server.max_request_size = 4_000_000;
    cfg.apps[0].client_events_per_second = 100_000;
    let srv = start(cfg).await;
    let client = Client::connect_small_buffer(srv.addr).await;
    (srv, client)
}

/// `{tag}:{seq}:` padded with `x` to `size` bytes.
fn data(tag: &str, seq: usize, size: usize) -> String {
    let mut s = format!("{tag}:{seq}:");
    let pad = size.saturating_sub(s.len());
    s.extend(std::iter::repeat_n('x', pad));
    s
}

/// (tag, seq) of an event's data.
fn tag_seq(v: &Value) -> (String, usize) {
    let d = v["data"].as_str().unwrap_or_else(|| panic!("no data: {v}"));
    let mut parts = d.splitn(3, ':');
    let tag = parts.next().unwrap().to_owned();
    (tag, parts.next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_buffer_fills_mid_broadcast_frames_stay_whole_and_in_order() {
    let (srv, mut slow) = tight_client(10_000).await;
    slow.subscribe("c").await;
    let mut fast = srv.client().await;
    fast.subscribe("c").await;
    let api = srv.api();
    // 400 events of 1-20 KB (~4 MB) while `slow` reads nothing: its kernel buffer fills mid-way
    // (partial writes), the rest queues; `fast` keeps up.
    let sizes = |i: usize| 1000 + (i * 7919) % 19_000;
    for chunk in 0..40 {
        let items: Vec<Value> = (0..10)
            .map(|k| {
                let i = chunk * 10 + k;
                json!({"name":"e","channel":"c","data": data("a", i, sizes(i))})
            })
            .collect();
        let (s, b) = api.batch(Value::Array(items)).await;
        assert_eq!(s, 200, "{b}");
    }
    for c in [&mut fast, &mut slow] {
        for i in 0..400 {
            let v = c.recv_within(Duration::from_secs(10)).await.expect("event");
            assert_eq!(tag_seq(&v), ("a".to_owned(), i));
            assert_eq!(v["data"].as_str().unwrap().len(), sizes(i), "whole payload");
        }
        c.sync().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_from_two_publishers_to_one_socket_stay_whole_and_in_order() {
    let (srv, mut reader) = tight_client(100_000).await;
    reader.subscribe("c").await;
    reader.subscribe_private("private-c").await;
    // Publisher 1: the HTTP API (frames written from an API task). Publisher 2: client events
    // from another socket (frames written from that socket's task). Both hit `reader` at once.
    let api = srv.api();
    let http = tokio::spawn(async move {
        for chunk in 0..30 {
            let items: Vec<Value> = (0..10)
                .map(|k| {
                    let i = chunk * 10 + k;
                    json!({"name":"e","channel":"c","data": data("h", i, 100 + (i * 131) % 9000)})
                })
                .collect();
            let (s, b) = api.batch(Value::Array(items)).await;
            assert_eq!(s, 200, "{b}");
        }
    });
    let mut whisperer = srv.client().await;
    whisperer.subscribe_private("private-c").await;
    for i in 0..300 {
        let d = data("w", i, 50 + (i * 97) % 3000);
        whisperer
            .client_event("private-c", "client-e", json!(d))
            .await;
    }
    http.await.unwrap();
    let (mut next_h, mut next_w) = (0, 0);
    while next_h < 300 || next_w < 300 {
        let v = reader
            .recv_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("missing events: http at {next_h}, whispers at {next_w}"));
        match tag_seq(&v) {
            (t, i) if t == "h" => {
                assert_eq!(i, next_h, "HTTP events in order");
                next_h += 1;
            }
            (t, i) if t == "w" => {
                assert_eq!(i, next_w, "client events in order");
                next_w += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    reader.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_closes_leave_the_server_healthy() {
    let mut cfg = config();
    cfg.server.max_request_size = 4_000_000;
    let srv = start(cfg).await;
    let api = srv.api();
    let mut witness = srv.client().await;
    witness.subscribe("c").await;
    for round in 0..10 {
        // Ten subscribers; half close cleanly (close frame), half vanish (TCP dropped) while a
        // burst is being written to all of them.
        let mut subs = Vec::new();
        for _ in 0..10 {
            let mut c = srv.client().await;
            c.subscribe("c").await;
            subs.push(c);
        }
        let api2 = api.clone();
        let burst = tokio::spawn(async move {
            let items: Vec<Value> = (0..10)
                .map(|i| json!({"name":"e","channel":"c","data": data("r", round * 10 + i, 5000)}))
                .collect();
            let (s, b) = api2.batch(Value::Array(items)).await;
            assert_eq!(s, 200, "{b}");
        });
        for (i, c) in subs.into_iter().enumerate() {
            if i % 2 == 0 {
                c.close().await;
            } else {
                drop(c);
            }
        }
        burst.await.unwrap();
        for i in 0..10 {
            let v = witness
                .recv_within(Duration::from_secs(5))
                .await
                .expect("event");
            assert_eq!(tag_seq(&v), ("r".to_owned(), round * 10 + i));
        }
    }
    let api3 = api.clone();
    let gone = eventually(Duration::from_secs(5), || {
        let api = api3.clone();
        async move { api.connections().await == 1 }
    })
    .await;
    assert!(gone, "closed sockets are released");
    witness.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_after_queued_frames_sends_them_then_4200() {
    let (mut srv, mut slow) = tight_client(10_000).await;
    slow.subscribe("c").await;
    let api = srv.api();
    for chunk in 0..5 {
        let items: Vec<Value> = (0..10)
            .map(|k| json!({"name":"e","channel":"c","data": data("s", chunk * 10 + k, 20_000)}))
            .collect();
        let (s, b) = api.batch(Value::Array(items)).await;
        assert_eq!(s, 200, "{b}");
    }
    srv.shutdown();
    for i in 0..50 {
        let v = slow
            .recv_within(Duration::from_secs(10))
            .await
            .expect("queued event");
        assert_eq!(tag_seq(&v), ("s".to_owned(), i));
    }
    slow.expect_error_and_close(4200, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_racing_a_flood_get_succeeded_first_then_every_later_event_in_order() {
    let mut cfg = config();
    cfg.server.max_request_size = 4_000_000;
    let srv = start(cfg).await;
    let api = srv.api();
    // One publisher floods `c` (events in batches of 10: busy sockets, queued frames, direct
    // writes, all mixed) while 20 sockets subscribe one after another, then sends a last one.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (api2, done2) = (api.clone(), done.clone());
    let flood = tokio::spawn(async move {
        let mut sent = 0;
        while !done2.load(std::sync::atomic::Ordering::Relaxed) && sent < 5000 {
            let items: Vec<Value> = (0..10)
                .map(|k| json!({"name":"e","channel":"c","data": data("f", sent + k, 300)}))
                .collect();
            let (s, b) = api2.batch(Value::Array(items)).await;
            assert_eq!(s, 200, "{b}");
            sent += 10;
        }
        sent
    });
    let mut subs = Vec::new();
    for _ in 0..20 {
        let mut c = srv.client().await;
        // Asserts that the first frame after the subscribe is subscription_succeeded.
        c.subscribe("c").await;
        subs.push(c);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = flood.await.unwrap();
    let item = json!([{"name":"e","channel":"c","data": data("f", last, 300)}]);
    assert_eq!(api.batch(item).await.0, 200);
    for (n, c) in subs.iter_mut().enumerate() {
        // From its first event on, a subscriber gets every later one, in publish order.
        let mut next = None;
        while next != Some(last + 1) {
            let v = c
                .recv_within(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("subscriber {n}: stopped at {next:?}"));
            let (tag, i) = tag_seq(&v);
            assert_eq!(tag, "f");
            if let Some(want) = next {
                assert_eq!(i, want, "subscriber {n}: events in order, none missing");
            }
            next = Some(i + 1);
        }
        c.sync().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_members_joining_at_once_get_the_snapshot_first_and_all_converge() {
    let mut cfg = config();
    cfg.apps[0].max_presence_members = 1000;
    let srv = start(cfg).await;
    const N: usize = 40;
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(srv.client().await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let data = format!(r#"{{"user_id":"u{i}"}}"#);
                // Asserts the first frame is the snapshot.
                let presence = c.subscribe_presence("presence-p", &data).await;
                let mut known: std::collections::HashSet<String> = presence["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                assert!(known.contains(&format!("u{i}")), "a member sees itself");
                while known.len() < N {
                    let v = c
                        .recv_within(Duration::from_secs(10))
                        .await
                        .unwrap_or_else(|| panic!("member {i}: {} of {N} known", known.len()));
                    assert_eq!(v["event"], "pusher_internal:member_added", "{v}");
                    let d: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
                    let id = d["user_id"].as_str().unwrap().to_owned();
                    assert!(known.insert(id.clone()), "member {i}: {id} added twice");
                }
                c
            })
        })
        .collect();
    let mut members = Vec::new();
    for t in tasks {
        members.push(t.await.expect("member converges"));
    }
    for c in &mut members {
        c.expect_nothing(50).await;
    }
}
