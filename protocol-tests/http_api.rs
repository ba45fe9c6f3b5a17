//! HTTP API tests: triggers, batches, channel queries, users, terminate_connections,
//! connections, /up, request signing and routing.

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
async fn unsigned_request_is_401() {
    let srv = start_default().await;
    let r = http(srv.addr, "GET", &format!("/apps/{APP_ID}/channels"), b"").await;
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string(), "{:?}", r.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_401() {
    let srv = start_default().await;
    let api = srv.api();
    let path = api.app_path("/channels");
    let mut params = api.signed_params("GET", &path, &[], b"");
    let sig = params.last_mut().unwrap();
    let flipped = if sig.1.starts_with('0') { "1" } else { "0" };
    sig.1.replace_range(0..1, flipped);
    let r = http(srv.addr, "GET", &api.target(&path, &params, false), b"").await;
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string());
    // Signed by a different secret.
    let wrong = Api::new(srv.addr, "", KEY, "not-the-secret");
    assert_eq!(wrong.get(&path, &[]).await.0, 401);
    // Query changed after signing.
    let params = api.signed_params("GET", &path, &[("filter_by_prefix", "a")], b"");
    let target = api
        .target(&path, &params, false)
        .replace("filter_by_prefix=a", "filter_by_prefix=b");
    assert_eq!(http(srv.addr, "GET", &target, b"").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_auth_key_is_401() {
    let srv = start_default().await;
    let api = Api::new(srv.addr, "", "some-other-key", SECRET);
    let (s, b) = api.get(&api.app_path("/channels"), &[]).await;
    assert_eq!(s, 401, "{b}");
}

/// Signs with explicit params (no automatic auth params).
fn manual_target(method: &str, path: &str, mut params: Vec<(String, String)>) -> String {
    let sig = rest_signature(SECRET, method, path, &params);
    params.push(("auth_signature".into(), sig));
    let q = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!("{path}?{q}")
}

fn p(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_timestamp_and_bad_version_are_401() {
    let srv = start_default().await;
    let path = format!("/apps/{APP_ID}/channels");
    let stale = (now_secs() - 700).to_string();
    let t = manual_target(
        "GET",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &stale),
            p("auth_version", "1.0"),
        ],
    );
    assert_eq!(http(srv.addr, "GET", &t, b"").await.status, 401);
    let future = (now_secs() + 700).to_string();
    let t = manual_target(
        "GET",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &future),
            p("auth_version", "1.0"),
        ],
    );
    assert_eq!(http(srv.addr, "GET", &t, b"").await.status, 401);
    let recent = (now_secs() - 500).to_string();
    let t = manual_target(
        "GET",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &recent),
            p("auth_version", "1.0"),
        ],
    );
    assert_eq!(
        http(srv.addr, "GET", &t, b"").await.status,
        200,
        "within 600 s"
    );
    let now = now_secs().to_string();
    let t = manual_target(
        "GET",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &now),
            p("auth_version", "2.0"),
        ],
    );
    assert_eq!(http(srv.addr, "GET", &t, b"").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_md5_rules() {
    let srv = start_default().await;
    let path = format!("/apps/{APP_ID}/events");
    let body = br#"{"name":"e","channels":["c"],"data":"x"}"#;
    let now = now_secs().to_string();
    // Missing body_md5 with a body.
    let t = manual_target(
        "POST",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &now),
            p("auth_version", "1.0"),
        ],
    );
    assert_eq!(http(srv.addr, "POST", &t, body).await.status, 401);
    // Wrong body_md5 (signature itself consistent).
    let t = manual_target(
        "POST",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &now),
            p("auth_version", "1.0"),
            p("body_md5", &md5_hex(b"other")),
        ],
    );
    assert_eq!(http(srv.addr, "POST", &t, body).await.status, 401);
    // Correct.
    let t = manual_target(
        "POST",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &now),
            p("auth_version", "1.0"),
            p("body_md5", &md5_hex(body)),
        ],
    );
    let r = http(srv.addr, "POST", &t, body).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_style_empty_body_md5_on_get_accepted() {
    let srv = start_default().await;
    let path = format!("/apps/{APP_ID}/channels");
    let now = now_secs().to_string();
    let t = manual_target(
        "GET",
        &path,
        vec![
            p("auth_key", KEY),
            p("auth_timestamp", &now),
            p("auth_version", "1.0"),
            p("body_md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ],
    );
    let r = http(srv.addr, "GET", &t, b"").await;
    assert_eq!((r.status, r.json()), (200, json!({"channels":{}})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_is_404() {
    let srv = start_default().await;
    let api = srv.api();
    let (s, b) = api
        .post(
            "/apps/no-such-app/events",
            &json!({"name":"e","channels":["c"],"data":"x"}),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    assert!(b["error"].is_string(), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_404_and_wrong_method_405() {
    let srv = start_default().await;
    let api = srv.api();
    let (s, _) = api.get(&api.app_path("/nothing-here"), &[]).await;
    assert_eq!(s, 404);
    let (s, _) = api.get(&api.app_path("/events"), &[]).await;
    assert_eq!(s, 405);
    assert_eq!(
        http(srv.addr, "GET", "/definitely/not/a/route", b"")
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_two_requests_one_connection() {
    let srv = start_default().await;
    let api = srv.api();
    let mut conn = HttpConn::open(srv.addr).await;
    let path = api.app_path("/channels");
    let t1 = api.target(&path, &api.signed_params("GET", &path, &[], b""), false);
    let r1 = conn.request("GET", &t1, b"").await;
    assert_eq!((r1.status, r1.json()), (200, json!({"channels":{}})));
    let epath = api.app_path("/events");
    let body = br#"{"name":"e","channels":["c"],"data":"x"}"#;
    let t2 = api.target(&epath, &api.signed_params("POST", &epath, &[], body), false);
    let r2 = conn.request("POST", &t2, body).await;
    assert_eq!((r2.status, r2.json()), (200, json!({})));
    let r3 = conn.request("GET", "/up", b"").await;
    assert_eq!(r3.status, 200);
}

#[test]
fn signer_reproduces_pusher_docs_vector_d4() {
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    assert_eq!(md5_hex(body), "ec365a775a4cd0599faeb73354201b6f");
    let params = vec![
        p("auth_key", "278d425bdf160c739803"),
        p("auth_timestamp", "1353088179"),
        p("auth_version", "1.0"),
        p("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
    ];
    assert_eq!(
        rest_signature("7ad3773142a6692b25b8", "POST", "/apps/3/events", &params),
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    );
}

fn docs_app_cfg() -> Config {
    Config::single_app("3", "278d425bdf160c739803", "7ad3773142a6692b25b8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_credentials_d4_style_post_verifies() {
    let srv = start(docs_app_cfg()).await;
    let mut api = Api::new(srv.addr, "", "278d425bdf160c739803", "7ad3773142a6692b25b8");
    api.app_id = "3".into();
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let r = api.request("POST", "/apps/3/events", &[], body).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_query_is_decoded_before_verifying() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("enc-ch").await;
    let api = srv.api();
    let path = api.app_path("/channels/enc-ch");
    // Signed over the decoded value, sent PHP/Guzzle-style percent-encoded.
    let params = api.signed_params(
        "GET",
        &path,
        &[("info", "user_count,subscription_count")],
        b"",
    );
    let target = api.target(&path, &params, true);
    assert!(
        target.contains("info=user_count%2Csubscription_count"),
        "{target}"
    );
    let r = http(srv.addr, "GET", &target, b"").await;
    // user_count on a non-presence channel is 400 — but only after the signature verified (not 401).
    assert_eq!(r.status, 400, "{:?}", r.json());
    let params = api.signed_params("GET", &path, &[("info", "subscription_count")], b"");
    let r = http(srv.addr, "GET", &api.target(&path, &params, true), b"").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"occupied":true,"subscription_count":1}))
    );
    // Signed over the still-encoded value (vector X1's mistake): must be refused.
    let now = now_secs().to_string();
    let mut raw = vec![
        p("auth_key", KEY),
        p("auth_timestamp", &now),
        p("auth_version", "1.0"),
        p("info", "user_count%2Csubscription_count"),
    ];
    let sig = rest_signature(SECRET, "GET", &path, &raw);
    raw.push(p("auth_signature", &sig));
    let q: Vec<String> = raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let r = http(srv.addr, "GET", &format!("{path}?{}", q.join("&")), b"").await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_channel_info_percent_encoded_comma() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe_presence("presence-enc", r#"{"user_id":"1"}"#)
        .await;
    let api = srv.api();
    let path = api.app_path("/channels");
    let params = api.signed_params(
        "GET",
        &path,
        &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        b"",
    );
    let r = http(srv.addr, "GET", &api.target(&path, &params, true), b"").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"channels":{"presence-enc":{"user_count":1}}}))
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
