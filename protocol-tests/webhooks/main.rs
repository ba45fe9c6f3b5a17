//! Webhook tests against a real HTTP receiver on 127.0.0.1 (`receiver.rs`): every event type
//! with its exact body, headers and signature; Pusher's vacated delay and its cancellation on a
//! reconnect; batching; retries (5xx then 2xx, a receiver that is down, a 400 not retried); the
//! per-target queue bound; a slow receiver not slowing sockets or other targets; the flush at
//! shutdown. Delays and backoffs are shortened so the file runs in a few seconds.

#[path = "../common/mod.rs"]
mod common;
mod receiver;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use herald::config::{AppConfig, WebhookEventType, WebhookFilter, WebhookTarget};
use herald::webhooks::WebhookStats;
use receiver::{Hook, Receiver};
use serde_json::{json, Value};

const ALL: [WebhookEventType; 7] = [
    WebhookEventType::ChannelOccupied,
    WebhookEventType::ChannelVacated,
    WebhookEventType::MemberAdded,
    WebhookEventType::MemberRemoved,
    WebhookEventType::ClientEvent,
    WebhookEventType::CacheMiss,
    WebhookEventType::SubscriptionCount,
];

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);

fn target(url: &str, types: &[WebhookEventType]) -> WebhookTarget {
    WebhookTarget {
        url: url.to_owned(),
        event_types: types.to_vec(),
        filter: WebhookFilter::default(),
        headers: Default::default(),
    }
}

/// The test app with `targets`, a 300 ms vacated delay and fast retries.
fn app_with(targets: Vec<WebhookTarget>) -> AppConfig {
    let mut app = AppConfig::new(APP_ID, KEY, SECRET);
    app.webhooks = targets;
    app.webhook_vacated_delay_ms = 300;
    app.webhook_retry.base_backoff_ms = 50;
    app.webhook_retry.max_backoff_ms = 200;
    app.webhook_retry.timeout_ms = 1000;
    app.accept_client_events_from = herald::config::ClientEventsFrom::All;
    app
}

/// Starts a server with `app`; also returns its webhook counters.
async fn serve(app: AppConfig, tweak: impl FnOnce(&mut Config)) -> (TestServer, Arc<WebhookStats>) {
    let mut cfg = config();
    cfg.apps = vec![app];
    tweak(&mut cfg);
    let server = herald::server::Server::bind(cfg).await.expect("binds");
    let stats = server.webhook_stats().expect("webhooks configured");
    (run_server(server, String::new()), stats)
}

/// Asserts the Pusher headers (exact casing and values) and the signature of the exact body.
fn assert_signed(h: &Hook) {
    assert_eq!(
        h.header_exact("Content-Type"),
        Some("application/json"),
        "{h:?}"
    );
    assert_eq!(h.header_exact("X-Pusher-Key"), Some(KEY), "{h:?}");
    let sig = h
        .header_exact("X-Pusher-Signature")
        .expect("signature header");
    assert_eq!(sig, hmac_hex(SECRET, &h.body));
    let v = h.json();
    let t = v["time_ms"].as_u64().expect("time_ms is an integer");
    let now = now_secs() * 1000;
    assert!(
        t + 10_000 > now && t < now + 10_000,
        "time_ms {t} near {now}"
    );
    assert_eq!(
        v.as_object().unwrap().len(),
        2,
        "only time_ms and events: {v}"
    );
}

