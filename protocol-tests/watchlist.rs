//! Watchlist events and subscription counting over real sockets: the exact frames, who gets
//! them and when, the 100-id watchlist limit (4302), coalescing of a burst of subscribers and
//! the throttle of large channels.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The next text frame, verbatim (control frames skipped).
async fn raw(c: &mut Client) -> String {
    loop {
        match c.next_message(FRAME_TIMEOUT).await {
            Some(Message::Text(t)) => return t.as_str().to_owned(),
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn watch_frame(online: &[&str], offline: &[&str]) -> String {
    let mut events = Vec::new();
    if !online.is_empty() {
        events.push(json!({"name":"online","user_ids":online}));
    }
    if !offline.is_empty() {
        events.push(json!({"name":"offline","user_ids":offline}));
    }
    let data = json!({ "events": events }).to_string();
    // json! orders keys alphabetically: build the envelope in the server's order.
    format!(
        r#"{{"event":"pusher_internal:watchlist_events","data":{}}}"#,
        serde_json::to_string(&data).unwrap()
    )
}

fn count_frame(channel: &str, n: usize) -> String {
    format!(
        r#"{{"event":"pusher_internal:subscription_count","channel":"{channel}","data":"{{\"subscription_count\":{n}}}"}}"#
    )
}

async fn watching_server() -> TestServer {
    let mut cfg = config();
    cfg.apps[0].watchlist_events = true;
    start(cfg).await
}

async fn counting_server() -> TestServer {
    let mut cfg = config();
    cfg.apps[0].subscription_count = true;
    start(cfg).await
}

/// Signs in as `id` watching `watchlist`.
async fn sign_in(srv: &TestServer, id: &str, watchlist: &[&str]) -> Client {
    let mut c = srv.client().await;
    let user_data = json!({"id": id, "watchlist": watchlist}).to_string();
    c.signin(&user_data).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_snapshot_then_online_and_offline_once() {
    let srv = watching_server().await;
    let mut a = sign_in(&srv, "a", &["b", "c"]).await;
    assert_eq!(raw(&mut a).await, watch_frame(&[], &["b", "c"]));
    let mut b1 = sign_in(&srv, "b", &[]).await;
    assert_eq!(raw(&mut a).await, watch_frame(&["b"], &[]));
    let mut b2 = sign_in(&srv, "b", &[]).await;
    a.expect_nothing(200).await;
    // A late watcher sees b online and a online, c offline.
    let mut w = sign_in(&srv, "w", &["a", "b", "c"]).await;
    assert_eq!(raw(&mut w).await, watch_frame(&["a", "b"], &["c"]));
    b1.ws.close(None).await.ok();
    a.expect_nothing(300).await;
    b2.ws.close(None).await.ok();
    assert_eq!(raw(&mut a).await, watch_frame(&[], &["b"]));
    assert_eq!(raw(&mut w).await, watch_frame(&[], &["b"]));
    // Watchers only: a user watching nobody gets nothing.
    let mut c = sign_in(&srv, "c", &[]).await;
    assert_eq!(raw(&mut a).await, watch_frame(&["c"], &[]));
    c.expect_nothing(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_over_100_ids_keeps_100_and_reports_4302() {
    let srv = watching_server().await;
    let ids: Vec<String> = (0..105).map(|i| format!("u{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut a = sign_in(&srv, "a", &ids).await;
    let err = a.recv().await;
    assert_eq!(err["event"], "pusher:error");
    assert_eq!(err["data"]["code"], 4302);
    assert_eq!(raw(&mut a).await, watch_frame(&[], &ids[..100]));
    let _late = sign_in(&srv, "u104", &[]).await;
    a.expect_nothing(200).await;
    let _u99 = sign_in(&srv, "u99", &[]).await;
    assert_eq!(raw(&mut a).await, watch_frame(&["u99"], &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_events_are_off_by_default() {
    let srv = start_default().await;
    let mut a = sign_in(&srv, "a", &["b"]).await;
    let _b = sign_in(&srv, "b", &[]).await;
    a.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_follows_changes() {
    let srv = counting_server().await;
    let mut x = srv.client().await;
    x.subscribe("room").await;
    assert_eq!(raw(&mut x).await, count_frame("room", 1));
    let mut y = srv.client().await;
    y.subscribe("room").await;
    assert_eq!(raw(&mut y).await, count_frame("room", 2));
    assert_eq!(raw(&mut x).await, count_frame("room", 2));
    y.unsubscribe("room").await;
    assert_eq!(raw(&mut x).await, count_frame("room", 1));
    y.expect_nothing(200).await;
    // Private channels count too; presence channels do not.
    x.subscribe_private("private-p").await;
    assert_eq!(raw(&mut x).await, count_frame("private-p", 1));
    x.subscribe_presence("presence-q", r#"{"user_id":"1"}"#)
        .await;
    x.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_off_by_default() {
    let srv = start_default().await;
    let mut x = srv.client().await;
    x.subscribe("room").await;
    let mut y = srv.client().await;
    y.subscribe("room").await;
    x.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_subscribers_is_coalesced() {
    let srv = counting_server().await;
    let mut first = srv.client().await;
    first.subscribe("burst").await;
    assert_eq!(raw(&mut first).await, count_frame("burst", 1));
    let mut others = Vec::new();
    for _ in 0..60 {
        others.push(srv.client().await);
    }
    for c in &mut others {
        c.send_subscribe(json!({"channel":"burst"})).await;
    }
    // Far fewer frames than joins, the last one with the final count.
    let mut frames = Vec::new();
    while let Some(v) = first.recv_within(Duration::from_millis(400)).await {
        frames.push(v);
    }
    eprintln!(
        "burst: {} count frames at the first subscriber for 60 joins",
        frames.len()
    );
    assert!(frames.len() <= 10, "{} frames for 60 joins", frames.len());
    let last = frames.last().expect("a count");
    assert_eq!(last["data"], r#"{"subscription_count":61}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_channels_get_at_most_one_count_per_5_s() {
    let srv = counting_server().await;
    let mut watcher = srv.client().await;
    watcher.subscribe("big").await;
    let mut others = Vec::new();
    for _ in 0..101 {
        let mut c = srv.client().await;
        c.send_subscribe(json!({"channel":"big"})).await;
        others.push(c);
    }
    // Drain until the count reaches 102 (a large channel now). If a coalesced round already
    // sent a count above 100, the 102 itself is throttled: wait out the interval.
    loop {
        let v = watcher
            .recv_within(Duration::from_secs(7))
            .await
            .expect("the count reaches 102");
        if v["data"] == r#"{"subscription_count":102}"# {
            break;
        }
    }
    let sent_at = tokio::time::Instant::now();
    let mut extra = srv.client().await;
    extra.send_subscribe(json!({"channel":"big"})).await;
    let v = watcher
        .recv_within(Duration::from_secs(7))
        .await
        .expect("the change arrives after the interval");
    let waited = sent_at.elapsed();
    assert_eq!(v["data"], r#"{"subscription_count":103}"#);
    assert!(
        waited >= Duration::from_millis(4500),
        "throttled: came after {waited:?}"
    );
}
