//! HTTP API tests: triggers, batches, channel queries, users, terminate_connections,
//! connections, /up, routing and the path prefix. Request signing is in http_auth.rs.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_to_one_channel() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("test-channel").await;
    let (s, b) = srv
        .api()
        .events(
            &json!({"name":"App\\Events\\TestEvent","channels":["test-channel"],
                        "data":"{\"foo\":\"bar\"}"}),
        )
        .await;
    assert_eq!((s, b), (200, json!({})));
    assert_eq!(
        c.recv().await,
        json!({"event":"App\\Events\\TestEvent","channel":"test-channel","data":"{\"foo\":\"bar\"}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_to_many_channels() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut both = srv.client().await;
    a.subscribe("ch-a").await;
    both.subscribe("ch-a").await;
    both.subscribe("ch-b").await;
    srv.api().trigger(&["ch-a", "ch-b"], "multi", "d").await;
    assert_eq!(
        a.recv().await,
        json!({"event":"multi","channel":"ch-a","data":"d"})
    );
    a.expect_nothing(200).await;
    let mut got = vec![both.recv().await, both.recv().await];
    got.sort_by_key(|v| v["channel"].as_str().unwrap().to_string());
    assert_eq!(
        got,
        vec![
            json!({"event":"multi","channel":"ch-a","data":"d"}),
            json!({"event":"multi","channel":"ch-b","data":"d"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_singular_channel() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("php-style").await;
    let (s, b) = srv
        .api()
        .events(&json!({"name":"e","channel":"php-style","data":"x"}))
        .await;
    assert_eq!((s, b), (200, json!({})));
    assert_eq!(
        c.recv().await,
        json!({"event":"e","channel":"php-style","data":"x"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_id_excludes_sender() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe("excl").await;
    b.subscribe("excl").await;
    let api = srv.api();
    let (s, _) = api
        .events(&json!({"name":"e","channels":["excl"],"data":"1","socket_id":a.socket_id}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b.recv().await["data"], "1");
    a.expect_nothing(300).await;
    // An unknown socket_id is ignored.
    let (s, _) = api
        .events(&json!({"name":"e","channels":["excl"],"data":"2","socket_id":"1.1"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(a.recv().await["data"], "2");
    assert_eq!(b.recv().await["data"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_info_counts() {
    let srv = start_default().await;
    let mut p = srv.client().await;
    let mut q = srv.client().await;
    p.subscribe_presence("presence-info", r#"{"user_id":"1"}"#)
        .await;
    q.subscribe("plain-info").await;
    let api = srv.api();
    let (s, b) = api
        .events(
            &json!({"name":"e","channels":["presence-info","plain-info"],"data":"x",
                        "info":"user_count,subscription_count"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"channels":{"presence-info":{"user_count":1},"plain-info":{"subscription_count":1}}})
    );
    let (s, b) = api
        .events(
            &json!({"name":"e","channels":["presence-info","plain-info","nobody"],"data":"x",
                        "info":"user_count"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"channels":{"presence-info":{"user_count":1},"plain-info":{},"nobody":{}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_events_delivered() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("b1").await;
    c.subscribe("b2").await;
    let (s, b) = srv
        .api()
        .batch(json!([
            {"name":"first","channel":"b1","data":"1"},
            {"name":"second","channel":"b2","data":"2"}
        ]))
        .await;
    assert_eq!((s, b), (200, json!({})));
    let mut got = vec![c.recv().await, c.recv().await];
    got.sort_by_key(|v| v["event"].as_str().unwrap().to_string());
    assert_eq!(
        got,
        vec![
            json!({"event":"first","channel":"b1","data":"1"}),
            json!({"event":"second","channel":"b2","data":"2"})
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_info_and_socket_exclusion() {
    let srv = start_default().await;
    let mut p = srv.client().await;
    let mut c = srv.client().await;
    p.subscribe_presence("presence-bi", r#"{"user_id":"1"}"#)
        .await;
    c.subscribe("pub-bi").await;
    let (s, b) = srv
        .api()
        .batch(json!([
            {"name":"a","channel":"presence-bi","data":"1","info":"user_count"},
            {"name":"b","channel":"pub-bi","data":"2"},
            {"name":"c","channel":"pub-bi","data":"3","info":"subscription_count","socket_id":c.socket_id}
        ]))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"batch":[{"user_count":1},{},{"subscription_count":1}]})
    );
    assert_eq!(p.recv().await["event"], "a");
    assert_eq!(c.recv().await["event"], "b");
    c.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_list_occupied_only() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe("list-one").await;
    b.subscribe("list-one").await;
    b.subscribe("list-two").await;
    b.subscribe_presence("presence-list", r#"{"user_id":"1"}"#)
        .await;
    a.subscribe_presence("presence-list", r#"{"user_id":"2"}"#)
        .await;
    b.recv_event("pusher_internal:member_added").await;
    let api = srv.api();
    let path = api.app_path("/channels");
    let (s, body) = api.get(&path, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"channels":{"list-one":{},"list-two":{},"presence-list":{}}})
    );
    let (s, body) = api
        .get(
            &path,
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body, json!({"channels":{"presence-list":{"user_count":2}}}));
    let (s, body) = api.get(&path, &[("filter_by_prefix", "list-")]).await;
    assert_eq!(s, 200);
    assert_eq!(body, json!({"channels":{"list-one":{},"list-two":{}}}));
    // The channel disappears once empty.
    b.unsubscribe("list-two").await;
    b.sync().await;
    let ok = eventually(Duration::from_secs(2), || {
        let (api, path) = (api.clone(), path.clone());
        async move {
            let (_, body) = api.get(&path, &[("filter_by_prefix", "list-")]).await;
            body == json!({"channels":{"list-one":{}}})
        }
    })
    .await;
    assert!(ok, "list-two must vanish after its only subscriber left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_list_user_count_needs_presence_prefix() {
    let srv = start_default().await;
    let api = srv.api();
    let path = api.app_path("/channels");
    let (s, body) = api.get(&path, &[("info", "user_count")]).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (s, _) = api
        .get(
            &path,
            &[("filter_by_prefix", "private-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_occupied_and_counts() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe("info-ch").await;
    b.subscribe("info-ch").await;
    let api = srv.api();
    let (s, body) = api
        .get(
            &api.app_path("/channels/info-ch"),
            &[("info", "subscription_count")],
        )
        .await;
    assert_eq!(
        (s, body),
        (200, json!({"occupied":true,"subscription_count":2}))
    );
    let (s, body) = api.get(&api.app_path("/channels/info-ch"), &[]).await;
    assert_eq!((s, body), (200, json!({"occupied":true})));
    let (s, body) = api.get(&api.app_path("/channels/empty-ch"), &[]).await;
    assert_eq!((s, body), (200, json!({"occupied":false})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_user_count() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut a2 = srv.client().await;
    a.subscribe_presence("presence-uc", r#"{"user_id":"1"}"#)
        .await;
    a2.subscribe_presence("presence-uc", r#"{"user_id":"1"}"#)
        .await;
    let api = srv.api();
    let (s, body) = api
        .get(
            &api.app_path("/channels/presence-uc"),
            &[("info", "user_count")],
        )
        .await;
    assert_eq!((s, body), (200, json!({"occupied":true,"user_count":1})));
    let mut p = srv.client().await;
    p.subscribe("public-uc").await;
    let (s, body) = api
        .get(
            &api.app_path("/channels/public-uc"),
            &[("info", "user_count")],
        )
        .await;
    assert_eq!(s, 400, "user_count on a non-presence channel: {body}");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_cache() {
    let srv = start_default().await;
    let api = srv.api();
    let (s, body) = api
        .get(&api.app_path("/channels/cache-info"), &[("info", "cache")])
        .await;
    assert_eq!((s, body), (200, json!({"occupied":false,"cache":null})));
    api.trigger(&["cache-info"], "ev", "{\"p\":1}").await;
    let (s, body) = api
        .get(&api.app_path("/channels/cache-info"), &[("info", "cache")])
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["occupied"], false);
    assert_eq!(body["cache"]["data"], "{\"p\":1}", "{body}");
    let ttl = body["cache"]["ttl"]
        .as_u64()
        .unwrap_or_else(|| panic!("ttl: {body}"));
    assert!((1..=1800).contains(&ttl), "ttl {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_endpoint_rules() {
    let srv = start_default().await;
    let api = srv.api();
    let (s, body) = api
        .get(&api.app_path("/channels/presence-nobody/users"), &[])
        .await;
    assert_eq!((s, body), (200, json!({"users":[]})));
    let mut c = srv.client().await;
    c.subscribe("not-presence").await;
    let (s, body) = api
        .get(&api.app_path("/channels/not-presence/users"), &[])
        .await;
    assert_eq!(s, 400, "{body}");
    c.subscribe_presence("presence-one", r#"{"user_id":"abc"}"#)
        .await;
    let (s, body) = api
        .get(&api.app_path("/channels/presence-one/users"), &[])
        .await;
    assert_eq!((s, body), (200, json!({"users":[{"id":"abc"}]})));
}

async fn expect_terminated(c: &mut Client) {
    let err = c.recv().await;
    assert_eq!(
        err,
        json!({"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}})
    );
    assert_eq!(c.expect_close().await.0, 4009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_closes_user_sockets() {
    let srv = start_default().await;
    let mut s1 = srv.client().await;
    let mut s2 = srv.client().await;
    let mut member = srv.client().await;
    let mut bystander = srv.client().await;
    s1.signin(r#"{"id":"9"}"#).await;
    s2.signin(r#"{"id":"9"}"#).await;
    bystander
        .subscribe_presence("presence-term", r#"{"user_id":"10"}"#)
        .await;
    member
        .subscribe_presence("presence-term", r#"{"user_id":9}"#)
        .await;
    bystander.recv_event("pusher_internal:member_added").await;
    let api = srv.api();
    let (s, b) = api
        .post(&api.app_path("/users/9/terminate_connections"), &json!({}))
        .await;
    assert_eq!((s, b), (200, json!({})));
    expect_terminated(&mut s1).await;
    expect_terminated(&mut s2).await;
    expect_terminated(&mut member).await;
    let removed = bystander.recv().await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    bystander.sync().await;
    let ok = eventually(Duration::from_secs(2), || {
        let api = api.clone();
        async move { api.connections().await == 1 }
    })
    .await;
    assert!(ok, "terminated sockets are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_python_sdk_path() {
    let srv = start_default().await;
    let mut s1 = srv.client().await;
    let mut other = srv.client().await;
    s1.signin(r#"{"id":"py"}"#).await;
    other.signin(r#"{"id":"not-py"}"#).await;
    let (s, b) = srv
        .api()
        .post("/users/py/terminate_connections", &json!({}))
        .await;
    assert_eq!((s, b), (200, json!({})));
    expect_terminated(&mut s1).await;
    other.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_count() {
    let srv = start_default().await;
    let api = srv.api();
    assert_eq!(api.connections().await, 0);
    let mut a = srv.client().await;
    let _b = srv.client().await;
    a.subscribe("x1").await;
    a.subscribe("x2").await;
    assert_eq!(api.connections().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_needs_no_auth() {
    let srv = start_default().await;
    let r = http(srv.addr, "GET", "/up", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"health":"OK"}));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.contains("application/json")),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_applies_to_http_api() {
    let mut cfg = config();
    cfg.server.path = "/ws".into();
    let srv = start(cfg).await;
    // srv.api() sends to /ws/apps/... but signs /apps/...
    let api = srv.api();
    let mut c = srv.client().await;
    c.subscribe("pfx").await;
    api.trigger(&["pfx"], "e", "x").await;
    assert_eq!(c.recv().await["data"], "x");
    // Without the prefix: 404.
    let unprefixed = Api::new(srv.addr, "", KEY, SECRET);
    let (s, _) = unprefixed.get(&unprefixed.app_path("/channels"), &[]).await;
    assert_eq!(s, 404);
    let r = http(srv.addr, "GET", "/ws/up", b"").await;
    assert_eq!((r.status, r.json()), (200, json!({"health":"OK"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_validation_400s() {
    let srv = start_default().await;
    let api = srv.api();
    let bad: Vec<Value> = vec![
        json!({"channels":["c"],"data":"x"}),
        json!({"name":"e","channels":["c"]}),
        json!({"name":"e","channels":["c"],"data":{"not":"a string"}}),
        json!({"name":"e","channels":[],"data":"x"}),
        json!({"name":"e","data":"x"}),
        json!({"name":"e","channels":["bad channel"],"data":"x"}),
        json!({"name":"pusher:fake","channels":["c"],"data":"x"}),
        json!({"name":"pusher_internal:fake","channels":["c"],"data":"x"}),
        json!({"name":"x".repeat(201),"channels":["c"],"data":"x"}),
        json!({"name":"e","channels":["private-encrypted-a","b"],"data":"x"}),
        json!({"name":"e","channels":["c"],"data":"x","socket_id":"abc"}),
        json!({"name":"e","channels":["c"],"data":"x","socket_id":"1.2.3"}),
    ];
    for body in bad {
        let (s, b) = api.events(&body).await;
        assert_eq!(s, 400, "body {body} → {b}");
        assert!(b["error"].is_string(), "error body for {body}: {b}");
    }
    // Laravel-style names with backslashes are fine; 200-char names too.
    api.trigger(
        &["c"],
        "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated",
        "x",
    )
    .await;
    api.trigger(&["c"], &"n".repeat(200), "x").await;
    api.trigger(&["private-encrypted-only"], "e", "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_unknown_user_is_ok_and_closes_nothing() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.signin(r#"{"id":"present"}"#).await;
    let api = srv.api();
    let (s, b) = api
        .post(
            &api.app_path("/users/absent/terminate_connections"),
            &json!({}),
        )
        .await;
    assert_eq!((s, b), (200, json!({})));
    c.expect_nothing(300).await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_item_validation() {
    let srv = start_default().await;
    let api = srv.api();
    let mut c = srv.client().await;
    c.subscribe("batch-valid").await;
    for bad in [
        json!([{"name":"ok","channel":"batch-valid","data":"1"},{"channel":"batch-valid","data":"2"}]),
        json!([{"name":"e","channel":"batch-valid","data":{"obj":1}}]),
        json!([{"name":"e","channel":"bad channel","data":"x"}]),
        json!([{"name":"pusher:e","channel":"batch-valid","data":"x"}]),
        json!([{"name":"e","channel":"batch-valid","data":"x","socket_id":"nope"}]),
    ] {
        let (s, b) = api.batch(bad.clone()).await;
        assert_eq!(s, 400, "batch {bad} → {b}");
    }
    // A rejected batch delivers nothing, not even its valid items.
    c.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_dedupes_channels() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("dup").await;
    srv.api().trigger(&["dup", "dup"], "once", "x").await;
    assert_eq!(c.recv().await["event"], "once");
    c.expect_nothing(300).await;
}
