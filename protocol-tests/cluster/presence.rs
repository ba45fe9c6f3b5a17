//! Presence across nodes (exact snapshots, member_added/removed once per user, cluster-wide
//! member limit), terminate_connections across nodes, and the per-app connection quota.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;

const ROOM: &str = "presence-room";

fn added(channel: &str, member: Value) -> (String, String, Value) {
    (
        "pusher_internal:member_added".into(),
        channel.into(),
        member,
    )
}

/// (event, channel, decoded data) of a member event.
fn member_event(v: &Value) -> (String, String, Value) {
    (
        v["event"].as_str().unwrap_or_default().into(),
        v["channel"].as_str().unwrap_or_default().into(),
        data_json(v),
    )
}

fn removed_frame(channel: &str, user_id: &str) -> Value {
    json!({"event":"pusher_internal:member_removed","channel":channel,
           "data": json!({"user_id": user_id}).to_string()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_member_events_are_exact_across_nodes() {
    let c = Cluster::start(3).await;
    let (da, db, dc) = (
        r#"{"user_id":"a","user_info":{"name":"A"}}"#,
        r#"{"user_id":"b","user_info":{"name":"B"}}"#,
        r#"{"user_id":"c","user_info":{"name":"C"}}"#,
    );
    let mut a = c.node(0).client().await;
    let p = a.subscribe_presence(ROOM, da).await;
    assert_eq!(p, json!({"ids":["a"],"hash":{"a":{"name":"A"}},"count":1}));

    let mut b = c.node(1).client().await;
    let p = b.subscribe_presence(ROOM, db).await;
    assert_eq!(presence_ids(&p), vec!["a", "b"], "B's snapshot: {p}");
    assert_eq!(p["count"], 2, "{p}");
    assert_eq!(p["hash"], json!({"a":{"name":"A"},"b":{"name":"B"}}));
    assert_eq!(
        member_event(&a.recv().await),
        added(ROOM, json!({"user_id":"b","user_info":{"name":"B"}}))
    );

    let mut cc = c.node(2).client().await;
    let p = cc.subscribe_presence(ROOM, dc).await;
    assert_eq!(presence_ids(&p), vec!["a", "b", "c"], "C's snapshot: {p}");
    assert_eq!(p["count"], 3, "{p}");
    assert_eq!(
        p["hash"],
        json!({"a":{"name":"A"},"b":{"name":"B"},"c":{"name":"C"}})
    );
    let c_added = added(ROOM, json!({"user_id":"c","user_info":{"name":"C"}}));
    assert_eq!(member_event(&a.recv().await), c_added);
    assert_eq!(member_event(&b.recv().await), c_added);
    quiet_all(&mut [&mut a, &mut b, &mut cc], QUIET_MS).await;

    // A second socket of user A, on node 2: no member_added, full snapshot.
    let mut a2 = c.node(2).client().await;
    let p = a2.subscribe_presence(ROOM, da).await;
    assert_eq!(
        presence_ids(&p),
        vec!["a", "b", "c"],
        "A's 2nd snapshot: {p}"
    );
    assert_eq!(p["count"], 3, "{p}");
    quiet_all(&mut [&mut a, &mut b, &mut cc, &mut a2], 800).await;

    // One of A's sockets leaves: A is still present, nobody hears of it.
    a.close().await;
    quiet_all(&mut [&mut b, &mut cc, &mut a2], 1000).await;
    let api = c.node(1).api();
    let (_, users) = api
        .get(&api.app_path(&format!("/channels/{ROOM}/users")), &[])
        .await;
    assert_eq!(user_ids(&users), vec!["a", "b", "c"], "{users}");

    // A's last socket leaves: exactly one member_removed on each other member.
    a2.close().await;
    assert_eq!(b.recv().await, removed_frame(ROOM, "a"));
    assert_eq!(cc.recv().await, removed_frame(ROOM, "a"));
    quiet_all(&mut [&mut b, &mut cc], 800).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_user_id_keeps_its_type_across_nodes() {
    let c = Cluster::start(3).await;
    let mut w = c.node(1).client().await;
    w.subscribe_presence("presence-int", r#"{"user_id":"w"}"#)
        .await;
    let mut n = c.node(0).client().await;
    n.subscribe_presence("presence-int", r#"{"user_id":5,"user_info":{"k":1}}"#)
        .await;
    let v = w.recv_event("pusher_internal:member_added").await;
    assert_eq!(data_json(&v), json!({"user_id":5,"user_info":{"k":1}}));
    let mut j = c.node(2).client().await;
    let p = j
        .subscribe_presence("presence-int", r#"{"user_id":"j"}"#)
        .await;
    let j_added = json!({"user_id":"j","user_info":null});
    assert_eq!(
        data_json(&w.recv_event("pusher_internal:member_added").await),
        j_added
    );
    assert_eq!(
        data_json(&n.recv_event("pusher_internal:member_added").await),
        j_added
    );
    let ids = p["ids"].as_array().cloned().unwrap_or_default();
    assert!(ids.contains(&json!(5)), "integer id kept in {p}");
    assert_eq!(p["hash"]["5"], json!({"k":1}), "{p}");
    // The same user as a string on another node is the same member: no member_added.
    let mut n2 = c.node(2).client().await;
    let p = n2
        .subscribe_presence("presence-int", r#"{"user_id":"5"}"#)
        .await;
    assert_eq!(p["count"], 3, "{p}");
    quiet_all(&mut [&mut w, &mut n, &mut j], QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_limit_is_cluster_wide() {
    let c = Cluster::start_with(3, |app| app.max_presence_members = 2).await;
    let mut a = c.node(0).client().await;
    let mut b = c.node(1).client().await;
    a.subscribe_presence("presence-full", r#"{"user_id":"1"}"#)
        .await;
    b.subscribe_presence("presence-full", r#"{"user_id":"2"}"#)
        .await;
    a.recv_event("pusher_internal:member_added").await;
    let mut third = c.node(2).client().await;
    third
        .send_presence_subscribe("presence-full", r#"{"user_id":"3"}"#)
        .await;
    expect_sub_failure(&mut third, "presence-full", "LimitReached", 4100, 4100).await;
    quiet_all(&mut [&mut a, &mut b], QUIET_MS).await;
    // Another socket of a present user, on the third node, is still fine.
    let mut a2 = c.node(2).client().await;
    let p = a2
        .subscribe_presence("presence-full", r#"{"user_id":"1"}"#)
        .await;
    assert_eq!(p["count"], 2, "{p}");
    third.sync().await;
    // Once a user leaves (anywhere), there is room again on any node.
    b.close().await;
    a.recv_event("pusher_internal:member_removed").await;
    third
        .send_presence_subscribe("presence-full", r#"{"user_id":"3"}"#)
        .await;
    let p = presence_payload(&third.recv().await, "presence-full");
    assert_eq!(presence_ids(&p), vec!["1", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_limit_holds_under_concurrent_joins_on_different_nodes() {
    let c = Cluster::start_with(3, |app| app.max_presence_members = 2).await;
    for round in 0..3 {
        let channel = format!("presence-race-{round}");
        let mut socks = Vec::new();
        for i in 0..3 {
            socks.push(c.node(i).client().await);
        }
        // Send the three joins, then read the answers.
        for (i, s) in socks.iter_mut().enumerate() {
            s.send_presence_subscribe(&channel, &format!(r#"{{"user_id":"u{i}"}}"#))
                .await;
        }
        let mut ok = 0;
        for s in &mut socks {
            let v = s.recv().await;
            match v["event"].as_str() {
                Some("pusher_internal:subscription_succeeded") => ok += 1,
                Some("pusher:subscription_error") => {
                    assert_eq!(v["data"]["type"], "LimitReached", "{v}");
                    assert_error(&s.recv().await, 4100, None);
                }
                _ => panic!("unexpected answer to a join: {v}"),
            }
        }
        assert_eq!(
            ok, 2,
            "round {round}: exactly 2 of 3 distinct users may join"
        );
        let api = c.node(0).api();
        let path = api.app_path(&format!("/channels/{channel}"));
        converge("user_count after racing joins", CONVERGE, json!(2), || {
            let (api, path) = (api.clone(), path.clone());
            async move { api.get(&path, &[("info", "user_count")]).await.1["user_count"].clone() }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_and_last_sockets_of_a_user_are_announced_once() {
    let c = Cluster::start(3).await;
    let mut w = c.node(0).client().await;
    w.subscribe_presence("presence-dup", r#"{"user_id":"w"}"#)
        .await;
    for round in 0..3 {
        let data = format!(r#"{{"user_id":"u{round}"}}"#);
        let mut s1 = c.node(1).client().await;
        let mut s2 = c.node(2).client().await;
        // Both first sockets join at once, on two nodes.
        s1.send_presence_subscribe("presence-dup", &data).await;
        s2.send_presence_subscribe("presence-dup", &data).await;
        for s in [&mut s1, &mut s2] {
            let p = presence_payload(&s.recv().await, "presence-dup");
            assert_eq!(p["count"], 2, "round {round}: {p}");
        }
        let v = w.recv().await;
        assert_eq!(
            member_event(&v),
            added(
                "presence-dup",
                json!({"user_id": format!("u{round}"), "user_info": null})
            ),
            "round {round}"
        );
        quiet_all(&mut [&mut w, &mut s1, &mut s2], QUIET_MS).await;
        // Both last sockets leave at once.
        tokio::join!(s1.close(), s2.close());
        assert_eq!(
            w.recv().await,
            removed_frame("presence-dup", &format!("u{round}")),
            "round {round}"
        );
        w.expect_nothing(QUIET_MS).await;
    }
}

async fn expect_terminated(c: &mut Client) {
    let err = c.recv().await;
    assert_eq!(
        err,
        json!({"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}}),
        "socket {}",
        c.socket_id
    );
    assert_eq!(c.expect_close().await.0, 4009);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_reaches_every_node() {
    let c = Cluster::start(3).await;
    let mut by0 = c.node(0).client().await;
    by0.subscribe_presence("presence-term", r#"{"user_id":"10"}"#)
        .await;
    let mut s1 = c.node(1).client().await;
    s1.signin(r#"{"id":"9"}"#).await;
    let mut s2 = c.node(2).client().await;
    s2.signin(r#"{"id":"9"}"#).await;
    let mut member = c.node(2).client().await;
    member
        .subscribe_presence("presence-term", r#"{"user_id":9}"#)
        .await;
    by0.recv_event("pusher_internal:member_added").await;
    let mut by1 = c.node(1).client().await;
    by1.signin(r#"{"id":"10"}"#).await;
    let mut by2 = c.node(2).client().await;
    by2.subscribe("public-term").await;

    let api = c.node(0).api();
    converge("connections before", CONVERGE, 6, || {
        let api = api.clone();
        async move { api.connections().await }
    })
    .await;
    let (s, b) = api
        .post(&api.app_path("/users/9/terminate_connections"), &json!({}))
        .await;
    assert_eq!((s, b), (200, json!({})));
    expect_terminated(&mut s1).await;
    expect_terminated(&mut s2).await;
    expect_terminated(&mut member).await;
    assert_eq!(
        by0.recv().await,
        json!({"event":"pusher_internal:member_removed","channel":"presence-term",
               "data":"{\"user_id\":9}"})
    );
    quiet_all(&mut [&mut by0, &mut by1, &mut by2], QUIET_MS).await;
    for s in [&mut by0, &mut by1, &mut by2] {
        s.sync().await;
    }
    for i in 0..3 {
        let api = c.node(i).api();
        converge(&format!("connections on node {i}"), CONVERGE, 3, || {
            let api = api.clone();
            async move { api.connections().await }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_connection_quota_is_cluster_wide() {
    let c = Cluster::start_with(3, |app| app.max_connections = Some(3)).await;
    let first = c.node(0).client().await;
    let _second = c.node(0).client().await;
    let _third = c.node(1).client().await;
    let api2 = c.node(2).api();
    converge("connections seen from node 2", CONVERGE, 3, || {
        let api2 = api2.clone();
        async move { api2.connections().await }
    })
    .await;
    let path = format!("/app/{KEY}?{PJS_QUERY}");
    let ws = ws_open(c.node(2).addr, &path, None).await.expect("upgrade");
    let mut fourth = Client::raw(ws);
    fourth
        .expect_error_and_close(4004, Some("Application is over connection quota"))
        .await;
    // The refused socket is not counted, on node 2 nor (once they have converged) elsewhere.
    assert_eq!(api2.connections().await, 3, "node 2 after the refusal");
    for i in 0..3 {
        let api = c.node(i).api();
        converge(&format!("connections on node {i}"), CONVERGE, 3, || {
            let api = api.clone();
            async move { api.connections().await }
        })
        .await;
    }
    // A slot freed on node 0 can be used on node 2.
    first.close().await;
    let addr = c.node(2).addr;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let _reused = loop {
        let ws = ws_open(addr, &path, None).await.expect("upgrade");
        let mut s = Client::raw(ws);
        let v = s.recv().await;
        if v["event"] == "pusher:connection_established" {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a slot freed on node 0 is still refused on node 2 after 3 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    converge("connections after reuse", CONVERGE, 3, || {
        let api2 = api2.clone();
        async move { api2.connections().await }
    })
    .await;
}
