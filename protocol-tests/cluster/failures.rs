//! Failures: a node killed with SIGKILL, Redis down (local delivery goes on, held publishes are
//! delivered in order afterwards), Redis restarted empty (state rebuilt). Garbage on the pub/sub
//! channel is in `garbage.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;

fn ev(event: &str, channel: &str, data: &str) -> Value {
    json!({"event": event, "channel": channel, "data": data})
}

fn removed(channel: &str, user_id: &str) -> Value {
    json!({"event":"pusher_internal:member_removed","channel":channel,
           "data": json!({"user_id": user_id}).to_string()})
}

/// Joins `channel` as `user` on node `i`, draining nothing.
async fn join(c: &Cluster, i: usize, channel: &str, user: &str) -> Client {
    let mut s = c.node(i).client().await;
    s.subscribe_presence(channel, &json!({ "user_id": user }).to_string())
        .await;
    s
}

/// Reads `n` member_added frames.
async fn drain_added(s: &mut Client, n: usize) {
    for _ in 0..n {
        s.recv_event("pusher_internal:member_added").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_is_removed_once_by_the_survivors() {
    let mut c = Cluster::start(3).await;
    let room = "presence-room";
    let mut p0 = join(&c, 0, room, "u0").await;
    let p1 = join(&c, 1, room, "u1").await;
    let mut p2 = join(&c, 2, room, "u2").await;
    let p12a = join(&c, 1, room, "u12").await;
    let mut p12b = join(&c, 2, room, "u12").await;
    let mut pub0 = c.node(0).client().await;
    pub0.subscribe("pub-d").await;
    let mut pub1 = c.node(1).client().await;
    pub1.subscribe("pub-d").await;
    drain_added(&mut p0, 3).await;
    drain_added(&mut p2, 1).await;
    let before = json!({
        "status": [200, 200],
        "channels": {"channels":{"pub-d":{},"presence-room":{}}},
        "presence_list": {"channels":{"presence-room":{"user_count":4}}},
        "connections": 7,
        "presence_info": [200, {"occupied":true,"user_count":4,"subscription_count":5}],
        "users": ["u0","u1","u12","u2"],
        "info:pub-d": [200, {"occupied":true,"subscription_count":2}],
    });
    converge("before the kill", CONVERGE, before, || {
        let api = c.node(0).api();
        async move { cluster_view(&api, room, &["pub-d"]).await }
    })
    .await;

    c.nodes[1].kill9();
    let killed_at = tokio::time::Instant::now();
    let budget = Duration::from_secs_f64(NODE_TIMEOUT) + Duration::from_secs(4);
    for s in [&mut p0, &mut p2, &mut p12b] {
        let left = budget.saturating_sub(killed_at.elapsed());
        let v = s.recv_within(left).await.unwrap_or_else(|| {
            panic!(
                "socket {}: no member_removed within {budget:?} of the kill",
                s.socket_id
            )
        });
        assert_eq!(v, removed(room, "u1"), "socket {}", s.socket_id);
    }
    // Both survivors noticed by now or soon: still only one member_removed each, none for u12.
    quiet_all(&mut [&mut p0, &mut p2, &mut p12b, &mut pub0], 1500).await;
    let after = json!({
        "status": [200, 200],
        "channels": {"channels":{"pub-d":{},"presence-room":{}}},
        "presence_list": {"channels":{"presence-room":{"user_count":3}}},
        "connections": 4,
        "presence_info": [200, {"occupied":true,"user_count":3,"subscription_count":3}],
        "users": ["u0","u12","u2"],
        "info:pub-d": [200, {"occupied":true,"subscription_count":1}],
    });
    for i in [0, 2] {
        let api = c.node(i).api();
        converge(
            &format!("after the kill, node {i}"),
            CONVERGE,
            after.clone(),
            || cluster_view(&api, room, &["pub-d"]),
        )
        .await;
    }
    // The survivors still talk to each other.
    c.node(2).api().trigger(&["pub-d"], "still", "here").await;
    expect_once(&mut pub0, &ev("still", "pub-d", "here")).await;
    drop((p1, p12a, pub1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_local_delivery_goes_on_and_held_publishes_follow_in_order() {
    let mut c = Cluster::start(3).await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut s = c.node(i).client().await;
        s.subscribe("out").await;
        subs.push(s);
    }
    c.redis.stop();
    let api0 = c.node(0).api();
    for i in 0..5 {
        api0.trigger(&["out"], "during", &i.to_string()).await;
        let v = subs[0].recv_within(Duration::from_secs(1)).await;
        assert_eq!(
            v,
            Some(ev("during", "out", &i.to_string())),
            "node 0's own subscriber during the outage"
        );
    }
    let (s, b) = api0.get(&api0.app_path("/channels"), &[]).await;
    assert_eq!(s, 200, "GET /channels during the outage: {b}");
    let (s, b) = api0.get(&api0.app_path("/connections"), &[]).await;
    assert_eq!(s, 200, "GET /connections during the outage: {b}");
    subs[1].expect_nothing(200).await;
    subs[2].expect_nothing(200).await;

    c.redis.start().await;
    for i in [1, 2] {
        let s = &mut subs[i];
        let first = s.recv_within(Duration::from_secs(6)).await;
        assert_eq!(
            first,
            Some(ev("during", "out", "0")),
            "node {i}: first held publish after Redis is back"
        );
        for n in 1..5 {
            assert_eq!(
                s.recv().await,
                ev("during", "out", &n.to_string()),
                "node {i}: held publishes in order"
            );
        }
    }
    let mut refs: Vec<&mut Client> = subs.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
    // Cross-node delivery works again, from every node.
    for from in 0..3 {
        let data = format!("after-{from}");
        c.node(from).api().trigger(&["out"], "after", &data).await;
        for (i, s) in subs.iter_mut().enumerate() {
            let v = s.recv_within(Duration::from_secs(5)).await;
            assert_eq!(
                v,
                Some(ev("after", "out", &data)),
                "node {from} -> node {i}"
            );
        }
    }
    let mut refs: Vec<&mut Client> = subs.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_state_is_rebuilt() {
    let mut c = Cluster::start(3).await;
    let room = "presence-rr";
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(join(&c, i, room, &format!("r{i}")).await);
    }
    drain_added(&mut members[0], 2).await;
    drain_added(&mut members[1], 1).await;
    let mut pubs = Vec::new();
    for i in 0..3 {
        let mut s = c.node(i).client().await;
        s.subscribe("rp").await;
        pubs.push(s);
    }
    let expected = json!({
        "status": [200, 200],
        "channels": {"channels":{"rp":{},"presence-rr":{}}},
        "presence_list": {"channels":{"presence-rr":{"user_count":3}}},
        "connections": 6,
        "presence_info": [200, {"occupied":true,"user_count":3,"subscription_count":3}],
        "users": ["r0","r1","r2"],
        "info:rp": [200, {"occupied":true,"subscription_count":3}],
    });
    converge("before the restart", CONVERGE, expected.clone(), || {
        let api = c.node(0).api();
        async move { cluster_view(&api, room, &["rp"]).await }
    })
    .await;

    c.redis.stop();
    // Let every node notice the outage (two heartbeats) before Redis comes back empty.
    tokio::time::sleep(Duration::from_secs_f64(HEARTBEAT * 2.0)).await;
    c.redis.start().await;
    for i in 0..3 {
        let api = c.node(i).api();
        converge(
            &format!("state rebuilt, node {i}"),
            Duration::from_secs(6),
            expected.clone(),
            || cluster_view(&api, room, &["rp"]),
        )
        .await;
    }
    // Nobody left or joined: members heard nothing.
    let mut refs: Vec<&mut Client> = members.iter_mut().collect();
    quiet_all(&mut refs, 100).await;
    // Cross-node broadcasts work again.
    for from in 0..3 {
        let data = format!("back-{from}");
        c.node(from).api().trigger(&["rp"], "back", &data).await;
        for (i, s) in pubs.iter_mut().enumerate() {
            let v = s.recv_within(Duration::from_secs(5)).await;
            assert_eq!(v, Some(ev("back", "rp", &data)), "node {from} -> node {i}");
        }
    }
    // A new member's snapshot is complete, and each member hears of it once.
    let mut late = c.node(1).client().await;
    let p = late.subscribe_presence(room, r#"{"user_id":"r3"}"#).await;
    assert_eq!(presence_ids(&p), vec!["r0", "r1", "r2", "r3"], "{p}");
    for m in &mut members {
        let v = m.recv().await;
        assert_eq!(v["event"], "pusher_internal:member_added", "{v}");
        assert_eq!(data_json(&v), json!({"user_id":"r3","user_info":null}));
    }
    let mut refs: Vec<&mut Client> = members.iter_mut().chain(pubs.iter_mut()).collect();
    quiet_all(&mut refs, QUIET_MS).await;
}
