//! HTTP API request verification: unsigned and badly signed requests (401), auth_key,
//! timestamp window, auth_version, body_md5 rules (including Python's empty-body md5 on GET),
//! unknown apps (404), routing (404/405), keep-alive, the Pusher docs vector D4 and
//! percent-encoded (PHP/Guzzle-style) queries.

mod common;

use common::*;
use serde_json::json;

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

/// `auth_key`, `auth_timestamp` (= `now`) and `auth_version=1.0`, then `extra`.
fn standard_params(now: &str, extra: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut params = vec![
        p("auth_key", KEY),
        p("auth_timestamp", now),
        p("auth_version", "1.0"),
    ];
    params.extend(extra);
    params
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
    let t = manual_target("POST", &path, standard_params(&now, vec![]));
    assert_eq!(http(srv.addr, "POST", &t, body).await.status, 401);
    // Wrong body_md5 (signature itself consistent).
    let t = manual_target(
        "POST",
        &path,
        standard_params(&now, vec![p("body_md5", &md5_hex(b"other"))]),
    );
    assert_eq!(http(srv.addr, "POST", &t, body).await.status, 401);
    // Correct.
    let t = manual_target(
        "POST",
        &path,
        standard_params(&now, vec![p("body_md5", &md5_hex(body))]),
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
        standard_params(
            &now,
            vec![p("body_md5", "d41d8cd98f00b204e9800998ecf8427e")],
        ),
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
