//! Client event (whisper) tests, plus user sign-in and server-to-user channels.

mod common;

use common::*;
use herald::config::ClientEventsFrom;
use serde_json::json;

/// Two clients subscribed to the same private channel.
async fn pair(srv: &TestServer, channel: &str) -> (Client, Client) {
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_private(channel).await;
    b.subscribe_private(channel).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_to_others_not_echoed() {
    let srv = start_default().await;
    let (mut a, mut b) = pair(&srv, "private-chat").await;
    let mut c = srv.client().await;
    c.subscribe_private("private-chat").await;
    a.client_event(
        "private-chat",
        "client-typing",
        json!({"id":123,"name":"Joe"}),
    )
    .await;
    let expected = json!({"event":"client-typing","channel":"private-chat","data":"{\"id\":123,\"name\":\"Joe\"}"});
    assert_eq!(b.recv().await, expected);
    assert_eq!(c.recv().await, expected);
    a.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_data_forwarded_verbatim() {
    let srv = start_default().await;
    let (mut a, mut b) = pair(&srv, "private-str").await;
    a.client_event("private-str", "client-msg", json!("{\"already\":\"json\"}"))
        .await;
    assert_eq!(
        b.recv().await,
        json!({"event":"client-msg","channel":"private-str","data":"{\"already\":\"json\"}"})
    );
    a.client_event("private-str", "client-msg", json!("plain text"))
        .await;
    assert_eq!(
        b.recv().await,
        json!({"event":"client-msg","channel":"private-str","data":"plain text"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_string_data_is_compact_serialised() {
    let srv = start_default().await;
    let (mut a, mut b) = pair(&srv, "private-num").await;
    a.send_text(r#"{"event":"client-n","channel":"private-num","data":[1, 2, {"a" : true}]}"#)
        .await;
    assert_eq!(
        b.recv().await,
        json!({"event":"client-n","channel":"private-num","data":"[1,2,{\"a\":true}]"})
    );
    a.client_event("private-num", "client-n", json!(42)).await;
    assert_eq!(b.recv().await["data"], "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_relay_carries_user_id_as_string() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_presence("presence-whisper", r#"{"user_id":7}"#)
        .await;
    b.subscribe_presence("presence-whisper", r#"{"user_id":"8"}"#)
        .await;
    a.recv_event("pusher_internal:member_added").await;
    a.client_event("presence-whisper", "client-hi", json!({"x":1}))
        .await;
    assert_eq!(
        b.recv().await,
        json!({"event":"client-hi","channel":"presence-whisper","data":"{\"x\":1}","user_id":"7"})
    );
    b.client_event("presence-whisper", "client-hi", json!("yo"))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"event":"client-hi","channel":"presence-whisper","data":"yo","user_id":"8"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_gets_4009_and_nothing_relayed() {
    let srv = start_default().await;
    let mut member = srv.client().await;
    member.subscribe_private("private-closed").await;
    let mut outsider = srv.client().await;
    outsider
        .client_event("private-closed", "client-x", json!({}))
        .await;
    assert_eq!(
        outsider.recv().await,
        json!({"event":"pusher:error","data":{"code":4009,
               "message":"The client is not a member of the specified channel."}})
    );
    member.expect_nothing(300).await;
    outsider.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_channel_rejected_4301() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe("public-room").await;
    b.subscribe("public-room").await;
    a.client_event("public-room", "client-x", json!({})).await;
    assert_eq!(
        a.recv().await,
        json!({"event":"pusher:error","data":{"code":4301,
               "message":"Client events are only allowed on private and presence channels"}})
    );
    b.expect_nothing(300).await;
    a.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_channel_rejected_4301() {
    let srv = start_default().await;
    let (mut a, mut b) = pair(&srv, "private-encrypted-e").await;
    a.client_event("private-encrypted-e", "client-x", json!("x"))
        .await;
    let err = a.recv().await;
    assert_error(
        &err,
        4301,
        Some("Client events are only allowed on private and presence channels"),
    );
    b.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_rejects_4301() {
    let mut cfg = config();
    cfg.apps[0].accept_client_events_from = ClientEventsFrom::None;
    let srv = start(cfg).await;
    let (mut a, mut b) = pair(&srv, "private-off").await;
    a.client_event("private-off", "client-x", json!({})).await;
    assert_eq!(
        a.recv().await,
        json!({"event":"pusher:error","data":{"code":4301,
               "message":"The app does not have client messaging enabled."}})
    );
    b.expect_nothing(300).await;
    a.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_from_all_still_requires_private_channel() {
    let mut cfg = config();
    cfg.apps[0].accept_client_events_from = ClientEventsFrom::All;
    let srv = start(cfg).await;
    let (mut a, mut b) = pair(&srv, "private-all").await;
    a.client_event("private-all", "client-x", json!("1")).await;
    assert_eq!(b.recv().await["data"], "1");
    a.subscribe("pub-all").await;
    a.client_event("pub-all", "client-x", json!("1")).await;
    assert_error(&a.recv().await, 4301, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_rejects_without_close() {
    let mut cfg = config();
    cfg.apps[0].client_events_per_second = 2;
    let srv = start(cfg).await;
    let (mut a, mut b) = pair(&srv, "private-rl").await;
    for i in 0..5 {
        a.client_event("private-rl", "client-burst", json!(i.to_string()))
            .await;
    }
    // Collect the sender's errors and the receiver's events.
    let mut errors = 0;
    while let Some(v) = a.recv_within(std::time::Duration::from_millis(500)).await {
        assert_eq!(
            v,
            json!({"event":"pusher:error","data":{"code":4301,
                   "message":"Client event rejected due to rate limit"}})
        );
        errors += 1;
    }
    let mut relayed = 0;
    while let Some(v) = b.recv_within(std::time::Duration::from_millis(300)).await {
        assert_eq!(v["event"], "client-burst");
        relayed += 1;
    }
    assert!(errors >= 1, "a burst of 5 at 2/s must be limited");
    assert!((2..=4).contains(&relayed), "relayed {relayed}");
    assert_eq!(errors + relayed, 5);
    // Still connected, and allowed again after the window.
    a.sync().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    a.client_event("private-rl", "client-later", json!("ok"))
        .await;
    assert_eq!(b.recv().await["event"], "client-later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_client_event_data_4301() {
    let mut cfg = config();
    cfg.apps[0].max_event_bytes = 100;
    let srv = start(cfg).await;
    let (mut a, mut b) = pair(&srv, "private-size").await;
    a.client_event("private-size", "client-big", json!("x".repeat(200)))
        .await;
    assert_error(&a.recv().await, 4301, None);
    b.expect_nothing(300).await;
    a.client_event("private-size", "client-small", json!("x".repeat(50)))
        .await;
    assert_eq!(b.recv().await["event"], "client-small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_success_exact_frame() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let user_data = r#"{"id":"1","name":"test"}"#;
    let auth = signin_auth(&c.socket_id, user_data);
    c.send_json(&json!({"event":"pusher:signin","data":{"auth":auth,"user_data":user_data}}))
        .await;
    assert_eq!(
        c.recv().await,
        json!({"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"1\",\"name\":\"test\"}"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_failures_get_4009_and_stay_open() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let user_data = r#"{"id":"1"}"#;
    // Bad signature.
    c.send_json(&json!({"event":"pusher:signin","data":{"auth":format!("{KEY}:{}", "ab".repeat(32)),"user_data":user_data}}))
        .await;
    assert_error(&c.recv().await, 4009, None);
    // Signature for a different socket.
    let other = signin_auth("1.1", user_data);
    c.send_json(&json!({"event":"pusher:signin","data":{"auth":other,"user_data":user_data}}))
        .await;
    assert_error(&c.recv().await, 4009, None);
    // Valid signature but no string id / empty id / numeric id.
    for ud in [r#"{"name":"x"}"#, r#"{"id":""}"#, r#"{"id":5}"#] {
        let auth = signin_auth(&c.socket_id, ud);
        c.send_json(&json!({"event":"pusher:signin","data":{"auth":auth,"user_data":ud}}))
            .await;
        assert_error(&c.recv().await, 4009, None);
    }
    c.sync().await;
    // A later valid sign-in works.
    c.signin(user_data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_delivery_to_all_user_sockets() {
    let srv = start_default().await;
    let mut s1 = srv.client().await;
    let mut s2 = srv.client().await;
    let mut other = srv.client().await;
    s1.signin(r#"{"id":"42"}"#).await;
    s2.signin(r#"{"id":"42"}"#).await;
    other.signin(r#"{"id":"43"}"#).await;
    s1.subscribe("#server-to-user-42").await;
    s2.subscribe("#server-to-user-42").await;
    other.subscribe("#server-to-user-43").await;
    srv.api()
        .trigger(&["#server-to-user-42"], "notify", "{\"n\":1}")
        .await;
    let expected = json!({"event":"notify","channel":"#server-to-user-42","data":"{\"n\":1}"});
    assert_eq!(s1.recv().await, expected);
    assert_eq!(s2.recv().await, expected);
    other.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_refused_for_other_user_or_anonymous() {
    let srv = start_default().await;
    let mut anon = srv.client().await;
    expect_s2u_refused(&mut anon, "#server-to-user-42").await;
    let mut c = srv.client().await;
    c.signin(r#"{"id":"42"}"#).await;
    expect_s2u_refused(&mut c, "#server-to-user-43").await;
    c.subscribe("#server-to-user-42").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_non_client_event_is_ignored() {
    let srv = start_default().await;
    let (mut a, mut b) = pair(&srv, "private-ign").await;
    a.send_json(&json!({"event":"custom-thing","channel":"private-ign","data":"x"}))
        .await;
    a.expect_nothing(200).await;
    b.expect_nothing(100).await;
    a.sync().await;
}

async fn expect_s2u_refused(c: &mut Client, channel: &str) {
    c.send_subscribe(json!({"channel":channel,"auth":""})).await;
    expect_auth_failure(c, channel).await;
}
