//! Watchlist events and subscription counting across nodes: a user is online while any node
//! holds a signed-in socket of theirs (announced once cluster-wide, offline once, including
//! when the node holding their last socket is killed with SIGKILL), and subscription counts are
//! the sum over live nodes, sent to every node's subscribers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;

fn watch(online: &[&str], offline: &[&str]) -> Value {
    let mut events = Vec::new();
    if !online.is_empty() {
        events.push(json!({"name":"online","user_ids":online}));
    }
    if !offline.is_empty() {
        events.push(json!({"name":"offline","user_ids":offline}));
    }
    json!({"event":"pusher_internal:watchlist_events",
           "data": json!({ "events": events }).to_string()})
}

async fn sign_in(c: &Cluster, i: usize, id: &str, watchlist: &[&str]) -> Client {
    let mut s = c.node(i).client().await;
    s.signin(&json!({"id": id, "watchlist": watchlist}).to_string())
        .await;
    s
}

/// Reads subscription_count frames of `channel` until one says `n` (within `d`).
async fn until_count(c: &mut Client, channel: &str, n: usize, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    let want = json!({ "subscription_count": n }).to_string();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = c.recv_within(left).await.unwrap_or_else(|| {
            panic!(
                "socket {}: no subscription_count {n} within {d:?}",
                c.socket_id
            )
        });
        assert_eq!(v["event"], "pusher_internal:subscription_count", "{v}");
        assert_eq!(v["channel"], channel, "{v}");
        if v["data"] == want.as_str() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_is_cluster_wide_and_survives_a_killed_node() {
    let mut c = Cluster::start_with(3, |a| a.watchlist_events = true).await;
    let mut w = sign_in(&c, 0, "w", &["x", "y"]).await;
    assert_eq!(w.recv().await, watch(&[], &["x", "y"]));
    let x1 = sign_in(&c, 1, "x", &[]).await;
    expect_once(&mut w, &watch(&["x"], &[])).await;
    let mut x2 = sign_in(&c, 2, "x", &[]).await;
    w.expect_nothing(QUIET_MS).await;
    let y = sign_in(&c, 1, "y", &[]).await;
    expect_once(&mut w, &watch(&["y"], &[])).await;
    let mut late = sign_in(&c, 2, "late", &["x", "y", "z"]).await;
    assert_eq!(late.recv().await, watch(&["x", "y"], &["z"]));

    // Node 1 dies: y (only there) goes offline once; x is still held by node 2.
    c.nodes[1].kill9();
    let budget = Duration::from_secs_f64(NODE_TIMEOUT) + Duration::from_secs(4);
    for s in [&mut w, &mut late] {
        let v = s.recv_within(budget).await.expect("offline after the kill");
        assert_eq!(v, watch(&[], &["y"]), "socket {}", s.socket_id);
    }
    quiet_all(&mut [&mut w, &mut late, &mut x2], 1500).await;
    x2.ws.close(None).await.ok();
    expect_once(&mut w, &watch(&[], &["x"])).await;
    expect_once(&mut late, &watch(&[], &["x"])).await;
    drop((x1, y));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_summed_over_live_nodes() {
    let mut c = Cluster::start_with(3, |a| a.subscription_count = true).await;
    let d = Duration::from_secs(3);
    let mut a = c.node(0).client().await;
    a.subscribe("room").await;
    until_count(&mut a, "room", 1, d).await;
    let mut b = c.node(1).client().await;
    b.subscribe("room").await;
    until_count(&mut b, "room", 2, d).await;
    until_count(&mut a, "room", 2, d).await;
    let mut c2 = c.node(2).client().await;
    c2.subscribe("room").await;
    for s in [&mut a, &mut b, &mut c2] {
        until_count(s, "room", 3, d).await;
    }
    c.nodes[2].kill9();
    let budget = Duration::from_secs_f64(NODE_TIMEOUT) + Duration::from_secs(4);
    for s in [&mut a, &mut b] {
        until_count(s, "room", 2, budget).await;
    }
    b.unsubscribe("room").await;
    until_count(&mut a, "room", 1, d).await;
    drop(c2);
}
