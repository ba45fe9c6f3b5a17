//! Webhooks across nodes: with scaling on, each cluster-wide transition is sent exactly once, by
//! one node, to a real HTTP receiver in the test process (`../webhooks/receiver.rs`):
//! channel_occupied on the first subscriber anywhere, channel_vacated after Pusher's delay when
//! the last one anywhere left (a killed node included), member_added / member_removed on a
//! user's first / last socket anywhere, and a rejoin on ANOTHER node within the delay sends
//! nothing at all; a node stopped gracefully hands its pending webhooks to the others. Every received event is counted, so a duplicate fails the test.

use std::time::{Duration, Instant};

use herald::config::{WebhookEventType as T, WebhookFilter, WebhookTarget};
use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;
use crate::receiver::Receiver;

/// The vacated delay of the test app.
const DELAY_MS: u64 = 300;
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(700);

async fn cluster_with_hooks(n: usize) -> (Cluster, Receiver) {
    let r = Receiver::ok().await;
    let url = r.url.clone();
    let c = Cluster::start_with(n, move |a| {
        a.webhooks = vec![WebhookTarget {
            url,
            event_types: vec![
                T::ChannelOccupied,
                T::ChannelVacated,
                T::MemberAdded,
                T::MemberRemoved,
            ],
            filter: WebhookFilter::default(),
            headers: Default::default(),
        }];
        a.webhook_vacated_delay_ms = DELAY_MS;
    })
    .await;
    (c, r)
}

/// Every event received until `QUIET` passes with nothing (sorted: nodes send independently).
async fn collect(r: &mut Receiver) -> Vec<Value> {
    collect_within(r, QUIET).await
}

async fn collect_within(r: &mut Receiver, first: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    let mut wait = first;
    while let Some(h) = r.next_within(wait).await {
        assert_eq!(h.header_exact("X-Pusher-Key"), Some(KEY));
        assert_eq!(
            h.header_exact("X-Pusher-Signature"),
            Some(hmac_hex(SECRET, &h.body).as_str())
        );
        all.extend(h.events());
        wait = QUIET;
    }
    all.sort_by_key(|v| v.to_string());
    all
}

fn ch(name: &str, channel: &str) -> Value {
    json!({"name": name, "channel": channel})
}

fn member(name: &str, channel: &str, user: &str) -> Value {
    json!({"name": name, "channel": channel, "user_id": user})
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|v| v.to_string());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupancy_is_one_webhook_per_cluster_wide_transition() {
    let (c, mut r) = cluster_with_hooks(3).await;
    let mut a = c.node(0).client().await;
    a.subscribe("room").await;
    let mut b = c.node(1).client().await;
    b.subscribe("room").await;
    assert_eq!(collect(&mut r).await, vec![ch("channel_occupied", "room")]);
    a.unsubscribe("room").await;
    assert_eq!(
        collect(&mut r).await,
        Vec::<Value>::new(),
        "node 1 holds it"
    );
    let left = Instant::now();
    b.unsubscribe("room").await;
    let h = r.next().await;
    let waited = h.at.duration_since(left);
    assert!(
        waited >= Duration::from_millis(DELAY_MS - 20),
        "sent after {waited:?}"
    );
    let mut got = h.events();
    got.extend(collect(&mut r).await);
    assert_eq!(got, vec![ch("channel_vacated", "room")]);

    // A reconnect to ANOTHER node within the delay: nothing at all.
    let mut d = c.node(0).client().await;
    d.subscribe("page").await;
    assert_eq!(collect(&mut r).await, vec![ch("channel_occupied", "page")]);
    d.close().await;
    let mut e = c.node(2).client().await;
    e.subscribe("page").await;
    assert_eq!(
        collect(&mut r).await,
        Vec::<Value>::new(),
        "reload elsewhere"
    );
    e.close().await;
    assert_eq!(collect(&mut r).await, vec![ch("channel_vacated", "page")]);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_members_are_added_and_removed_once_cluster_wide() {
    let (c, mut r) = cluster_with_hooks(3).await;
    let data = r#"{"user_id":"u1"}"#;
    let mut a = c.node(0).client().await;
    a.subscribe_presence("presence-r", data).await;
    let mut b = c.node(1).client().await;
    b.subscribe_presence("presence-r", data).await;
    assert_eq!(
        collect(&mut r).await,
        sorted(vec![
            ch("channel_occupied", "presence-r"),
            member("member_added", "presence-r", "u1"),
        ])
    );
    a.close().await;
    assert_eq!(
        collect(&mut r).await,
        Vec::<Value>::new(),
        "u1 still on node 1"
    );
    b.close().await;
    assert_eq!(
        collect(&mut r).await,
        sorted(vec![
            ch("channel_vacated", "presence-r"),
            member("member_removed", "presence-r", "u1"),
        ])
    );

    // u2 reloads onto another node within the delay: no removed, no added, no vacated.
    let data = r#"{"user_id":"u2"}"#;
    let mut x = c.node(0).client().await;
    x.subscribe_presence("presence-r", data).await;
    assert_eq!(collect(&mut r).await.len(), 2, "occupied + member_added");
    x.close().await;
    let mut y = c.node(2).client().await;
    y.subscribe_presence("presence-r", data).await;
    assert_eq!(
        collect(&mut r).await,
        Vec::<Value>::new(),
        "reload elsewhere"
    );
    y.close().await;
    assert_eq!(collect(&mut r).await.len(), 2, "removed + vacated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_channels_and_members_are_vacated_once() {
    let (mut c, mut r) = cluster_with_hooks(3).await;
    let mut a = c.node(1).client().await;
    a.subscribe("room").await;
    a.subscribe_presence("presence-k", r#"{"user_id":"gone"}"#)
        .await;
    let mut b = c.node(0).client().await;
    b.subscribe_presence("presence-k", r#"{"user_id":"stays"}"#)
        .await;
    assert_eq!(
        collect(&mut r).await,
        sorted(vec![
            ch("channel_occupied", "room"),
            ch("channel_occupied", "presence-k"),
            member("member_added", "presence-k", "gone"),
            member("member_added", "presence-k", "stays"),
        ])
    );
    c.nodes[1].kill9();
    let budget = Duration::from_secs_f64(NODE_TIMEOUT) + Duration::from_secs(4);
    assert_eq!(
        collect_within(&mut r, budget).await,
        sorted(vec![
            ch("channel_vacated", "room"),
            member("member_removed", "presence-k", "gone"),
        ])
    );
    b.close().await;
    assert_eq!(
        collect(&mut r).await,
        sorted(vec![
            ch("channel_vacated", "presence-k"),
            member("member_removed", "presence-k", "stays"),
        ])
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_gracefully_leaves_its_pending_webhooks_to_the_others() {
    let (mut c, mut r) = cluster_with_hooks(3).await;
    let mut a = c.node(1).client().await;
    a.subscribe("room").await;
    a.subscribe_presence("presence-t", r#"{"user_id":"t"}"#)
        .await;
    assert_eq!(collect(&mut r).await.len(), 3, "2 occupied + member_added");
    c.nodes[1].term().await;
    let budget = Duration::from_secs(3);
    assert_eq!(
        collect_within(&mut r, budget).await,
        sorted(vec![
            ch("channel_vacated", "presence-t"),
            ch("channel_vacated", "room"),
            member("member_removed", "presence-t", "t"),
        ])
    );
    drop(a);
}
