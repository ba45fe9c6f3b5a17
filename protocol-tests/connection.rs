//! Connection-level protocol tests: handshake, app lookup, origin checks, quotas, protocol
//! version, path prefix and ping/pong keep-alive.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_established_has_exact_shape() {
    let mut cfg = config();
    cfg.apps[0].activity_timeout = 42;
    let srv = start(cfg).await;
    let mut ws = Client::raw(
        ws_open(srv.addr, &format!("/app/{KEY}?{PJS_QUERY}"), None)
            .await
            .unwrap(),
    );
    let frame = ws.recv().await;
    let obj = frame.as_object().expect("frame is an object");
    assert_eq!(obj.len(), 2, "only event and data: {frame}");
    assert_eq!(frame["event"], "pusher:connection_established");
    let data = data_json(&frame);
    let data_obj = data.as_object().unwrap();
    assert_eq!(
        data_obj.len(),
        2,
        "only socket_id and activity_timeout: {data}"
    );
    assert_eq!(data["activity_timeout"], json!(42), "{data}");
    let sid = data["socket_id"].as_str().unwrap();
    assert!(
        is_socket_id(sid),
        "socket_id {sid:?} must match ^\\d+\\.\\d+$"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_activity_timeout_is_30() {
    let srv = start_default().await;
    let c = srv.client().await;
    assert_eq!(c.established["activity_timeout"], json!(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_ids_are_unique() {
    let srv = start_default().await;
    let mut ids = HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..25 {
        let c = srv.client().await;
        assert!(is_socket_id(&c.socket_id), "{}", c.socket_id);
        assert!(ids.insert(c.socket_id.clone()), "duplicate {}", c.socket_id);
        clients.push(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_gets_4001_error_then_close() {
    let srv = start_default().await;
    let ws = ws_open(srv.addr, &format!("/app/nope?{PJS_QUERY}"), None)
        .await
        .expect("upgrade happens, then the error");
    let mut c = Client::raw(ws);
    let err = c.recv().await;
    assert_eq!(
        err,
        json!({"event":"pusher:error","data":{"code":4001,"message":"Application does not exist"}})
    );
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 4001);
}

fn origin_cfg(origins: &[&str]) -> Config {
    let mut cfg = config();
    cfg.apps[0].allowed_origins = origins.iter().map(|s| s.to_string()).collect();
    cfg
}

async fn expect_origin_rejected(srv: &TestServer, origin: Option<&str>) {
    let ws = ws_open(srv.addr, &format!("/app/{KEY}?{PJS_QUERY}"), origin)
        .await
        .expect("upgrade");
    let mut c = Client::raw(ws);
    let err = c.recv().await;
    assert_eq!(
        err,
        json!({"event":"pusher:error","data":{"code":4009,"message":"Origin not allowed"}}),
        "origin {origin:?}"
    );
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 4009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origin_connects() {
    let srv = start(origin_cfg(&["example.com"])).await;
    let c = Client::connect_path(
        srv.addr,
        &format!("/app/{KEY}?{PJS_QUERY}"),
        Some("https://example.com"),
    )
    .await;
    assert!(is_socket_id(&c.socket_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_origin_gets_4009() {
    let srv = start(origin_cfg(&["example.com"])).await;
    expect_origin_rejected(&srv, Some("https://evil.com")).await;
    expect_origin_rejected(&srv, Some("http://sub.example.com")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_origin_rejected_unless_wildcard() {
    let srv = start(origin_cfg(&["example.com"])).await;
    expect_origin_rejected(&srv, None).await;
    let open = start(origin_cfg(&["*"])).await;
    let c = Client::connect_path(open.addr, &format!("/app/{KEY}?{PJS_QUERY}"), None).await;
    assert!(is_socket_id(&c.socket_id));
    let c2 = Client::connect_path(
        open.addr,
        &format!("/app/{KEY}?{PJS_QUERY}"),
        Some("http://anything.test:3000"),
    )
    .await;
    assert!(is_socket_id(&c2.socket_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subdomain_origin() {
    let srv = start(origin_cfg(&["*.example.com"])).await;
    let c = Client::connect_path(
        srv.addr,
        &format!("/app/{KEY}?{PJS_QUERY}"),
        Some("https://sub.example.com"),
    )
    .await;
    assert!(is_socket_id(&c.socket_id));
    let c = Client::connect_path(
        srv.addr,
        &format!("/app/{KEY}?{PJS_QUERY}"),
        Some("http://a.b.example.com:8080"),
    )
    .await;
    assert!(is_socket_id(&c.socket_id));
    expect_origin_rejected(&srv, Some("http://example.com")).await;
    expect_origin_rejected(&srv, Some("http://example.com.evil.org")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_connection_quota_4004() {
    let mut cfg = config();
    cfg.apps[0].max_connections = Some(1);
    let srv = start(cfg).await;
    let first = srv.client().await;
    let ws = ws_open(srv.addr, &format!("/app/{KEY}?{PJS_QUERY}"), None)
        .await
        .expect("upgrade");
    let mut second = Client::raw(ws);
    second
        .expect_error_and_close(4004, Some("Application is over connection quota"))
        .await;
    // Once the first leaves, there is room again.
    first.close().await;
    let addr = srv.addr;
    let ok = eventually(Duration::from_secs(3), || async move {
        let ws = ws_open(addr, &format!("/app/{KEY}?{PJS_QUERY}"), None)
            .await
            .expect("upgrade");
        let mut c = Client::raw(ws);
        c.recv().await["event"] == "pusher:connection_established"
    })
    .await;
    assert!(ok, "a slot frees up after the first connection closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_wide_connection_cap_closes_4100() {
    let mut cfg = config();
    cfg.server.max_connections = 1;
    let srv = start(cfg).await;
    let mut first = srv.client().await;
    let ws = ws_open(srv.addr, &format!("/app/{KEY}?{PJS_QUERY}"), None)
        .await
        .expect("upgrade");
    let mut second = Client::raw(ws);
    let (code, _, _) = second.drain_until_close(FRAME_TIMEOUT).await;
    assert_eq!(code, 4100);
    first.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_param_not_integer_4006() {
    let srv = start_default().await;
    for p in ["seven", "7.0", "7a"] {
        let ws = ws_open(srv.addr, &format!("/app/{KEY}?protocol={p}"), None)
            .await
            .expect("upgrade");
        Client::raw(ws).expect_error_and_close(4006, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_param_out_of_range_4007() {
    let srv = start_default().await;
    for p in ["3", "8", "0", "100"] {
        let ws = ws_open(srv.addr, &format!("/app/{KEY}?protocol={p}"), None)
            .await
            .expect("upgrade");
        Client::raw(ws).expect_error_and_close(4007, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_param_negative_or_huge_integer_4007() {
    // These are integers outside 4..=7: unsupported version (4007), not malformed (4006).
    let srv = start_default().await;
    for p in ["-1", "99999999999999999999"] {
        let ws = ws_open(srv.addr, &format!("/app/{KEY}?protocol={p}"), None)
            .await
            .expect("upgrade");
        Client::raw(ws).expect_error_and_close(4007, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_param_missing_or_supported_is_ok() {
    let srv = start_default().await;
    for q in ["", "?protocol=4", "?protocol=7", "?client=js&version=8.6.0"] {
        let c = Client::connect_path(srv.addr, &format!("/app/{KEY}{q}"), None).await;
        assert!(is_socket_id(&c.socket_id), "query {q:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_routes_websocket() {
    let mut cfg = config();
    cfg.server.path = "/ws".into();
    let srv = start(cfg).await;
    let mut c = Client::connect_path(srv.addr, &format!("/ws/app/{KEY}?{PJS_QUERY}"), None).await;
    c.sync().await;
    let r = ws_open(srv.addr, &format!("/app/{KEY}?{PJS_QUERY}"), None).await;
    assert!(
        r.is_err(),
        "/app/{{key}} without the prefix must not upgrade"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_ping_gets_exact_pong() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_json(&json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.recv().await, json!({"event":"pusher:pong","data":"{}"}));
    // Without data at all.
    c.send_json(&json!({"event":"pusher:ping"})).await;
    assert_eq!(c.recv().await, json!({"event":"pusher:pong","data":"{}"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_ping_frame_gets_pong_frame() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_ping_frame(b"hello").await;
    match c.next_message(FRAME_TIMEOUT).await {
        Some(Message::Pong(p)) => assert_eq!(&p[..], b"hello"),
        other => panic!("expected a pong frame, got {other:?}"),
    }
    c.sync().await;
}

fn fast_ping_cfg() -> Config {
    let mut cfg = config();
    cfg.apps[0].ping_interval = 1;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pings_idle_connection_then_closes_4201() {
    let srv = start(fast_ping_cfg()).await;
    let mut c = srv.client().await;
    let ping = c
        .recv_within(Duration::from_secs(4))
        .await
        .expect("server pusher:ping after ping_interval");
    assert_eq!(ping, json!({"event":"pusher:ping","data":"{}"}));
    let err = c
        .recv_within(Duration::from_secs(4))
        .await
        .expect("pusher:error 4201 when unanswered");
    assert_eq!(
        err,
        json!({"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received in time"}})
    );
    let (code, _) = c.expect_close().await;
    assert_eq!(code, 4201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_idle_connection_is_pinged_too() {
    let srv = start(fast_ping_cfg()).await;
    let mut c = srv.client().await;
    c.subscribe("idle-channel").await;
    let ping = c.recv_within(Duration::from_secs(4)).await.expect("ping");
    assert_eq!(ping, json!({"event":"pusher:ping","data":"{}"}));
    let err = c.recv_within(Duration::from_secs(4)).await.expect("4201");
    assert_error(&err, 4201, Some("Pong reply not received in time"));
    assert_eq!(c.expect_close().await.0, 4201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_pings_keep_connection_open() {
    let srv = start(fast_ping_cfg()).await;
    let mut c = srv.client().await;
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(4500) {
        match c.recv_within(Duration::from_secs(3)).await {
            Some(v) if v == json!({"event":"pusher:ping","data":"{}"}) => {
                pings += 1;
                c.send_json(&json!({"event":"pusher:pong","data":{}})).await;
            }
            Some(v) => panic!("unexpected frame {v}"),
            None => panic!("no server ping within 3 s"),
        }
    }
    assert!(pings >= 2, "expected repeated pings, got {pings}");
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_activity_prevents_server_ping() {
    let srv = start(fast_ping_cfg()).await;
    let mut c = srv.client().await;
    // Keep talking every 300 ms for 3 s: no server ping should be needed, no close.
    for _ in 0..10 {
        c.sync().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_ping_client_gets_ws_ping_keepalive() {
    let srv = start(fast_ping_cfg()).await;
    let mut c = srv.client().await;
    c.send_ping_frame(b"p").await;
    match c.next_message(FRAME_TIMEOUT).await {
        Some(Message::Pong(_)) => {}
        other => panic!("expected pong, got {other:?}"),
    }
    // Now silent: the server keep-alive must be a WS ping frame, which tungstenite answers
    // automatically while we keep reading; so no close follows.
    let started = tokio::time::Instant::now();
    let mut saw_ping = false;
    while started.elapsed() < Duration::from_millis(4500) {
        match c.next_message(Duration::from_millis(500)).await {
            None => {}
            Some(Message::Ping(_)) => saw_ping = true,
            Some(other) => panic!("expected only WS ping frames, got {other:?}"),
        }
    }
    assert!(saw_ping, "no WS ping frame from the server");
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_is_answered_and_counted() {
    let srv = start_default().await;
    let a = srv.client().await;
    let _b = srv.client().await;
    let api = srv.api();
    assert_eq!(api.connections().await, 2);
    a.close().await;
    let ok = eventually(Duration::from_secs(2), || {
        let api = api.clone();
        async move { api.connections().await == 1 }
    })
    .await;
    assert!(ok, "connection count drops after a client closes");
}
