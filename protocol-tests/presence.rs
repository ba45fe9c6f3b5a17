//! Presence channel tests: member lists, member_added/removed, multi-socket users, limits,
//! signed-in members and the users endpoint.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_member_gets_presence_payload() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let p = c
        .subscribe_presence(
            "presence-room",
            r#"{"user_id":"1","user_info":{"name":"Ann"}}"#,
        )
        .await;
    assert_eq!(
        p,
        json!({"ids":["1"],"hash":{"1":{"name":"Ann"}},"count":1})
    );
    c.expect_nothing(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_member_sees_both_and_first_gets_member_added() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_presence(
        "presence-two",
        r#"{"user_id":"1","user_info":{"name":"Ann"}}"#,
    )
    .await;
    let p = b
        .subscribe_presence(
            "presence-two",
            r#"{"user_id":"2","user_info":{"name":"Bob"}}"#,
        )
        .await;
    assert_eq!(p["count"], 2);
    assert_eq!(presence_ids(&p), vec!["1", "2"]);
    assert_eq!(p["hash"], json!({"1":{"name":"Ann"},"2":{"name":"Bob"}}));
    let added = a.recv().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(added["channel"], "presence-two");
    assert_eq!(
        data_json(&added),
        json!({"user_id":"2","user_info":{"name":"Bob"}})
    );
    // The joiner gets no member_added for itself.
    b.expect_nothing(300).await;
    a.expect_nothing(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_user_id_keeps_its_type() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let p = a
        .subscribe_presence(
            "presence-int",
            r#"{"user_id":1,"user_info":{"name":"Test User"}}"#,
        )
        .await;
    assert_eq!(
        p,
        json!({"ids":[1],"hash":{"1":{"name":"Test User"}},"count":1})
    );
    b.subscribe_presence(
        "presence-int",
        r#"{"user_id":2,"user_info":{"name":"Test User 2"}}"#,
    )
    .await;
    let added = a.recv().await;
    assert_eq!(
        added,
        json!({"event":"pusher_internal:member_added","channel":"presence-int",
               "data": added["data"].clone()})
    );
    assert_eq!(
        data_json(&added),
        json!({"user_id":2,"user_info":{"name":"Test User 2"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_user_info_is_null_in_hash() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let p = a
        .subscribe_presence("presence-null", r#"{"user_id":"7"}"#)
        .await;
    assert_eq!(p, json!({"ids":["7"],"hash":{"7":null},"count":1}));
    assert!(p["hash"].as_object().unwrap().contains_key("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_data_is_verified_byte_exact() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    // Python's spacing must be accepted as signed.
    let spaced = r#"{"user_id": "9", "user_info": {"money": "1.32"}}"#;
    let p = c.subscribe_presence("presence-spaced", spaced).await;
    assert_eq!(p["hash"], json!({"9":{"money":"1.32"}}));
    // Signature over one serialisation, another one sent: refused.
    let auth = channel_auth(&c.socket_id, "presence-exact", Some(r#"{"user_id":"9"}"#));
    c.send_subscribe(json!({"channel":"presence-exact","auth":auth,
                             "channel_data":r#"{"user_id": "9"}"#}))
        .await;
    expect_auth_failure(&mut c, "presence-exact").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_with_bad_auth_fails() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    c.send_subscribe(json!({"channel":"presence-bad","auth":"app-key:abc",
                             "channel_data":r#"{"user_id":"1"}"#}))
        .await;
    expect_auth_failure(&mut c, "presence-bad").await;
    c.send_subscribe(json!({"channel":"presence-bad","auth":null,
                             "channel_data":r#"{"user_id":"1"}"#}))
        .await;
    expect_auth_failure(&mut c, "presence-bad").await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_user_two_sockets_counts_once() {
    let srv = start_default().await;
    let mut watcher = srv.client().await;
    watcher
        .subscribe_presence("presence-multi", r#"{"user_id":"w"}"#)
        .await;
    let mut u1 = srv.client().await;
    let mut u2 = srv.client().await;
    u1.subscribe_presence("presence-multi", r#"{"user_id":"u","user_info":{"n":1}}"#)
        .await;
    let added = watcher.recv().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(data_json(&added)["user_id"], "u");
    let p = u2
        .subscribe_presence("presence-multi", r#"{"user_id":"u","user_info":{"n":1}}"#)
        .await;
    assert_eq!(p["count"], 2, "{p}");
    assert_eq!(presence_ids(&p), vec!["u", "w"]);
    // No second member_added, to anyone.
    watcher.expect_nothing(300).await;
    u1.expect_nothing(100).await;
    // One socket leaves: still a member, no member_removed.
    u1.close().await;
    watcher.expect_nothing(400).await;
    let (s, b) = srv
        .api()
        .get(
            &srv.api().app_path("/channels/presence-multi"),
            &[("info", "user_count")],
        )
        .await;
    assert_eq!((s, b), (200, json!({"occupied":true,"user_count":2})));
    // The last one leaves: member_removed.
    u2.unsubscribe("presence-multi").await;
    assert_eq!(
        watcher.recv().await,
        json!({"event":"pusher_internal:member_removed","channel":"presence-multi",
               "data":"{\"user_id\":\"u\"}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int_and_string_user_id_are_the_same_user() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let mut watcher = srv.client().await;
    watcher
        .subscribe_presence("presence-same", r#"{"user_id":"w"}"#)
        .await;
    a.subscribe_presence("presence-same", r#"{"user_id":10}"#)
        .await;
    assert_eq!(
        watcher.recv().await["event"],
        "pusher_internal:member_added"
    );
    let p = b
        .subscribe_presence("presence-same", r#"{"user_id":"10"}"#)
        .await;
    assert_eq!(p["count"], 2, "{p}");
    watcher.expect_nothing(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_removed_on_disconnect() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_presence("presence-bye", r#"{"user_id":"a"}"#)
        .await;
    b.subscribe_presence("presence-bye", r#"{"user_id":3}"#)
        .await;
    assert_eq!(a.recv().await["event"], "pusher_internal:member_added");
    drop(b); // TCP drop without a close handshake
    let removed = a.recv().await;
    assert_eq!(
        removed,
        json!({"event":"pusher_internal:member_removed","channel":"presence-bye",
               "data":"{\"user_id\":3}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_removed_on_unsubscribe_and_rejoin_adds_again() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_presence("presence-cycle", r#"{"user_id":"a"}"#)
        .await;
    b.subscribe_presence("presence-cycle", r#"{"user_id":"b"}"#)
        .await;
    a.recv_event("pusher_internal:member_added").await;
    b.unsubscribe("presence-cycle").await;
    assert_eq!(
        data_json(&a.recv_event("pusher_internal:member_removed").await),
        json!({"user_id":"b"})
    );
    let p = b
        .subscribe_presence("presence-cycle", r#"{"user_id":"b"}"#)
        .await;
    assert_eq!(p["count"], 2);
    a.recv_event("pusher_internal:member_added").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_presence_no_duplicate_membership() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut w = srv.client().await;
    w.subscribe_presence("presence-re", r#"{"user_id":"w"}"#)
        .await;
    a.subscribe_presence("presence-re", r#"{"user_id":"a"}"#)
        .await;
    w.recv_event("pusher_internal:member_added").await;
    let p = a
        .subscribe_presence("presence-re", r#"{"user_id":"a"}"#)
        .await;
    assert_eq!(p["count"], 2);
    w.expect_nothing(300).await;
    let (_, users) = srv
        .api()
        .get(&srv.api().app_path("/channels/presence-re/users"), &[])
        .await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_limit_reached() {
    let mut cfg = config();
    cfg.apps[0].max_presence_members = 2;
    let srv = start(cfg).await;
    let mut a = srv.client().await;
    let mut b = srv.client().await;
    let mut c = srv.client().await;
    let mut a2 = srv.client().await;
    a.subscribe_presence("presence-full", r#"{"user_id":"1"}"#)
        .await;
    b.subscribe_presence("presence-full", r#"{"user_id":"2"}"#)
        .await;
    a.recv_event("pusher_internal:member_added").await;
    c.send_presence_subscribe("presence-full", r#"{"user_id":"3"}"#)
        .await;
    expect_sub_failure(&mut c, "presence-full", "LimitReached", 4100, 4100).await;
    a.expect_nothing(200).await;
    // Another socket of an existing member is still fine.
    let p = a2
        .subscribe_presence("presence-full", r#"{"user_id":"1"}"#)
        .await;
    assert_eq!(p["count"], 2);
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_too_large_or_user_id_too_long() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let big = format!(
        r#"{{"user_id":"1","user_info":{{"bio":"{}"}}}}"#,
        "x".repeat(2000)
    );
    c.send_presence_subscribe("presence-big", &big).await;
    expect_sub_failure(&mut c, "presence-big", "LimitReached", 4301, 4301).await;
    let long_id = format!(r#"{{"user_id":"{}"}}"#, "9".repeat(129));
    c.send_presence_subscribe("presence-big", &long_id).await;
    expect_sub_failure(&mut c, "presence-big", "LimitReached", 4301, 4301).await;
    // 128 characters is fine.
    let ok_id = format!(r#"{{"user_id":"{}"}}"#, "9".repeat(128));
    let p = c.subscribe_presence("presence-big", &ok_id).await;
    assert_eq!(p["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_via_signed_in_user_without_channel_data() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let user_data = r#"{"id":"5","user_info":{"name":"Sig"}}"#;
    c.signin(user_data).await;
    let auth = channel_auth(&c.socket_id, "presence-signed", None);
    c.send_subscribe(json!({"channel":"presence-signed","auth":auth}))
        .await;
    let p = presence_payload(&c.recv().await, "presence-signed");
    assert_eq!(
        p,
        json!({"ids":["5"],"hash":{"5":{"name":"Sig"}},"count":1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_without_channel_data_and_not_signed_in_fails() {
    let srv = start_default().await;
    let mut c = srv.client().await;
    let auth = channel_auth(&c.socket_id, "presence-anon", None);
    c.send_subscribe(json!({"channel":"presence-anon","auth":auth}))
        .await;
    expect_auth_failure(&mut c, "presence-anon").await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_endpoint_deduplicates() {
    let srv = start_default().await;
    let mut a = srv.client().await;
    let mut a2 = srv.client().await;
    let mut b = srv.client().await;
    a.subscribe_presence("presence-users", r#"{"user_id":"1"}"#)
        .await;
    a2.subscribe_presence("presence-users", r#"{"user_id":"1"}"#)
        .await;
    b.subscribe_presence("presence-users", r#"{"user_id":"2"}"#)
        .await;
    let api = srv.api();
    let (s, body) = api
        .get(&api.app_path("/channels/presence-users/users"), &[])
        .await;
    assert_eq!(s, 200, "{body}");
    let mut ids: Vec<String> = body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users array: {body}"))
        .iter()
        .map(|u| {
            assert_eq!(u.as_object().unwrap().len(), 1, "only id: {u}");
            u["id"]
                .as_str()
                .unwrap_or_else(|| panic!("string id: {u}"))
                .to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["1", "2"]);
    // user_count agrees.
    let (_, info) = api
        .get(
            &api.app_path("/channels/presence-users"),
            &[("info", "user_count")],
        )
        .await;
    assert_eq!(info, json!({"occupied":true,"user_count":2}));
    // After everyone leaves: empty list.
    a.close().await;
    a2.close().await;
    b.close().await;
    let ok = eventually(Duration::from_secs(2), || {
        let api = api.clone();
        async move {
            let (s, b) = api
                .get(&api.app_path("/channels/presence-users/users"), &[])
                .await;
            s == 200 && b == json!({"users":[]})
        }
    })
    .await;
    assert!(ok, "users list empties after all members leave");
}