/// Every event, in order, until `QUIET` passes with nothing; each request checked.
async fn collect(r: &mut Receiver) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(h) = r.next_within(QUIET).await {
        assert_signed(&h);
        all.extend(h.events());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_exact_and_signed() {
    let mut r = Receiver::ok().await;
    let (srv, stats) = serve(app_with(vec![target(&r.url, &ALL)]), |_| {}).await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_presence("presence-room", r#"{"user_id":"1"}"#)
        .await;
    b.subscribe_presence("presence-room", r#"{"user_id":"2","user_info":{"n":1}}"#)
        .await;
    a.recv_event("pusher_internal:member_added").await;
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    a.client_event("private-chat", "client-typing", json!({"x":1}))
        .await;
    b.recv_event("client-typing").await;
    b.client_event("presence-room", "client-hi", json!("text"))
        .await;
    a.recv_event("client-hi").await;
    a.send_subscribe(json!({"channel":"cache-news"})).await;
    a.recv_event("pusher_internal:subscription_succeeded").await;
    a.recv_event("pusher:cache_miss").await;
    let bid = b.socket_id.clone();
    b.close().await;
    let events = collect(&mut r).await;
    let aid = a.socket_id.clone();
    assert_eq!(
        events,
        vec![
            json!({"name":"channel_occupied","channel":"presence-room"}),
            json!({"name":"member_added","channel":"presence-room","user_id":"1"}),
            json!({"name":"member_added","channel":"presence-room","user_id":"2"}),
            json!({"name":"channel_occupied","channel":"private-chat"}),
            json!({"name":"client_event","channel":"private-chat","event":"client-typing","data":"{\"x\":1}","socket_id":aid}),
            json!({"name":"client_event","channel":"presence-room","event":"client-hi","data":"text","socket_id":bid,"user_id":"2"}),
            json!({"name":"channel_occupied","channel":"cache-news"}),
            json!({"name":"cache_miss","channel":"cache-news"}),
            json!({"name":"member_removed","channel":"presence-room","user_id":"2"}),
        ]
    );
    a.close().await;
    let mut events = collect(&mut r).await;
    events.sort_by_key(|e| e.to_string());
    assert_eq!(
        events,
        vec![
            json!({"name":"channel_vacated","channel":"cache-news"}),
            json!({"name":"channel_vacated","channel":"presence-room"}),
            json!({"name":"member_removed","channel":"presence-room","user_id":"1"}),
            json!({"name":"channel_vacated","channel":"private-chat"}),
        ]
    );
    let s = stats.snapshot();
    assert_eq!(
        (s.delivered, s.given_up, s.dropped, s.retries),
        (13, 0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_headers_and_several_targets() {
    let mut all = Receiver::ok().await;
    let mut private = Receiver::ok().await;
    let mut t = target(&private.url, &[WebhookEventType::ChannelOccupied]);
    t.filter.channel_name_starts_with = Some("private-".into());
    t.filter.channel_name_ends_with = Some("-b".into());
    t.headers.insert("X-Custom".into(), "v1".into());
    let app = app_with(vec![
        target(&all.url, &[WebhookEventType::ChannelOccupied]),
        t,
    ]);
    let (srv, _) = serve(app, |_| {}).await;
    let mut c = srv.client().await;
    for ch in ["private-a", "private-b", "public-b"] {
        if ch.starts_with("private-") {
            c.subscribe_private(ch).await;
        } else {
            c.subscribe(ch).await;
        }
    }
    let names = |evs: Vec<Value>| -> Vec<String> {
        evs.iter()
            .map(|e| e["channel"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(collect(&mut all).await),
        ["private-a", "private-b", "public-b"]
    );
    let h = private.next().await;
    assert_signed(&h);
    assert_eq!(h.header_exact("X-Custom"), Some("v1"));
    assert_eq!(names(h.events()), ["private-b"]);
    assert!(private.next_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_the_delay_sends_nothing() {
    let mut r = Receiver::ok().await;
    let (srv, stats) = serve(app_with(vec![target(&r.url, &ALL)]), |_| {}).await;
    let data = r#"{"user_id":"u1"}"#;
    let mut a = srv.client().await;
    a.subscribe_presence("presence-page", data).await;
    assert_eq!(collect(&mut r).await.len(), 2, "occupied + member_added");
    // A page reload: the old socket goes, a new one comes back within 300 ms.
    a.close().await;
    let mut a2 = srv.client().await;
    a2.subscribe_presence("presence-page", data).await;
    assert_eq!(collect(&mut r).await, Vec::<Value>::new(), "nothing at all");
    assert_eq!(stats.snapshot().cancelled, 2);
    // A real departure: sent once the delay has passed, not before.
    let left = Instant::now();
    a2.close().await;
    let h = r.next().await;
    let waited = h.at.duration_since(left);
    assert!(
        waited >= Duration::from_millis(280),
        "sent after {waited:?}"
    );
    let mut events = h.events();
    events.extend(collect(&mut r).await);
    assert_eq!(
        events,
        vec![
            json!({"name":"member_removed","channel":"presence-page","user_id":"u1"}),
            json!({"name":"channel_vacated","channel":"presence-page"}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_groups_events_up_to_max() {
    let mut r = Receiver::ok().await;
    let mut app = app_with(vec![target(&r.url, &[WebhookEventType::ChannelOccupied])]);
    app.webhook_batching.enabled = true;
    app.webhook_batching.window_ms = 300;
    app.webhook_batching.max_events = 3;
    let (srv, _) = serve(app, |_| {}).await;
    let mut c = srv.client().await;
    for i in 0..5 {
        c.subscribe(&format!("b{i}")).await;
    }
    let first = r.next().await;
    let second = r.next().await;
    assert_signed(&first);
    assert_signed(&second);
    let names = |h: &Hook| -> Vec<String> {
        h.events()
            .iter()
            .map(|e| e["channel"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["b0", "b1", "b2"]);
    assert_eq!(names(&second), ["b3", "b4"]);
    assert!(r.next_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_after_5xx_and_429_then_delivered_once() {
    let mut r = Receiver::scripted(Arc::new(|n| match n {
        0 => (500, Duration::ZERO),
        1 => (429, Duration::ZERO),
        _ => (200, Duration::ZERO),
    }))
    .await;
    let (srv, stats) = serve(app_with(vec![target(&r.url, &ALL)]), |_| {}).await;
    let mut c = srv.client().await;
    c.subscribe("retry-me").await;
    let bodies: Vec<String> = [r.next().await, r.next().await, r.next().await]
        .iter()
        .map(|h| {
            assert_signed(h);
            h.body.clone()
        })
        .collect();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "the same body each time"
    );
    assert!(
        r.next_within(QUIET).await.is_none(),
        "no duplicate after the 200"
    );
    let s = stats.snapshot();
    assert_eq!((s.delivered, s.retries, s.given_up), (1, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried() {
    let mut r = Receiver::scripted(Arc::new(|_| (400, Duration::ZERO))).await;
    let (srv, stats) = serve(app_with(vec![target(&r.url, &ALL)]), |_| {}).await;
    let mut c = srv.client().await;
    c.subscribe("refused").await;
    r.next().await;
    assert!(r.next_within(QUIET).await.is_none(), "not retried");
    let s = stats.snapshot();
    assert_eq!((s.delivered, s.retries, s.given_up), (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_is_given_up_after_bounded_attempts() {
    // A port nothing listens on: connection refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let mut app = app_with(vec![target(&url, &[WebhookEventType::ChannelOccupied])]);
    app.webhook_retry.max_attempts = 3;
    let (srv, stats) = serve(app, |_| {}).await;
    let mut c = srv.client().await;
    c.subscribe("nobody-listens").await;
    let done = eventually(Duration::from_secs(5), || {
        let s = stats.snapshot();
        async move { s.given_up == 1 }
    })
    .await;
    let s = stats.snapshot();
    assert!(done, "{s:?}");
    assert_eq!((s.delivered, s.retries, s.given_up), (0, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_delays_neither_sockets_nor_other_targets() {
    let slow = Receiver::scripted(Arc::new(|_| (200, Duration::from_secs(3)))).await;
    let mut fast = Receiver::ok().await;
    let types = [WebhookEventType::ClientEvent];
    let mut app = app_with(vec![target(&slow.url, &types), target(&fast.url, &types)]);
    app.webhook_retry.timeout_ms = 10_000;
    let (srv, stats) = serve(app, |c| c.server.max_queued_webhooks = 5).await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_private("private-fast").await;
    b.subscribe_private("private-fast").await;
    for i in 0..10 {
        let sent = Instant::now();
        a.client_event("private-fast", "client-n", json!(i)).await;
        b.recv_event("client-n").await;
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "socket delivery not slowed"
        );
        let h = fast
            .next_within(Duration::from_secs(1))
            .await
            .expect("fast target served");
        assert_eq!(h.events()[0]["data"], json!(i.to_string()));
        tokio::time::sleep(Duration::from_millis(110)).await; // under the 10/s client-event cap
    }
    // The slow target holds one in flight and 5 queued: the other 4 were dropped, counted.
    let s = stats.snapshot();
    assert_eq!(s.dropped, 4, "{s:?}");
    assert_eq!(slow.count.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_delayed_and_queued_webhooks() {
    let mut r = Receiver::ok().await;
    let mut app = app_with(vec![target(&r.url, &ALL)]);
    app.webhook_vacated_delay_ms = 60_000;
    let (mut srv, stats) = serve(app, |_| {}).await;
    let mut c = srv.client().await;
    c.subscribe("going-away").await;
    assert_eq!(r.next().await.events()[0]["name"], "channel_occupied");
    srv.shutdown();
    let started = Instant::now();
    srv.handle.take().unwrap().await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    let h = r
        .next_within(Duration::from_millis(100))
        .await
        .expect("sent before exit");
    assert_signed(&h);
    assert_eq!(
        h.events(),
        vec![json!({"name":"channel_vacated","channel":"going-away"})]
    );
    assert_eq!(stats.snapshot().delivered, 2);
}

/// `subscription_count` (the app counts subscriptions): the node whose socket changed a
/// channel's count sends the webhook with the new count (coalesced like the socket event), and
/// the webhook counters are on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_webhook_and_metrics() {
    let mut r = Receiver::ok().await;
    let mut app = app_with(vec![target(&r.url, &[WebhookEventType::SubscriptionCount])]);
    app.subscription_count = true;
    let (srv, stats) = serve(app, |cfg| {
        cfg.metrics.enabled = true;
        cfg.metrics.host = "127.0.0.1".into();
        cfg.metrics.port = 0;
    })
    .await;
    let mut a = srv.client().await;
    a.subscribe("counted").await;
    a.recv_event("pusher_internal:subscription_count").await;
    assert_eq!(
        collect(&mut r).await,
        vec![json!({"name":"subscription_count","channel":"counted","subscription_count":1})]
    );
    let mut b = srv.client().await;
    b.subscribe("counted").await;
    assert_eq!(
        collect(&mut r).await,
        vec![json!({"name":"subscription_count","channel":"counted","subscription_count":2})]
    );
    b.close().await;
    assert_eq!(
        collect(&mut r).await,
        vec![json!({"name":"subscription_count","channel":"counted","subscription_count":1})]
    );
    assert_eq!(stats.snapshot().delivered, 3);
    let maddr = srv.metrics.expect("metrics listener bound");
    let text = String::from_utf8(http(maddr, "GET", "/metrics", b"").await.body).unwrap();
    for line in [
        "herald_webhook_events_delivered_total 3",
        "herald_webhook_events_queued_total 3",
        "herald_webhook_events_failed_total 0",
        "herald_webhook_events_dropped_total 0",
        "herald_webhook_queue_depth 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    a.close().await;
}

/// `cache_miss` is de-duplicated per channel as Pusher does: several clients subscribing to an
/// empty cache channel give one webhook; once an event was stored (and has expired again), the
/// next miss is news and is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_miss_is_sent_once_until_the_cache_is_written() {
    let mut r = Receiver::ok().await;
    let mut app = app_with(vec![target(&r.url, &[WebhookEventType::CacheMiss])]);
    app.cache_ttl = 1;
    let (srv, _stats) = serve(app, |_| {}).await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    for c in [&mut a, &mut b] {
        c.send_subscribe(json!({"channel":"cache-news"})).await;
        c.recv_event("pusher_internal:subscription_succeeded").await;
        c.recv_event("pusher:cache_miss").await;
    }
    assert_eq!(
        collect(&mut r).await,
        vec![json!({"name":"cache_miss","channel":"cache-news"})],
        "one webhook for two misses"
    );
    srv.api().trigger(&["cache-news"], "update", "{}").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"cache-news"})).await;
    c.recv_event("pusher_internal:subscription_succeeded").await;
    c.recv_event("pusher:cache_miss").await;
    assert_eq!(
        collect(&mut r).await,
        vec![json!({"name":"cache_miss","channel":"cache-news"})],
        "the cache was written (and expired) since: the next miss is sent"
    );
}
