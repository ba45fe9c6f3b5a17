//! Cross-node delivery: HTTP triggers and batches, client events, server-to-user messages,
//! ordering, `socket_id` exclusion, cache channels, and a one-node cluster.

use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;

fn ev(event: &str, channel: &str, data: &str) -> Value {
    json!({"event": event, "channel": channel, "data": data})
}

/// One client per node, each subscribed to `channels` (public).
async fn subscribers(c: &Cluster, channels: &[&str]) -> Vec<Client> {
    let mut out = Vec::new();
    for i in 0..c.nodes.len() {
        let mut s = c.node(i).client().await;
        for ch in channels {
            s.subscribe(ch).await;
        }
        out.push(s);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_reaches_every_node_exactly_once() {
    let c = Cluster::start(3).await;
    let mut subs = subscribers(&c, &["news"]).await;
    c.node(0)
        .api()
        .trigger(&["news"], "headline", "{\"n\":1}")
        .await;
    let expected = ev("headline", "news", "{\"n\":1}");
    for s in &mut subs {
        assert_eq!(s.recv().await, expected, "socket {}", s.socket_id);
    }
    let mut refs: Vec<&mut Client> = subs.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
    // The same from another node, to several channels at once.
    let mut more = c.node(2).client().await;
    more.subscribe("sports").await;
    c.node(1)
        .api()
        .trigger(&["news", "sports"], "flash", "2")
        .await;
    for s in &mut subs {
        assert_eq!(s.recv().await, ev("flash", "news", "2"));
    }
    expect_once(&mut more, &ev("flash", "sports", "2")).await;
    let mut refs: Vec<&mut Client> = subs.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_events_reach_every_node_exactly_once() {
    let c = Cluster::start(3).await;
    let mut subs = subscribers(&c, &["b1", "b2"]).await;
    let (s, b) = c
        .node(0)
        .api()
        .batch(json!([
            {"name":"first","channel":"b1","data":"1"},
            {"name":"second","channel":"b2","data":"2"}
        ]))
        .await;
    assert_eq!((s, b), (200, json!({})));
    for s in &mut subs {
        let mut got = vec![s.recv().await, s.recv().await];
        got.sort_by_key(|v| v["event"].as_str().unwrap_or_default().to_string());
        assert_eq!(
            got,
            vec![ev("first", "b1", "1"), ev("second", "b2", "2")],
            "socket {}",
            s.socket_id
        );
    }
    let mut refs: Vec<&mut Client> = subs.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_crosses_nodes_and_is_not_echoed() {
    let c = Cluster::start(3).await;
    let mut socks = Vec::new();
    for i in 0..3 {
        let mut s = c.node(i).client().await;
        s.subscribe_private("private-chat").await;
        socks.push(s);
    }
    socks[1]
        .client_event("private-chat", "client-typing", json!({"id":123}))
        .await;
    let expected = ev("client-typing", "private-chat", "{\"id\":123}");
    assert_eq!(socks[0].recv().await, expected);
    assert_eq!(socks[2].recv().await, expected);
    let mut refs: Vec<&mut Client> = socks.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
    // And back the other way, from node 2.
    socks[2]
        .client_event("private-chat", "client-reply", json!("ok"))
        .await;
    assert_eq!(
        socks[0].recv().await,
        ev("client-reply", "private-chat", "ok")
    );
    assert_eq!(
        socks[1].recv().await,
        ev("client-reply", "private-chat", "ok")
    );
    let mut refs: Vec<&mut Client> = socks.iter_mut().collect();
    quiet_all(&mut refs, QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_crosses_nodes() {
    let c = Cluster::start(3).await;
    let mut s1 = c.node(1).client().await;
    let mut s2 = c.node(2).client().await;
    let mut other = c.node(0).client().await;
    s1.signin(r#"{"id":"42"}"#).await;
    s2.signin(r#"{"id":"42"}"#).await;
    other.signin(r#"{"id":"43"}"#).await;
    s1.subscribe("#server-to-user-42").await;
    s2.subscribe("#server-to-user-42").await;
    other.subscribe("#server-to-user-43").await;
    c.node(0)
        .api()
        .trigger(&["#server-to-user-42"], "notify", "{\"n\":1}")
        .await;
    let expected = ev("notify", "#server-to-user-42", "{\"n\":1}");
    assert_eq!(s1.recv().await, expected);
    assert_eq!(s2.recv().await, expected);
    quiet_all(&mut [&mut s1, &mut s2, &mut other], QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_triggers_arrive_in_order_on_other_nodes() {
    let c = Cluster::start(3).await;
    let mut far = c.node(2).client().await;
    let mut mid = c.node(1).client().await;
    far.subscribe("seq").await;
    mid.subscribe("seq").await;
    let api = c.node(0).api();
    for i in 0..50 {
        api.trigger(&["seq"], "n", &i.to_string()).await;
    }
    for s in [&mut far, &mut mid] {
        let got: Vec<String> = {
            let mut v = Vec::new();
            for _ in 0..50 {
                let f = s.recv().await;
                assert_eq!(f["event"], "n", "{f}");
                v.push(f["data"].as_str().unwrap_or_default().to_string());
            }
            v
        };
        let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "order on socket {}", s.socket_id);
    }
    quiet_all(&mut [&mut far, &mut mid], QUIET_MS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_id_excludes_a_socket_on_another_node() {
    let c = Cluster::start(3).await;
    let mut a = c.node(0).client().await;
    let mut b = c.node(1).client().await;
    let mut excluded = c.node(2).client().await;
    let mut d = c.node(2).client().await;
    for s in [&mut a, &mut b, &mut excluded, &mut d] {
        s.subscribe("excl").await;
    }
    let api = c.node(0).api();
    let (s, body) = api
        .events(&json!({"name":"e","channels":["excl"],"data":"1","socket_id":excluded.socket_id}))
        .await;
    assert_eq!((s, body), (200, json!({})));
    for s in [&mut a, &mut b, &mut d] {
        assert_eq!(
            s.recv().await,
            ev("e", "excl", "1"),
            "socket {}",
            s.socket_id
        );
    }
    quiet_all(&mut [&mut a, &mut b, &mut excluded, &mut d], QUIET_MS).await;
    // A batch item's socket_id, triggered on node 2, excluding a socket on node 0.
    let (s, body) = c
        .node(2)
        .api()
        .batch(json!([{"name":"f","channel":"excl","data":"2","socket_id":a.socket_id}]))
        .await;
    assert_eq!((s, body), (200, json!({})));
    for s in [&mut b, &mut excluded, &mut d] {
        assert_eq!(
            s.recv().await,
            ev("f", "excl", "2"),
            "socket {}",
            s.socket_id
        );
    }
    quiet_all(&mut [&mut a, &mut b, &mut excluded, &mut d], QUIET_MS).await;
}

/// Polls node `i`'s `GET /channels/{channel}?info=cache` until it holds `data` (the event has
/// reached that node: cache replay, like every cross-node effect, may take a moment); returns the
/// answer.
async fn wait_cached(c: &Cluster, i: usize, channel: &str, data: &str) -> Value {
    let api = c.node(i).api();
    let path = api.app_path(&format!("/channels/{channel}"));
    converge(&format!("cache info on node {i}"), CONVERGE, true, || {
        let (api, path) = (api.clone(), path.clone());
        async move {
            let (s, b) = api.get(&path, &[("info", "cache")]).await;
            s == 200 && b["cache"]["data"] == data
        }
    })
    .await;
    api.get(&path, &[("info", "cache")]).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channel_is_shared_by_the_cluster() {
    let mut c = Cluster::start(3).await;
    c.node(0)
        .api()
        .trigger(&["cache-x"], "price", "{\"v\":1}")
        .await;
    // The cache query on the other nodes shows it.
    let b = wait_cached(&c, 1, "cache-x", "{\"v\":1}").await;
    assert_eq!(b["cache"]["event"], "price", "{b}");
    assert_eq!(b["occupied"], false, "{b}");
    let ttl = b["cache"]["ttl"].as_u64().unwrap_or(0);
    assert!((1..=1800).contains(&ttl), "ttl in {b}");
    wait_cached(&c, 2, "cache-x", "{\"v\":1}").await;
    // A new subscriber on another node gets the cached event right after succeeding.
    let mut late = c.node(2).client().await;
    late.subscribe("cache-x").await;
    expect_once(&mut late, &ev("price", "cache-x", "{\"v\":1}")).await;
    // A newer event replaces it everywhere; live subscribers get it once.
    c.node(1)
        .api()
        .trigger(&["cache-x"], "price", "{\"v\":2}")
        .await;
    expect_once(&mut late, &ev("price", "cache-x", "{\"v\":2}")).await;
    wait_cached(&c, 0, "cache-x", "{\"v\":2}").await;
    let mut later = c.node(0).client().await;
    later.subscribe("cache-x").await;
    expect_once(&mut later, &ev("price", "cache-x", "{\"v\":2}")).await;
    // A node started after the event replays it too (it is kept in Redis).
    let n = c.add_node().await;
    wait_cached(&c, n, "cache-x", "{\"v\":2}").await;
    let mut newest = c.node(n).client().await;
    newest.subscribe("cache-x").await;
    expect_once(&mut newest, &ev("price", "cache-x", "{\"v\":2}")).await;
    // A cache channel never triggered anywhere misses on every node.
    for i in 0..c.nodes.len() {
        let mut m = c.node(i).client().await;
        m.subscribe("cache-empty").await;
        expect_once(
            &mut m,
            &json!({"event":"pusher:cache_miss","channel":"cache-empty"}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_with_scaling_on_behaves_like_a_single_server() {
    let c = Cluster::start(1).await;
    let n = c.node(0);
    let mut a = n.client().await;
    let mut b = n.client().await;
    a.subscribe("solo").await;
    n.api().trigger(&["solo"], "hello", "world").await;
    expect_once(&mut a, &ev("hello", "solo", "world")).await;
    let p = a
        .subscribe_presence("presence-solo", r#"{"user_id":"1","user_info":{"n":"A"}}"#)
        .await;
    assert_eq!(p, json!({"ids":["1"],"hash":{"1":{"n":"A"}},"count":1}));
    let p = b
        .subscribe_presence("presence-solo", r#"{"user_id":"2"}"#)
        .await;
    assert_eq!(presence_ids(&p), vec!["1", "2"]);
    assert_eq!(
        data_json(&a.recv_event("pusher_internal:member_added").await),
        json!({"user_id":"2","user_info":null})
    );
    let api = n.api();
    let (s, body) = api
        .get(
            &api.app_path("/channels/presence-solo"),
            &[("info", "user_count,subscription_count")],
        )
        .await;
    assert_eq!(
        (s, body),
        (
            200,
            json!({"occupied":true,"user_count":2,"subscription_count":2})
        )
    );
    assert_eq!(api.connections().await, 2);
    b.close().await;
    assert_eq!(
        a.recv().await,
        json!({"event":"pusher_internal:member_removed","channel":"presence-solo",
               "data":"{\"user_id\":\"2\"}"})
    );
    a.expect_nothing(QUIET_MS).await;
}
