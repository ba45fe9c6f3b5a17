//! Limits and bad input: message sizes, malformed frames, HTTP size/count limits and slow
//! readers. One client's bad input must never affect the others.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A `pusher:ping` frame padded to exactly `len` bytes.
fn ping_of_len(len: usize) -> String {
    let base = json!({"event":"pusher:ping","data":{"pad":""}}).to_string();
    let pad = "p".repeat(len - base.len());
    let s = json!({"event":"pusher:ping","data":{"pad":pad}}).to_string();
    assert_eq!(s.len(), len);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_closes_1009() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_text(&ping_of_len(10_001)).await;
    let (code, reason) = c.expect_close().await;
    assert_eq!(code, 1009);
    assert_eq!(reason, "Maximum message size exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_exactly_at_limit_is_processed() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_text(&ping_of_len(10_000)).await;
    assert_eq!(c.recv().await, json!({"event":"pusher:pong","data":"{}"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_message_size_applies() {
    let mut cfg = config();
    cfg.apps[0].max_message_size = 100;
    let srv = start(cfg).await;
    let mut c = srv.client().await;
    c.send_text(&ping_of_len(100)).await;
    assert_eq!(c.recv().await["event"], "pusher:pong");
    c.send_text(&ping_of_len(101)).await;
    assert_eq!(c.expect_close().await.0, 1009);
}

async fn expect_4200(c: &mut Client) {
    let v = c.recv().await;
    assert_error(&v, 4200, None);
    let msg = v["data"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Invalid message format"), "message {msg:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_4200_and_connection_survives() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("still-here").await;
    c.send_text("Hi").await;
    expect_4200(&mut c).await;
    c.send_text("{\"event\":").await;
    expect_4200(&mut c).await;
    c.sync().await;
    srv.api().trigger(&["still-here"], "e", "x").await;
    assert_eq!(c.recv().await["channel"], "still-here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pusher_event_is_4200() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_json(&json!({"event":"pusher:nonsense","data":{}}))
        .await;
    expect_4200(&mut c).await;
    c.send_json(&json!({"event":"pusher:","data":{}})).await;
    expect_4200(&mut c).await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_non_string_event_is_4200() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    for frame in [
        json!({"event":[]}),
        json!({"event":42}),
        json!({"event":null}),
        json!({"data":{}}),
        json!([1, 2]),
        json!("just a string"),
    ] {
        c.send_json(&frame).await;
        expect_4200(&mut c).await;
    }
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_subscribe_is_4200() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    for data in [
        json!("sfsfsfs"),
        json!({"channel":[]}),
        json!({"channel":null}),
        json!({}),
        json!({"channel":"private-x","auth":[]}),
        json!({"channel":"presence-x","auth":"k:s","channel_data":[]}),
        json!({"channel":"presence-x",
               "auth":channel_auth(&c.socket_id, "presence-x", Some("Hello")),
               "channel_data":"Hello"}),
    ] {
        c.send_json(&json!({"event":"pusher:subscribe","data":data}))
            .await;
        let v = c.recv().await;
        assert_eq!(v["event"], "pusher:error", "subscribe data {data}: {v}");
        assert_eq!(v["data"]["code"], 4200, "subscribe data {data}: {v}");
    }
    c.send_json(&json!({"event":"client-x","channel":[],"data":{}}))
        .await;
    expect_4200(&mut c).await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_does_not_kill_others() {
    let srv = start_default().await;
    let mut good = srv.client().await;
    good.subscribe("safe").await;
    let mut bad = srv.client().await;
    bad.ws
        .send(Message::Binary(vec![0u8, 1, 2, 3].into()))
        .await
        .unwrap();
    // Whatever happens to `bad`, `good` keeps working.
    srv.api().trigger(&["safe"], "e", "x").await;
    assert_eq!(good.recv().await["data"], "x");
    good.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_does_not_affect_others() {
    let srv = start_default().await;
    let mut good = srv.client().await;
    good.subscribe("shared").await;
    let mut bad = srv.client().await;
    bad.subscribe("shared").await;
    bad.send_text("garbage").await;
    expect_4200(&mut bad).await;
    bad.send_text(&"x".repeat(20_000)).await;
    assert_eq!(bad.expect_close().await.0, 1009);
    srv.api().trigger(&["shared"], "e", "after").await;
    assert_eq!(
        good.recv().await,
        json!({"event":"e","channel":"shared","data":"after"})
    );
    good.sync().await;
    let ok = eventually(Duration::from_secs(2), || {
        let api = srv.api();
        async move {
            let (_, b) = api
                .get(
                    &api.app_path("/channels/shared"),
                    &[("info", "subscription_count")],
                )
                .await;
            b == json!({"occupied":true,"subscription_count":1})
        }
    })
    .await;
    assert!(ok, "the closed client left the channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_data_over_max_event_bytes_is_413() {
    let mut cfg = config();
    cfg.apps[0].max_event_bytes = 100;
    let srv = start(cfg).await;
    let api = srv.api();
    let (s, b) = api
        .events(&json!({"name":"e","channels":["c"],"data":"x".repeat(101)}))
        .await;
    assert_eq!(s, 413, "{b}");
    assert!(b["error"].is_string(), "{b}");
    let (s, _) = api
        .events(&json!({"name":"e","channels":["c"],"data":"x".repeat(100)}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .batch(json!([{"name":"e","channel":"c","data":"x".repeat(101)}]))
        .await;
    assert_eq!(s, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_body_over_max_request_size_is_413() {
    let srv = start_default().await;
    let (s, _) = srv
        .api()
        .events(&json!({"name":"e","channels":["c"],"data":"x".repeat(20_000)}))
        .await;
    assert_eq!(s, 413);
    let mut cfg = config();
    cfg.server.max_request_size = 500;
    let small = start(cfg).await;
    let (s, _) = small
        .api()
        .events(&json!({"name":"e","channels":["c"],"data":"x".repeat(600)}))
        .await;
    assert_eq!(s, 413);
    let (s, _) = small
        .api()
        .events(&json!({"name":"e","channels":["c"],"data":"x".repeat(300)}))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_channels_is_400() {
    let srv = start_default().await;
    let api = srv.api();
    let names: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let (s, b) = api
        .events(&json!({"name":"e","channels":names,"data":"x"}))
        .await;
    assert_eq!(s, 400, "{b}");
    let names: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let (s, _) = api
        .events(&json!({"name":"e","channels":names,"data":"x"}))
        .await;
    assert_eq!(s, 200);
    let mut cfg = config();
    cfg.apps[0].max_channels_per_trigger = 2;
    let srv2 = start(cfg).await;
    let (s, _) = srv2
        .api()
        .events(&json!({"name":"e","channels":["a","b","c"],"data":"x"}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_too_large_is_400() {
    let srv = start_default().await;
    let api = srv.api();
    let item = json!({"name":"e","channel":"c","data":"x"});
    let (s, b) = api.batch(Value::Array(vec![item.clone(); 11])).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api.batch(Value::Array(vec![item; 10])).await;
    assert_eq!((s, b), (200, json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_body_is_400() {
    let srv = start_default().await;
    let api = srv.api();
    for body in [&b"{not json"[..], b"[]", b"\"str\""] {
        let r = api
            .request("POST", &api.app_path("/events"), &[], body)
            .await;
        assert_eq!(r.status, 400, "body {:?}", String::from_utf8_lossy(body));
        assert!(r.json()["error"].is_string());
    }
    let r = api
        .request("POST", &api.app_path("/batch_events"), &[], b"{\"batch\":")
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .request(
            "POST",
            &api.app_path("/batch_events"),
            &[],
            b"{\"batch\":{}}",
        )
        .await;
    assert_eq!(r.status, 400);
}

/// A server whose slow reader gets a small receive buffer, subscribed to `firehose`.
async fn slow_reader_setup() -> (TestServer, Client) {
    let mut cfg = config();
    cfg.server.max_queued_frames = 16;
    cfg.server.max_request_size = 2_000_000;
    let srv = start(cfg).await;
    let mut slow = Client::connect_small_buffer(srv.addr).await;
    slow.subscribe("firehose").await;
    (srv, slow)
}

/// Ten 50 KB events on `firehose`.
fn firehose_batch() -> Value {
    let data = "x".repeat(50_000);
    let item = json!({"name":"big","channel":"firehose","data":data});
    Value::Array(vec![item; 10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_burst_then_read_gets_4100() {
    let (srv, mut slow) = slow_reader_setup().await;
    let api = srv.api();
    let batch = firehose_batch();
    // ~8 MB while the client reads nothing: far more than socket buffers + 16 queued frames.
    for _ in 0..16 {
        let (s, b) = api.batch(batch.clone()).await;
        assert_eq!(s, 200, "{b}");
    }
    let (code, _, n) = slow.drain_until_close(Duration::from_secs(20)).await;
    assert_eq!(code, 4100, "after {n} frames");
    assert!(
        n < 160,
        "all {n} events were delivered: nothing was dropped"
    );
    let ok = eventually(Duration::from_secs(2), || {
        let api = api.clone();
        async move { api.connections().await == 0 }
    })
    .await;
    assert!(ok, "the slow reader is gone");
    let mut fresh = srv.client().await;
    fresh.subscribe("firehose").await;
    api.trigger(&["firehose"], "small", "1").await;
    assert_eq!(fresh.recv().await["event"], "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_4100_and_others_keep_working() {
    let (srv, mut slow) = slow_reader_setup().await;
    let api = srv.api();
    let mut other = srv.client().await;
    other.subscribe("quiet").await;

    // Keep triggering while the slow client reads nothing, until the server drops it.
    let batch = firehose_batch();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    for _ in 0..200 {
        let (s, b) = api.batch(batch.clone()).await;
        assert_eq!(s, 200, "{b}");
        if api.connections().await == 1 {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the slow reader was never dropped after 100 MB of events"
    );
    let dropped_after = started.elapsed();

    // Other clients and the API still work.
    api.trigger(&["quiet"], "still", "ok").await;
    assert_eq!(
        other.recv().await,
        json!({"event":"still","channel":"quiet","data":"ok"})
    );
    other.sync().await;
    let mut fresh = srv.client().await;
    fresh.subscribe("firehose").await;
    api.trigger(&["firehose"], "small", "1").await;
    assert_eq!(fresh.recv().await["event"], "small");

    // The slow reader finally reads: whatever was buffered, then close 4100.
    let (code, _, n) = slow.drain_until_close(Duration::from_secs(20)).await;
    assert_eq!(
        code, 4100,
        "after {n} frames; server dropped it {dropped_after:?} after the burst began"
    );
}
