//! Batched writes to busy sockets (`[server] batch_window_ms`): a socket sent frames faster
//! than ~200 a second has them written by the coalescer, many per `writev`, after at most one
//! window. These tests check that nothing waits longer than that (the last frames of a burst
//! are not left behind), that frames stay whole and in order, and that a burst larger than the
//! queue bound within one window does not make a client that reads fine a slow consumer; each
//! with batching on (the default window) and off (0).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn server(window_ms: u64, queue: usize) -> TestServer {
    let mut cfg = config();
    cfg.server.batch_window_ms = window_ms;
    cfg.server.max_queued_frames = queue;
    start(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_arrives_whole_in_order_and_promptly() {
    for window in [config().server.batch_window_ms, 0] {
        let srv = server(window, 1024).await;
        let mut sub = srv.client().await;
        sub.subscribe("c").await;
        let api = srv.api();
        // 600 events as fast as the API takes them: the socket is busy from the second one.
        for chunk in 0..60 {
            let items: Vec<Value> = (0..10)
                .map(
                    |k| json!({"name": "e", "channel": "c", "data": format!("{}", chunk * 10 + k)}),
                )
                .collect();
            let (s, b) = api.batch(Value::Array(items)).await;
            assert_eq!(s, 200, "{b}");
        }
        let sent = Instant::now();
        for want in 0..600 {
            let v = sub.recv().await;
            assert_eq!(v["event"], "e", "window {window}: {v}");
            assert_eq!(v["data"], want.to_string(), "window {window}: out of order");
        }
        // Everything was published before `sent`: what was still queued must leave within
        // about one window, not wait for more traffic.
        let late = sent.elapsed();
        assert!(
            late < Duration::from_millis(500),
            "window {window}: the tail of the burst took {late:?}"
        );
        assert!(
            sub.recv_within(Duration::from_millis(200)).await.is_none(),
            "window {window}: nothing more"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_queue_bound_is_not_a_slow_consumer() {
    for window in [config().server.batch_window_ms, 0] {
        // 300 replies to a reader that keeps up, with room for 100 queued frames.
        let srv = server(window, 100).await;
        let mut c = srv.client().await;
        for i in 0..300 {
            c.send_json(
                &json!({"event": "pusher:subscribe", "data": {"channel": format!("b-{i}")}}),
            )
            .await;
        }
        for i in 0..300 {
            let v = c.recv().await;
            assert_eq!(
                v["event"], "pusher_internal:subscription_succeeded",
                "window {window}, reply {i}: {v}"
            );
        }
        c.send_json(&json!({"event": "pusher:ping", "data": {}}))
            .await;
        assert_eq!(c.recv().await["event"], "pusher:pong", "window {window}");
    }
}
