//! Channel subscription tests: public, private, encrypted and cache channels, auth failures,
//! invalid names, unsubscribe and re-subscribe.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_subscribe_exact_frame() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"my-channel","auth":""}))
        .await;
    let v = c.recv().await;
    assert_eq!(
        v,
        json!({"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"})
    );
    assert_eq!(v.as_object().unwrap().len(), 3, "no extra fields: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_data_as_json_string_and_without_auth() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_json(&json!({"event":"pusher:subscribe","data":"{\"channel\":\"str-data\"}"}))
        .await;
    c.expect_succeeded("str-data").await;
    c.send_subscribe(json!({"channel":"no-auth-field"})).await;
    c.expect_succeeded("no-auth-field").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_channel_receives_http_event() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("news").await;
    srv.api()
        .trigger(&["news"], "App\\Events\\Published", "{\"id\":1}")
        .await;
    assert_eq!(
        c.recv().await,
        json!({"event":"App\\Events\\Published","channel":"news","data":"{\"id\":1}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_with_valid_auth_succeeds() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe_private("private-orders").await;
    srv.api().trigger(&["private-orders"], "e", "x").await;
    assert_eq!(
        c.recv().await,
        json!({"event":"e","channel":"private-orders","data":"x"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_with_invalid_auth_fails_and_connection_stays() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"private-x","auth":format!("{KEY}:{}", "0".repeat(64))}))
        .await;
    expect_auth_failure(&mut c, "private-x").await;
    c.send_subscribe(json!({"channel":"private-x","auth":"invalid-signature"}))
        .await;
    expect_auth_failure(&mut c, "private-x").await;
    c.sync().await;
    // Not subscribed: events to the channel do not arrive.
    srv.api().trigger(&["private-x"], "e", "x").await;
    c.expect_nothing(300).await;
    // A proper auth afterwards works.
    c.subscribe_private("private-x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_with_missing_or_null_auth_fails() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"private-a"})).await;
    expect_auth_failure(&mut c, "private-a").await;
    c.send_subscribe(json!({"channel":"private-b","auth":null}))
        .await;
    expect_auth_failure(&mut c, "private-b").await;
    c.send_subscribe(json!({"channel":"private-c","auth":""}))
        .await;
    expect_auth_failure(&mut c, "private-c").await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_wrong_key_part_fails() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let good = channel_auth(&c.socket_id, "private-k", None);
    let sig = good.split_once(':').unwrap().1;
    c.send_subscribe(json!({"channel":"private-k","auth":format!("other-key:{sig}")}))
        .await;
    expect_auth_failure(&mut c, "private-k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_for_another_socket_or_channel_fails() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let b = srv.client().await;
    let for_b = channel_auth(&b.socket_id, "private-s", None);
    a.send_subscribe(json!({"channel":"private-s","auth":for_b}))
        .await;
    expect_auth_failure(&mut a, "private-s").await;
    let other_channel = channel_auth(&a.socket_id, "private-t", None);
    a.send_subscribe(json!({"channel":"private-s","auth":other_channel}))
        .await;
    expect_auth_failure(&mut a, "private-s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_channel_names_are_refused() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let too_long = "a".repeat(201);
    for name in [
        "bad channel",
        "bad/slash",
        "ümlaut",
        too_long.as_str(),
        "#reserved",
    ] {
        c.send_subscribe(json!({"channel":name,"auth":""})).await;
        expect_sub_failure(&mut c, name, "InvalidChannel", 400, 4200).await;
    }
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_name_charset_and_max_length_accepted() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("-azAZ09_=@,.;").await;
    let max = "b".repeat(200);
    c.subscribe(&max).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_channel_name_length_applies() {
    let mut cfg = config();
    cfg.apps[0].max_channel_name_length = 10;
    let srv = start(cfg).await;
    let mut c = srv.client().await;
    c.subscribe("abcdefghij").await;
    c.send_subscribe(json!({"channel":"abcdefghijk","auth":""}))
        .await;
    expect_sub_failure(&mut c, "abcdefghijk", "InvalidChannel", 400, 4200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_sends_nothing_and_stops_events() {
    let srv = start_default().await;
    let api = srv.api();
    let mut c = srv.client().await;
    c.subscribe("temp").await;
    api.trigger(&["temp"], "one", "1").await;
    assert_eq!(c.recv().await["event"], "one");
    c.unsubscribe("temp").await;
    c.expect_nothing(200).await;
    c.sync().await;
    api.trigger(&["temp"], "two", "2").await;
    c.expect_nothing(300).await;
    // Unsubscribing from a channel never joined is silently ignored.
    c.unsubscribe("never-joined").await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channel_miss() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("cache-empty").await;
    assert_eq!(
        c.recv().await,
        json!({"event":"pusher:cache_miss","channel":"cache-empty"})
    );
    c.expect_nothing(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channel_replays_last_event_stored_without_subscribers() {
    let srv = start_default().await;
    let api = srv.api();
    api.trigger(&["cache-prices"], "price", "{\"v\":1}").await;
    api.trigger(&["cache-prices"], "price", "{\"v\":2}").await;
    let mut c = srv.client().await;
    c.subscribe("cache-prices").await;
    assert_eq!(
        c.recv().await,
        json!({"event":"price","channel":"cache-prices","data":"{\"v\":2}"})
    );
    c.expect_nothing(200).await;
    // Live events keep flowing afterwards.
    api.trigger(&["cache-prices"], "price", "{\"v\":3}").await;
    assert_eq!(
        c.recv().await,
        json!({"event":"price","channel":"cache-prices","data":"{\"v\":3}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_replay_for_subscriber_joining_later() {
    let srv = start_default().await;
    let api = srv.api();
    let mut first = srv.client().await;
    first.subscribe("cache-live").await;
    assert_eq!(first.recv().await["event"], "pusher:cache_miss");
    api.trigger(&["cache-live"], "tick", "7").await;
    assert_eq!(first.recv().await["data"], "7");
    let mut second = srv.client().await;
    second.subscribe("cache-live").await;
    assert_eq!(
        second.recv().await,
        json!({"event":"tick","channel":"cache-live","data":"7"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_cache_channel_needs_auth_and_misses() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"private-cache-x","auth":""}))
        .await;
    expect_auth_failure(&mut c, "private-cache-x").await;
    c.subscribe_private("private-cache-x").await;
    assert_eq!(
        c.recv().await,
        json!({"event":"pusher:cache_miss","channel":"private-cache-x"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_encrypted_subscribe_and_verbatim_data() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"private-encrypted-doc","auth":"nope"}))
        .await;
    expect_auth_failure(&mut c, "private-encrypted-doc").await;
    c.subscribe_private("private-encrypted-doc").await;
    let payload = r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"Zm9vYmFy"}"#;
    srv.api()
        .trigger(&["private-encrypted-doc"], "secret", payload)
        .await;
    assert_eq!(
        c.recv().await,
        json!({"event":"secret","channel":"private-encrypted-doc","data":payload})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_resends_succeeded_without_duplicates() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("again").await;
    c.subscribe("again").await;
    c.subscribe_private("private-again").await;
    c.subscribe_private("private-again").await;
    srv.api()
        .trigger(&["again", "private-again"], "e", "d")
        .await;
    let mut got: Vec<String> = vec![
        c.recv().await["channel"].as_str().unwrap().to_string(),
        c.recv().await["channel"].as_str().unwrap().to_string(),
    ];
    got.sort();
    assert_eq!(got, vec!["again", "private-again"]);
    c.expect_nothing(300).await;
    let (s, b) = srv
        .api()
        .get(
            &srv.api().app_path("/channels/again"),
            &[("info", "subscription_count")],
        )
        .await;
    assert_eq!(
        (s, b),
        (200, json!({"occupied":true,"subscription_count":1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_on_one_connection() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.subscribe("multi-1").await;
    c.subscribe("multi-2").await;
    c.subscribe_private("private-multi").await;
    let p = c
        .subscribe_presence("presence-multi", r#"{"user_id":"1"}"#)
        .await;
    assert_eq!(p["count"], 1);
    let api = srv.api();
    assert_eq!(api.connections().await, 1);
    api.trigger(
        &["multi-1", "multi-2", "private-multi", "presence-multi"],
        "fan",
        "out",
    )
    .await;
    let mut channels = Vec::new();
    for _ in 0..4 {
        let v = c.recv().await;
        assert_eq!(v["event"], "fan");
        assert_eq!(v["data"], "out");
        channels.push(v["channel"].as_str().unwrap().to_string());
    }
    channels.sort();
    assert_eq!(
        channels,
        vec!["multi-1", "multi-2", "presence-multi", "private-multi"]
    );
    c.expect_nothing(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_only_reach_their_channel() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe("room-a").await;
    b.subscribe("room-b").await;
    srv.api().trigger(&["room-a"], "hello", "a").await;
    assert_eq!(a.recv().await["channel"], "room-a");
    b.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let mut cfg = config();
    cfg.apps.push(herald::config::AppConfig::new(
        "app-two",
        "key-two",
        "secret-two",
    ));
    let srv = start(cfg).await;
    let mut one = srv.client().await;
    one.subscribe("shared-name").await;
    let ws = ws_open(srv.addr, &format!("/app/key-two?{PJS_QUERY}"), None)
        .await
        .unwrap();
    let mut two = Client::established(ws).await;
    two.subscribe("shared-name").await;
    // Private auth is signed with the second app's secret.
    let auth = format!(
        "key-two:{}",
        hmac_hex("secret-two", &format!("{}:private-two", two.socket_id))
    );
    two.send_subscribe(json!({"channel":"private-two","auth":auth}))
        .await;
    two.expect_succeeded("private-two").await;
    srv.api().trigger(&["shared-name"], "for-one", "1").await;
    assert_eq!(one.recv().await["event"], "for-one");
    two.expect_nothing(300).await;
    let mut api2 = Api::new(srv.addr, "", "key-two", "secret-two");
    api2.app_id = "app-two".into();
    api2.trigger(&["shared-name"], "for-two", "2").await;
    assert_eq!(two.recv().await["event"], "for-two");
    one.expect_nothing(300).await;
    assert_eq!(api2.connections().await, 1);
    // App one's key cannot sign for app two.
    let mut cross = Api::new(srv.addr, "", KEY, SECRET);
    cross.app_id = "app-two".into();
    assert_eq!(cross.get(&cross.app_path("/channels"), &[]).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_encrypted_cache_channels() {
    let srv = start_default().await;
    let api = srv.api();
    let mut c = srv.client().await;
    let p = c
        .subscribe_presence("presence-cache-room", r#"{"user_id":"1"}"#)
        .await;
    assert_eq!(p["count"], 1);
    assert_eq!(
        c.recv().await,
        json!({"event":"pusher:cache_miss","channel":"presence-cache-room"})
    );
    api.trigger(
        &["private-encrypted-cache-vault"],
        "sealed",
        "{\"nonce\":\"n\",\"ciphertext\":\"c\"}",
    )
    .await;
    c.subscribe_private("private-encrypted-cache-vault").await;
    assert_eq!(
        c.recv().await,
        json!({"event":"sealed","channel":"private-encrypted-cache-vault",
               "data":"{\"nonce\":\"n\",\"ciphertext\":\"c\"}"})
    );
    // Client events are never cached.
    let mut d = srv.client().await;
    d.subscribe_private("private-cache-talk").await;
    assert_eq!(d.recv().await["event"], "pusher:cache_miss");
    d.client_event("private-cache-talk", "client-x", json!("hi"))
        .await;
    d.sync().await;
    let mut e = srv.client().await;
    e.subscribe_private("private-cache-talk").await;
    assert_eq!(
        e.recv().await,
        json!({"event":"pusher:cache_miss","channel":"private-cache-talk"})
    );
}
